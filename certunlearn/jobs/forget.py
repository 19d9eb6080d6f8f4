"""The job behind ``certunlearn forget``: unlearn ids from a model and data file a user brings.

The user supplies the model architecture (a registered name such as ``mlp``, or
``"package.module:factory"``), its trained weights (a ``state_dict`` file, loaded weights-only), the
training data exactly as the model saw it (``.npz`` / ``.pt`` with ``X``, ``y``; sample ids are the
row indices of ``X``), the ids to forget, and a post-hoc method (``curenewton``, ``newton``,
``damped-newton``, ...). The job writes the **released** weights and a JSON summary; the noiseless
weights stay private unless explicitly requested.

Example:
    >>> import os, tempfile, numpy as np, torch
    >>> from certunlearn.models import build_model
    >>> d = tempfile.mkdtemp()
    >>> np.savez(os.path.join(d, "data.npz"), X=np.random.default_rng(0).normal(size=(30, 4)),
    ...          y=np.arange(30) % 2)
    >>> torch.save(build_model("logreg", in_features=4, num_classes=2).state_dict(), os.path.join(d, "w.pt"))
    >>> spec = ForgetSpec(model="logreg", weights=os.path.join(d, "w.pt"), data=os.path.join(d, "data.npz"),
    ...                   ids=(3, 7), method="curenewton", weight_decay=0.1, out=os.path.join(d, "out"))
    >>> summary = run_forget(spec)
    >>> summary["result"]["method"], sorted(os.listdir(os.path.join(d, "out")))
    ('curenewton', ['forget.json', 'released.pt'])
"""

from __future__ import annotations

import inspect
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from certunlearn.errors import ConfigError
from certunlearn.validation import check_choice, check_nonnegative, check_open_unit, check_positive

__all__ = ["NEEDS_TRAINING_RECORDS", "ForgetSpec", "run_forget"]

NEEDS_TRAINING_RECORDS = ("hfocu", "coupled-retrain")
"""Methods that need what was recorded during training (statistics, the schedule): not for ``forget``."""


@dataclass(frozen=True, slots=True)
class ForgetSpec:
    """What to forget, from which model, with which method.

    Attributes:
        model: Registered model name (``logreg``, ``mlp``, ``cnn``) or ``"package.module:factory"``.
        weights: Path of the trained ``state_dict``.
        data: Path of the training data (``.npz`` / ``.pt`` with ``X``, ``y``).
        ids: Row ids of ``X`` to forget.
        method: A post-hoc unlearner name (every registered method except ``hfocu``, which needs
            statistics recorded during training, and ``coupled-retrain``, which needs the schedule).
        model_args: Keyword arguments of the factory; for registered models ``in_features`` and
            ``num_classes`` default to the data's.
        method_args: Keyword arguments of the method (e.g. ``cubic_reg``, ``iterations``, ``damping``).
        weight_decay: λ the model was trained with.
        loss: Per-sample loss name.
        feature_norm_bound: Public bound on the rows' norm (enables derived constants for ``logreg``).
        optimality_gap: Public bound on the trained model's gradient norm.
        epsilon: ε of a noisy release (with ``delta``); None for a noiseless release.
        delta: δ of a noisy release.
        noise_sensitivity: User-chosen Δ for noise when no certified bound applies.
        seed: Seed of the minibatches of stochastic methods (``finetune``, ...); never of the noise.
        insecure_noise_seed: Seed of the release noise, for reproducible runs only: such a release
            is **not private** (anyone with the seed can regenerate and subtract the noise) and is
            labelled ``reproducible noise: not private``. None (the default): the noise comes from
            the OS CSPRNG (:mod:`certunlearn.unlearn.noise`).
        out: Output directory.
        save_noiseless: Also write the private noiseless weights.
        certificate: ``refine``, ``worst-case`` or None (refine wherever it applies).
        sensitivity_budget: Public budget of a refine release (None: the default rule, which needs
            ``feature_norm_bound``).
    """

    model: str
    weights: str
    data: str
    ids: tuple[int, ...]
    method: str = "curenewton"
    model_args: dict[str, Any] = field(default_factory=dict)
    method_args: dict[str, Any] = field(default_factory=dict)
    weight_decay: float = 0.0
    loss: str = "cross_entropy"
    feature_norm_bound: float | None = None
    optimality_gap: float | None = None
    epsilon: float | None = None
    delta: float | None = None
    noise_sensitivity: float | None = None
    seed: int = 0
    insecure_noise_seed: int | None = None
    out: str = "certunlearn-forget"
    save_noiseless: bool = False
    certificate: str | None = None
    sensitivity_budget: float | None = None

    def __post_init__(self) -> None:
        check_nonnegative("weight_decay", self.weight_decay)
        if self.certificate is not None:
            check_choice("certificate", self.certificate, ("refine", "worst-case"))
        if self.sensitivity_budget is not None:
            check_positive("sensitivity_budget", self.sensitivity_budget)
        if (self.epsilon is None) != (self.delta is None):
            raise ConfigError("give --epsilon and --delta together (or neither, for a noiseless release)")
        if self.epsilon is not None:
            check_positive("epsilon", self.epsilon)
            check_open_unit("delta", self.delta)
        if self.method in NEEDS_TRAINING_RECORDS:
            from certunlearn.unlearn import UNLEARNERS

            usable = ", ".join(sorted(n for n in UNLEARNERS if n not in NEEDS_TRAINING_RECORDS))
            raise ConfigError(
                f"method {self.method!r} needs what was recorded during training (statistics or the "
                f"schedule); `certunlearn forget` works on a trained model alone: use one of {usable}"
            )
        if not self.ids:
            raise ConfigError("no ids to forget")


