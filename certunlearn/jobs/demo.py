"""The main job on an embedded dataset: train with HF-OCU, forget a request, certify, compare.

``run_demo`` is what ``certunlearn demo`` calls. It trains softmax regression on scikit-learn's digits
to convergence (rows clipped to a public norm, so the budget rule's constants are public), records the
HF-OCU statistics, forgets a seeded 1% of the training ids, releases a model certified by refinement
against the exact retrain (the remaining rows' regularised ERM), measures the result against that
retrain, audits it (MIA-L and MIA-U, each beside the retrained reference) and builds the compliance
report (:mod:`certunlearn.jobs.plan_run`).

Example:
    >>> spec = DemoSpec(epochs=2, forget_fraction=0.01, track_fraction=0.05)
    >>> summary = run_demo(spec, audit=False)
    >>> summary["certificate"]["certified"], summary["certificate"]["reference"], summary["forget"]["count"]
    (True, 'erm', 14)
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from certunlearn._version import __version__
from certunlearn.errors import ConfigError
from certunlearn.jobs.plan import AuditPlan
from certunlearn.jobs.setup import SoftmaxSetup
from certunlearn.progress import ProgressFn
from certunlearn.validation import check_choice, check_open_unit, check_positive, check_real

__all__ = ["DemoSpec", "run_demo", "write_demo"]


@dataclass(frozen=True, slots=True)
class DemoSpec(SoftmaxSetup):
    """Settings of the demo (defaults run in well under a minute on two CPU cores): a
    :class:`SoftmaxSetup` plus the request, its privacy parameters and its certificate.

    The defaults train to convergence (20 epochs of batch 64, step 1 decaying 0.999 per step,
    λ = 1e-3): test accuracy ≈ 0.96. The refine certificate then releases the exact retrain's
    neighbour with σ ≈ 0.0055 (the default budget rule: expected excess risk ≤ 0.01), within a point
    of the retrain. The worst-case certificate of the same model would need σ ≈ 90, which erases it
    (``certificate="worst-case"`` shows it).

    Attributes:
        forget_fraction: Share of the training ids deleted by the request, in (0, 0.5).
        epsilon: ε of the release.
        delta: δ of the release.
        certificate: ``refine`` or ``worst-case``.
        track_fraction: Share of the ids that may ask to be deleted (their HF-OCU statistics are
            recorded); the request is drawn among them.
    """

    epochs: int = 20
    batch_size: int = 64
    lr: float = 1.0
    weight_decay: float = 1e-3
    forget_fraction: float = 0.01
    epsilon: float = 1.0
    delta: float = 1e-5
    certificate: str = "refine"
    track_fraction: float = 0.2

    def __post_init__(self) -> None:
        SoftmaxSetup.__post_init__(self)
        check_positive("epsilon", self.epsilon)
        check_open_unit("delta", self.delta)
        fraction = check_real("forget_fraction", self.forget_fraction)
        if not 0.0 < fraction < 0.5:
            raise ConfigError(f"forget_fraction must be in (0, 0.5), got {self.forget_fraction!r}")
        check_choice("certificate", self.certificate, ("refine", "worst-case"))
        track = check_real("track_fraction", self.track_fraction)
        if not fraction <= track <= 1.0:
            raise ConfigError(f"track_fraction must be in [forget_fraction, 1], got {self.track_fraction!r}")


def demo_plan(spec: DemoSpec, *, audit: bool = True) -> AuditPlan:
    """The ``hfocu`` audit plan that the demo runs (``audits/digits_logreg_hfocu.toml`` with ``spec``)."""
    from certunlearn.jobs.plan import parse_plan

    # audit=True: the hfocu plan defaults (jobs/plan.py); False: the LOSS attack only
    audit_section: dict[str, Any] = (
        {} if audit else {"attacks": ["loss"], "mia_u": False, "sweep_epsilons": [spec.epsilon]})
    return parse_plan({
        "schema_version": 1, "name": "digits_logreg_hfocu",
        "claim": f"HF-OCU release of softmax regression on {spec.dataset} is ({spec.epsilon:g}, "
                 f"{spec.delta:g})-certified against the "
                 + ("exact retrain" if spec.certificate == "refine" else "coupled retrain"),
        "kind": "hfocu",
        "data": {"dataset": spec.dataset, "clip_norm": spec.clip_norm, "seed": spec.seed},
        "training": {"epochs": spec.epochs, "batch_size": spec.batch_size, "lr": spec.lr,
                     "lr_decay": spec.lr_decay, "weight_decay": spec.weight_decay, "seed": spec.seed,
                     "track_fraction": spec.track_fraction},
        "request": {"forget_fraction": spec.forget_fraction, "epsilon": spec.epsilon, "delta": spec.delta,
                    "certificate": spec.certificate},
        "audit": audit_section,
    }, base=".")


def run_demo(spec: DemoSpec | None = None, *, progress: ProgressFn | None = None, audit: bool = True) -> dict[str, Any]:
    """Run the demo pipeline; returns a JSON-serialisable summary with the report under ``"report"``.

    Args:
        spec: The settings (defaults: :class:`DemoSpec`).
        progress: Optional progress callback.
        audit: Run the full MIA-L / MIA-U audits (False: the LOSS attack only, no shadow models, no
            MIA-U, and a one-point σ sweep; faster).
    """
    from certunlearn.jobs.plan_run import run_hfocu_plan

    spec = spec or DemoSpec()
    result = run_hfocu_plan(demo_plan(spec, audit=audit), progress)
    summary = dict(result["summary"])
    summary.update({"certunlearn_version": __version__, "spec": asdict(spec),
                    "seconds": result["seconds"], "report": result["report"]})
    return summary


def write_demo(summary: dict[str, Any], out: str | Path) -> Path:
    """Write ``summary.json`` and the report (``report.json``, ``.html``, ``.md``) into ``out``."""
    from certunlearn.jobs.outputs import check_output_dir, write_text_atomic
    from certunlearn.jobs.plan_run import write_report

    out = check_output_dir(out)
    body = {k: v for k, v in summary.items() if k != "report"}
    if "report" in summary:
        body["report_files"] = write_report(summary["report"], out)
    path = out / "summary.json"
    write_text_atomic(path, json.dumps(body, indent=2, sort_keys=True))
    return path
