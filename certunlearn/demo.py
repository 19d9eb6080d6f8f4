"""The main job on an embedded dataset: train with HF-OCU, forget a request, certify, compare.

``run_demo`` is what ``certunlearn demo`` calls. It trains softmax regression on scikit-learn's digits
(rows clipped to a public norm so the certificate's constants are public), records the HF-OCU
statistics, forgets a seeded 1% of the training ids, releases a certified noisy model, measures the
result against the coupled retrain (the oracle the certificate speaks about), audits it (MIA-L and
MIA-U, each beside the retrained reference) and builds the compliance report
(:mod:`certunlearn.audit.pipeline`).

Example:
    >>> spec = DemoSpec(epochs=1, forget_fraction=0.01)
    >>> summary = run_demo(spec, audit=False)
    >>> summary["certificate"]["certified"], summary["forget"]["count"]
    (True, 14)
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from certunlearn._version import __version__
from certunlearn.audit.plan import AuditPlan
from certunlearn.errors import ConfigError
from certunlearn.pipeline import SoftmaxSetup
from certunlearn.progress import ProgressFn
from certunlearn.validation import check_open_unit, check_positive, check_real

__all__ = ["DemoSpec", "run_demo", "write_demo"]


@dataclass(frozen=True, slots=True)
class DemoSpec(SoftmaxSetup):
    """Settings of the demo (defaults run in seconds on two CPU cores): a :class:`SoftmaxSetup` plus
    the request and its privacy parameters.

    The defaults (2 epochs of batch 512, λ = 0.1) keep the second-order bound (docs/theory.md §3.6)
    small for a 1% request: σ ≈ 0.035 where a noise-only release needs σ ≈ 0.38. Longer training
    accumulates its quadratic term, and the certificate falls back to the first-order 2S.
    """

    epochs: int = 2
    batch_size: int = 512
    forget_fraction: float = 0.01
    epsilon: float = 1.0
    delta: float = 1e-5

    def __post_init__(self) -> None:
        SoftmaxSetup.__post_init__(self)
        check_positive("epsilon", self.epsilon)
        check_open_unit("delta", self.delta)
        fraction = check_real("forget_fraction", self.forget_fraction)
        if not 0.0 < fraction < 0.5:
            raise ConfigError(f"forget_fraction must be in (0, 0.5), got {self.forget_fraction!r}")


def demo_plan(spec: DemoSpec, *, audit: bool = True) -> AuditPlan:
    """The ``hfocu`` audit plan that the demo runs (``audits/digits_logreg_hfocu.toml`` with ``spec``)."""
    from certunlearn.audit.plan import parse_plan

    # audit=True: the hfocu plan defaults (audit/plan.py); False: the LOSS attack only
    audit_section: dict[str, Any] = (
        {} if audit else {"attacks": ["loss"], "mia_u": False, "sweep_epsilons": [spec.epsilon]})
    return parse_plan({
        "schema_version": 1, "name": "digits_logreg_hfocu",
        "claim": f"HF-OCU release of softmax regression on {spec.dataset} is ({spec.epsilon:g}, "
                 f"{spec.delta:g})-certified against the coupled retrain",
        "kind": "hfocu",
        "data": {"dataset": spec.dataset, "clip_norm": spec.clip_norm, "seed": spec.seed},
        "training": {"epochs": spec.epochs, "batch_size": spec.batch_size, "lr": spec.lr,
                     "lr_decay": spec.lr_decay, "weight_decay": spec.weight_decay, "seed": spec.seed},
        "request": {"forget_fraction": spec.forget_fraction, "epsilon": spec.epsilon, "delta": spec.delta},
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
    from certunlearn.audit.pipeline import _hfocu

    spec = spec or DemoSpec()
    result = _hfocu(demo_plan(spec, audit=audit), progress)
    summary = dict(result["summary"])
    summary.update({"certunlearn_version": __version__, "spec": asdict(spec),
                    "seconds": result["seconds"], "report": result["report"]})
    return summary


def write_demo(summary: dict[str, Any], out: str | Path) -> Path:
    """Write ``summary.json`` and the report (``report.json``, ``.html``, ``.md``) into ``out``."""
    from certunlearn.audit.pipeline import write_report

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    body = {k: v for k, v in summary.items() if k != "report"}
    if "report" in summary:
        body["report_files"] = write_report(summary["report"], out)
    path = out / "summary.json"
    path.write_text(json.dumps(body, indent=2, sort_keys=True))
    return path
