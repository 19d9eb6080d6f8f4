"""Audit jobs on user files: the CLI's ``audit mia-l`` and ``audit mia-u``.

``certunlearn audit mia-l`` and ``certunlearn audit mia-u`` parse their options into
:class:`MIALJob` / :class:`MIAUJob` and call :func:`run_mia_l_job` / :func:`run_mia_u_job`. The
models are the user's own (a registered architecture or ``"package.module:factory"`` plus a
``state_dict`` file), the data are ``.npz`` / ``.pt`` files with ``X`` and ``y``.

Example:
    >>> import os, tempfile, numpy as np, torch
    >>> from certunlearn.models import build_model
    >>> d = tempfile.mkdtemp(); rng = np.random.default_rng(0)
    >>> for name in ("members", "non_members"):
    ...     X = rng.normal(size=(40, 4)); np.savez(os.path.join(d, name + ".npz"), X=X, y=(X[:, 0] > 0) * 1)
    >>> torch.save(build_model("logreg", in_features=4, num_classes=2).state_dict(), os.path.join(d, "w.pt"))
    >>> job = MIALJob(model="logreg", weights=os.path.join(d, "w.pt"), members=os.path.join(d, "members.npz"),
    ...               non_members=os.path.join(d, "non_members.npz"), attacks=("loss",))
    >>> out = run_mia_l_job(job)
    >>> sorted(out["mia_l"]["attacks"])
    ['loss']
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from certunlearn.audit.attacks import DEFAULT_ATTACKS
from certunlearn.errors import ConfigError
from certunlearn.jobs.user_files import load_arrays, load_user_model, model_dtype
from certunlearn.progress import ProgressFn
from certunlearn.train.config import SGDConfig
from certunlearn.validation import check_int, check_nonnegative, check_open_unit

if TYPE_CHECKING:
    from certunlearn.audit.mia_l import MIAResult

__all__ = ["LoadedModel", "MIALJob", "MIAUJob", "load_mia_l_inputs", "mia_l_job_result", "run_mia_l_job",
           "run_mia_u_job"]


@dataclass(frozen=True, slots=True)
class MIALJob:
    """MIA-L on a model a user brings.

    Attributes:
        model: Architecture (``logreg``, ``mlp``, ``cnn`` or ``"package.module:factory"``).
        weights: The model's ``state_dict`` file.
        members: Data the model was trained on (``X``, ``y``).
        non_members: Data it never saw.
        attacks: Attack names of :data:`certunlearn.audit.attacks.ATTACKS`.
        model_args: Factory keyword arguments (also used for the shadow models).
        shadow_data: Data to train shadows on; default: members ∪ non-members (then online attacks
            see every audited example IN and OUT of some shadows).
        shadows: Number of shadow models.
        shadow_epochs: Epochs of each shadow.
        shadow_batch_size: Minibatch size of each shadow.
        shadow_lr: Step size of each shadow.
        shadow_weight_decay: Weight decay of each shadow.
        cache_dir: Where trained shadows are cached (keyed by configuration and data).
        delta: δ of the ε lower bounds.
        alpha: Error level of every interval and bound.
        seed: Seed of the shadows and of the bootstrap.
    """

    model: str
    weights: str
    members: str
    non_members: str
    attacks: tuple[str, ...] = DEFAULT_ATTACKS
    model_args: dict[str, Any] = field(default_factory=dict)
    shadow_data: str | None = None
    shadows: int = 16
    shadow_epochs: int = 20
    shadow_batch_size: int = 64
    shadow_lr: float = 0.1
    shadow_weight_decay: float = 0.0
    cache_dir: str | None = None
    delta: float = 1e-5
    alpha: float = 0.05
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.attacks:
            raise ConfigError("no attacks requested")
        check_int("shadows", self.shadows, minimum=2)
        check_open_unit("alpha", self.alpha)
        check_nonnegative("delta", self.delta)
        check_int("seed", self.seed, minimum=0)


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """A user's model with its member and non-member data, loaded once (in the model's dtype)."""

    model: torch.nn.Module
    X_members: torch.Tensor
    y_members: torch.Tensor
    X_non_members: torch.Tensor
    y_non_members: torch.Tensor


def load_mia_l_inputs(job: MIALJob) -> LoadedModel:
    """Read the job's model and data files."""
    X_in, y_in = load_arrays(job.members)
    X_out, y_out = load_arrays(job.non_members)
    model = load_user_model(job.model, job.weights, X=torch.cat([X_in, X_out]), y=torch.cat([y_in, y_out]),
                            model_args=job.model_args)
    dtype = model_dtype(model)
    return LoadedModel(model, X_in.to(dtype), y_in, X_out.to(dtype), y_out)


def run_mia_l_job(job: MIALJob, *, loaded: LoadedModel | None = None,
                  progress: ProgressFn | None = None) -> dict[str, Any]:
    """Load the model and data (unless ``loaded``), train or reuse shadows if needed, attack, summarise."""
    result = mia_l_job_result(job, loaded=loaded, progress=progress)
    return {"job": {**asdict(job), "attacks": list(job.attacks)}, "mia_l": result.as_dict()}