def run_forget(spec: ForgetSpec) -> dict[str, Any]:
    """Load, unlearn, write ``released.pt`` (and ``noiseless.pt`` on request) and ``forget.json``."""
    import torch

    from certunlearn.jobs.outputs import check_output_dir, write_atomic, write_text_atomic
    from certunlearn.jobs.user_files import load_arrays, load_user_model, model_dtype
    from certunlearn.unlearn import get_unlearner
    from certunlearn.unlearn.noise import insecure_noise_generator

    out = check_output_dir(spec.out)  # before any work: a bad --out costs nothing and changes nothing
    X, y = load_arrays(spec.data)
    model = load_user_model(spec.model, spec.weights, X=X, y=y, model_args=spec.model_args,
                            classification=spec.loss == "cross_entropy")
    X = X.to(model_dtype(model))
    cls = get_unlearner(spec.method)
    method_args = dict(spec.method_args)
    if "seed" in inspect.signature(cls.__init__).parameters:  # stochastic methods seed their own minibatches
        method_args.setdefault("seed", spec.seed)
    try:
        unlearner = cls(
            model, weight_decay=spec.weight_decay, loss=spec.loss,
            feature_norm_bound=spec.feature_norm_bound, optimality_gap=spec.optimality_gap,
            noise_sensitivity=spec.noise_sensitivity, certificate=spec.certificate,
            sensitivity_budget=spec.sensitivity_budget, **method_args,
        )
    except TypeError as exc:
        raise ConfigError(f"method {spec.method!r} does not accept these options: {exc}") from exc
    unlearner.fit(X, y)
    result = unlearner.forget(list(spec.ids), epsilon=spec.epsilon, delta=spec.delta,
                              generator=insecure_noise_generator(spec.insecure_noise_seed, device=X.device))
    write_atomic(out / "released.pt", lambda handle: torch.save(result.params_released, handle))
    if spec.save_noiseless:
        write_atomic(out / "noiseless.pt", lambda handle: torch.save(result.params_noiseless, handle))
    summary = {
        "spec": {**asdict(spec), "ids": list(spec.ids)},
        "data": {"rows": int(X.shape[0]), "parameters": unlearner.fm.dim},
        "result": result.summary(),
    }
    write_text_atomic(out / "forget.json", json.dumps(summary, indent=2, sort_keys=True, default=str))
    return summary
