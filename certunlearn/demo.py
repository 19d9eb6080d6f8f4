"""The main job on an embedded dataset: train with HF-OCU, forget a request, certify, compare.

``run_demo`` is what ``certunlearn demo`` calls. It trains softmax regression on scikit-learn's digits
(rows clipped to a public norm so the certificate's constants are public), records the HF-OCU
statistics, forgets a seeded 1% of the training ids, releases a certified noisy model, and measures
the result against the coupled retrain (the oracle the certificate speaks about).

Example:
    >>> spec = DemoSpec(epochs=1, forget_fraction=0.01)
    >>> summary = run_demo(spec)
    >>> summary["certificate"]["certified"], summary["forget"]["count"]
    (True, 14)
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from certunlearn._version import __version__
from certunlearn.errors import ConfigError
from certunlearn.pipeline import SoftmaxSetup, fit_softmax_hfocu
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
        if not 0.0 < fraction < 1.0:
            raise ConfigError(f"forget_fraction must be in (0, 1), got {self.forget_fraction!r}")


def _flat(params: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([params[k].reshape(-1) for k in sorted(params)])


def _accuracy(model: torch.nn.Module, params: dict[str, torch.Tensor], X: torch.Tensor, y: torch.Tensor) -> float:
    logits = torch.func.functional_call(model, params, (X,))
    return float((logits.argmax(dim=1) == y).double().mean())


def run_demo(spec: DemoSpec | None = None, *, progress: ProgressFn | None = None) -> dict[str, Any]:
    """Run the demo pipeline and return a JSON-serialisable summary."""
    from certunlearn.train import coupled_retrain

    spec = spec or DemoSpec()
    fitted = fit_softmax_hfocu(spec, progress=progress)
    ds, model, hf, config = fitted.data, fitted.model, fitted.hf, fitted.hf.config
    rng = np.random.default_rng(spec.seed)
    m = max(1, int(round(spec.forget_fraction * ds.n_train)))
    forget = sorted(int(i) for i in rng.choice(ds.n_train, size=m, replace=False))
    generator = torch.Generator().manual_seed(spec.seed)
    result = hf.forget(forget, epsilon=spec.epsilon, delta=spec.delta, generator=generator)
    started = time.perf_counter()
    retrained = coupled_retrain(
        model, ds.X_train, ds.y_train, hf.schedule, config, exclude=forget, progress=progress
    )
    retrain_seconds = time.perf_counter() - started
    w, w_bar, w_ret = _flat(hf.params), _flat(result.params_noiseless), _flat(retrained)
    keep = torch.ones(ds.n_train, dtype=torch.bool)
    keep[forget] = False
    Xf, yf = ds.X_train[~keep], ds.y_train[~keep]
    Xr, yr = ds.X_train[keep], ds.y_train[keep]

    def accuracies(params: dict[str, torch.Tensor]) -> dict[str, float]:
        return {
            "test": _accuracy(model, params, ds.X_test, ds.y_test),
            "retain": _accuracy(model, params, Xr, yr),
            "forget": _accuracy(model, params, Xf, yf),
        }

    return {
        "certunlearn_version": __version__,
        "spec": asdict(spec),
        "data": {"name": ds.name, "n_train": ds.n_train, "n_test": int(ds.X_test.shape[0]),
                 "features": ds.num_features, "classes": ds.num_classes},
        "model": {"name": "logreg", "parameters": hf.fm_.dim},
        "training": {"steps": len(hf.schedule), "precompute_seconds": hf.precompute_seconds_,
                     "statistics_bytes": hf.statistics_nbytes},
        "forget": {"count": m, "ids_head": forget[:10], "deletion_seconds": result.elapsed_s},
        "certificate": result.summary(),
        "distance_to_coupled_retrain": {
            "no_unlearning": float((w - w_ret).norm()),
            "hfocu_noiseless": float((w_bar - w_ret).norm()),
            "hfocu_released": float((_flat(result.params_released) - w_ret).norm()),
            "retrain_seconds": retrain_seconds,
        },
        "accuracy": {
            "trained": accuracies(hf.params),
            "unlearned_noiseless": accuracies(result.params_noiseless),
            "released": accuracies(result.params_released),
            "retrained": accuracies(retrained),
        },
    }


def write_demo(summary: dict[str, Any], out: str | Path) -> Path:
    """Write ``summary.json`` into ``out`` and return its path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "summary.json"
    path.write_text(json.dumps(summary, indent=2, sort_keys=True))
    return path