def mia_l_job_result(job: MIALJob, *, loaded: LoadedModel | None = None,
                     progress: ProgressFn | None = None) -> MIAResult:
    """The :class:`~certunlearn.audit.mia_l.MIAResult` of :func:`run_mia_l_job` (for a report section)."""
    import numpy as np

    from certunlearn.audit.attacks import ATTACKS
    from certunlearn.audit.mia_l import run_mia_l
    from certunlearn.audit.shadows import ShadowSpec

    unknown = [a for a in job.attacks if a not in ATTACKS]
    if unknown:
        raise ConfigError(f"unknown attacks {unknown}: use some of {sorted(ATTACKS)}")
    data = loaded or load_mia_l_inputs(job)
    dtype = data.X_members.dtype
    needs_shadows = any(ATTACKS[a].needs_shadows for a in job.attacks)
    spec = shadow_X = shadow_y = None
    if needs_shadows:
        if job.shadow_data is not None:
            shadow_X, shadow_y = load_arrays(job.shadow_data)
            shadow_X = shadow_X.to(dtype)
        else:
            shadow_X = torch.cat([data.X_members, data.X_non_members])
            shadow_y = torch.cat([data.y_members, data.y_non_members])
        args = {k: v for k, v in job.model_args.items() if k not in ("dtype", "generator")}
        spec = ShadowSpec(
            model=job.model, model_kwargs=args, n_shadows=job.shadows,
            training=SGDConfig(epochs=job.shadow_epochs, batch_size=job.shadow_batch_size, lr=job.shadow_lr,
                               weight_decay=job.shadow_weight_decay, seed=job.seed),
            dtype="float64" if dtype == torch.float64 else "float32",
        )
    return run_mia_l(
        data.model, data.X_members, data.y_members, data.X_non_members, data.y_non_members,
        attacks=job.attacks, shadow_X=shadow_X, shadow_y=shadow_y, shadow_spec=spec,
        cache_dir=job.cache_dir, delta=job.delta, alpha=job.alpha, rng=np.random.default_rng(job.seed),
        progress=progress,
    )


@dataclass(frozen=True, slots=True)
class MIAUJob:
    """MIA-U on an (original, unlearned) pair a user brings, with an attack trained on shadows.

    Attributes:
        model: Architecture of both models.
        original: ``state_dict`` of the model before unlearning.
        unlearned: ``state_dict`` after unlearning.
        forget: The records that were forgotten (positives).
        negatives: Records neither model was trained on (or retained records, with
            ``negatives_kind="in_in"``).
        shadow_data: Data for the shadow protocol (Chen et al.): shadow originals are trained on it
            and unlearned by retraining without single records.
        model_args: Factory keyword arguments.
        negatives_kind: ``out_out`` or ``in_in``.
        shadow_originals: Original shadow models per universe.
        unlearned_per_original: Single-record unlearnings per original.
        records_per_original: Training records of each shadow original.
        shadow_epochs: Epochs of each shadow model.
        shadow_batch_size: Minibatch size.
        shadow_lr: Step size.
        shadow_weight_decay: Weight decay.
        attack_models: Attack classifiers.
        delta: δ of the ε lower bounds.
        alpha: Error level.
        seed: Seed of the protocol.
    """

    model: str
    original: str
    unlearned: str
    forget: str
    negatives: str
    shadow_data: str
    model_args: dict[str, Any] = field(default_factory=dict)
    negatives_kind: str = "out_out"
    shadow_originals: int = 4
    unlearned_per_original: int = 10
    records_per_original: int = 200
    shadow_epochs: int = 20
    shadow_batch_size: int = 32
    shadow_lr: float = 0.1
    shadow_weight_decay: float = 0.0
    attack_models: tuple[str, ...] = ("logistic_regression", "random_forest")
    delta: float = 1e-5
    alpha: float = 0.05
    seed: int = 0

    def __post_init__(self) -> None:
        check_open_unit("alpha", self.alpha)
        check_nonnegative("delta", self.delta)


def run_mia_u_job(job: MIAUJob, *, progress: ProgressFn | None = None) -> dict[str, Any]:
    """Train the attack with the shadow protocol, then attack the user's (original, unlearned) pair."""
    import numpy as np

    from certunlearn.audit.mia_u import audit_unlearning, run_mia_u
    from certunlearn.audit.mia_u_spec import MIAUSpec

    X_f, y_f = load_arrays(job.forget)
    X_n, y_n = load_arrays(job.negatives)
    X_s, y_s = load_arrays(job.shadow_data)
    every_y = torch.cat([y_f, y_n, y_s])
    original = load_user_model(job.model, job.original, X=X_f, y=every_y, model_args=job.model_args)
    unlearned = load_user_model(job.model, job.unlearned, X=X_f, y=every_y, model_args=job.model_args)
    dtype = model_dtype(original)
    spec = MIAUSpec(
        n_shadow_originals=job.shadow_originals, n_unlearned_per_original=job.unlearned_per_original,
        records_per_original=job.records_per_original, model=job.model,
        model_kwargs={k: v for k, v in job.model_args.items() if k not in ("dtype", "generator")},
        training=SGDConfig(epochs=job.shadow_epochs, batch_size=job.shadow_batch_size, lr=job.shadow_lr,
                           weight_decay=job.shadow_weight_decay, seed=job.seed),
        attack_models=job.attack_models, negatives=job.negatives_kind, alpha=job.alpha,
        delta=job.delta, seed=job.seed, random_forest_trees=100,
    )
    shadow = run_mia_u(X_s.to(dtype), y_s, spec=spec, progress=progress)

    def logits_of(module: torch.nn.Module) -> Any:
        def fn(X: Any) -> Any:
            with torch.no_grad():
                return module.eval()(torch.as_tensor(X).to(dtype))
        return fn

    audit = audit_unlearning(
        logits_of(original), logits_of(unlearned), X_f.to(dtype), y_f, X_n.to(dtype), y_n, shadow,
        alpha=job.alpha, delta=job.delta, rng=np.random.default_rng(job.seed),
    )
    return {
        "job": {**asdict(job), "attack_models": list(job.attack_models)},
        "shadow_protocol": shadow.as_dict(),
        "mia_u": audit.as_dict(),
    }
