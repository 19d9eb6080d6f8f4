"""Train many models of one architecture, each on its own rows of one data set (e.g. shadow models).

The models travel as one *stacked state*: ``{name: [N, ...]}``, every model's ``state_dict`` entry
stacked along a leading axis, evaluated all at once by :func:`stacked_outputs`.

Model k is trained by the mini-batch SGD of :func:`certunlearn.train.sgd.train_sgd` on the rows
``rows[k]`` of ``(X, y)``, from its own initial parameters, with ``replace(config, seed=seeds[k])``.
Two paths give the same models to floating-point rounding:

* :func:`train_many_sequential` calls :func:`~certunlearn.train.sgd.train_sgd` once per model.
* :func:`train_many_vectorized` stacks the N models' named parameters along a leading axis
  (``torch.func.stack_module_state``) and runs one ``torch.func.vmap`` over the models per step. Each model's step is the gradient of the
  minibatch objective of :class:`~certunlearn.autodiff.functional.FunctionalModel` (mean loss over
  the batch, ``(λ/2)‖w‖²`` in every per-sample loss) followed by
  :func:`~certunlearn.train.sgd.sgd_step`, the update rule ``train_sgd`` applies (on the named
  tensors, with the norm of their concatenation). Its batches and step sizes come from
  :func:`~certunlearn.train.schedule.epoch_batches`, the sampler ``Schedule.build`` cuts into the
  schedule ``train_sgd`` records, drawn one epoch at a time. Batches are padded to a common length
  ``batch_size`` (padded rows weigh 0 and do not count in the normaliser), epochs are aligned
  across models, and a model with fewer batches in an epoch keeps its parameters on the padding
  steps. A model ``vmap`` cannot run (``.item()``, data-dependent control flow) raises
  :class:`NotVectorizableError` at the first step, before anything is trained.

Both report progress in model-epochs (``total = N · epochs``): after every epoch (vectorised) or
every model (sequential).

Example:
    >>> from certunlearn.models import LogisticRegression
    >>> gen = torch.Generator().manual_seed(0)
    >>> X = torch.randn(30, 3, dtype=torch.float64, generator=gen)
    >>> y = (X[:, 0] > 0).long()
    >>> models = [LogisticRegression(3, 2, generator=torch.Generator().manual_seed(k)) for k in range(3)]
    >>> rows = [torch.arange(k, 30, 2) for k in range(3)]
    >>> cfg = SGDConfig(epochs=2, batch_size=4, lr=0.5, weight_decay=0.01)
    >>> fast = train_many_vectorized(models, X, y, rows=rows, config=cfg, seeds=[5, 6, 7])
    >>> slow = train_many_sequential(models, X, y, rows=rows, config=cfg, seeds=[5, 6, 7])
    >>> tuple(fast["linear.weight"].shape)
    (3, 2, 3)
    >>> all(torch.allclose(fast[k], slow[k], atol=1e-12, rtol=0) for k in fast)
    True
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, stack_module_state, vmap

from certunlearn.autodiff.functional import LOSSES, FunctionalModel, ParamLayout
from certunlearn.errors import CertUnlearnError, InputError
from certunlearn.progress import ProgressFn, report
from certunlearn.train.config import SGDConfig
from certunlearn.train.schedule import epoch_batches
from certunlearn.train.sgd import prepare_data, sgd_step, train_sgd
from certunlearn.validation import check_int

__all__ = [
    "NotVectorizableError",
    "stacked_outputs",
    "train_many_sequential",
    "train_many_vectorized",
    "unstacked_model",
]

EpochPlan = tuple[Tensor, tuple[float, ...]]
"""One epoch of one model, as :func:`~certunlearn.train.schedule.epoch_batches` yields it."""


class NotVectorizableError(CertUnlearnError, RuntimeError):
    """``torch.func.vmap`` cannot run the models' training step (nothing was trained)."""


def _check_models(
    models: Sequence[nn.Module], X: Tensor, rows: Sequence[Tensor], seeds: Sequence[int]
) -> tuple[list[Tensor], list[int]]:
    """``rows`` as int64 CPU tensors and ``seeds`` as ints, after checking they match ``models``."""
    if not models:
        raise InputError("need at least one model to train")
    if len(rows) != len(models) or len(seeds) != len(models):
        raise InputError(
            f"need one row set and one seed per model: got {len(models)} models, "
            f"{len(rows)} row sets and {len(seeds)} seeds"
        )
    n = X.shape[0]
    checked: list[Tensor] = []
    for k, r in enumerate(rows):
        r = torch.as_tensor(r).detach().cpu()
        if r.ndim != 1 or r.numel() == 0 or r.dtype.is_floating_point or r.dtype == torch.bool:
            raise InputError(f"rows[{k}] must be a non-empty 1-D tensor of row indices")
        r = r.to(torch.int64)
        if int(r.min()) < 0 or int(r.max()) >= n:
            raise InputError(f"rows[{k}] has indices outside 0..{n - 1}")
        checked.append(r)
    return checked, [check_int(f"seeds[{k}]", s, minimum=0) for k, s in enumerate(seeds)]


def train_many_sequential(
    models: Sequence[nn.Module],
    X: Tensor,
    y: Tensor,
    *,
    rows: Sequence[Tensor],
    config: SGDConfig,
    seeds: Sequence[int],
    progress: ProgressFn | None = None,
    label: str = "models",
) -> dict[str, Tensor]:
    """Train model k by :func:`~certunlearn.train.sgd.train_sgd` on ``(X[rows[k]], y[rows[k]])``.

    Args:
        models: The N initial models (never modified).
        X: ``[n, ...]`` features shared by all models; ``y`` the ``[n]`` targets.
        rows: Per model, the row indices of its training data (1-D, non-empty).
        config: The SGD recipe of every model.
        seeds: Per model, the seed of its batch order (``replace(config, seed=seeds[k])``).
        progress: Called as ``progress((k + 1) · epochs, N · epochs, label)`` after model k.
        label: Progress label.

    Returns:
        ``{name: [N, ...]}``: the models' trained ``state_dict`` entries stacked.

    Example:
        >>> from certunlearn.models import LogisticRegression
        >>> X, y = torch.eye(4, dtype=torch.float64), torch.tensor([0, 1, 0, 1])
        >>> state = train_many_sequential([LogisticRegression(4, 2)] * 2, X, y, rows=[[0, 1], [2, 3]],
        ...                               config=SGDConfig(epochs=1, batch_size=2, lr=1.0), seeds=[0, 1])
        >>> tuple(state["linear.bias"].shape)
        (2, 2)
    """
    checked, seeds = _check_models(models, X, rows, seeds)
    total = len(models) * config.epochs
    states: list[dict[str, Tensor]] = []
    for k, (model, r, seed) in enumerate(zip(models, checked, seeds, strict=True)):
        r = r.to(X.device)
        states.append(train_sgd(model, X[r], y[r], replace(config, seed=seed)).params)
        report(progress, (k + 1) * config.epochs, total, label)
    return {key: torch.stack([s[key] for s in states]) for key in states[0]}


def _vmapped_step(
    fm: FunctionalModel, config: SGDConfig, chunk_size: int | None
) -> Callable[..., dict[str, Tensor]]:
    """``step(params, buffers, X [N, B, ...], y, weights [N, B], lr [N], active [N])``: new params."""
    loss_fn, weight_decay = LOSSES[fm.loss_name], config.weight_decay

    def objective(
        params: dict[str, Tensor], buffers: dict[str, Tensor], xb: Tensor, yb: Tensor, wb: Tensor
    ) -> Tensor:
        # FunctionalModel.objective with normaliser |B_t| (training), over the unpadded rows only
        outputs = functional_call(fm.module, (params, buffers), (xb,))
        rows = wb.sum()
        total = (loss_fn(outputs, yb) * wb).sum()
        if weight_decay:
            total = total + 0.5 * weight_decay * sum(p.pow(2).sum() for p in params.values()) * rows
        return total / rows.clamp(min=1.0)

    gradient = grad(objective)

    def step(
        params: dict[str, Tensor],
        buffers: dict[str, Tensor],
        xb: Tensor,
        yb: Tensor,
        wb: Tensor,
        lr: Tensor,
        active: Tensor,
    ) -> dict[str, Tensor]:
        _, new = sgd_step(params, gradient(params, buffers, xb, yb, wb), lr=lr, config=config)
        return {k: torch.where(active, new[k], t) for k, t in params.items()}

    return vmap(step, chunk_size=chunk_size)


def _padded_epoch(
    rows: Sequence[Tensor], plans: Sequence[EpochPlan], batch_size: int, dtype: torch.dtype
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One epoch of every model, padded to a common number of steps S and batch size B.

    Returns ``idx [S, N, B]`` (rows of X), ``weights [S, N, B]`` (1 for a real row, 0 for padding),
    ``active [S, N]`` (whether model k takes step s) and ``lr [S, N]``.
    """
    most = max(len(lrs) for _, lrs in plans)
    n_models = len(rows)
    idx = torch.zeros((n_models, most * batch_size), dtype=torch.int64)
    weights = torch.zeros((n_models, most * batch_size), dtype=dtype)
    active = torch.zeros((n_models, most), dtype=torch.bool)
    lr = torch.zeros((n_models, most), dtype=dtype)
    for k, (r, (order, lrs)) in enumerate(zip(rows, plans, strict=True)):
        idx[k, : r.numel()] = r[order]
        weights[k, : r.numel()] = 1.0
        active[k, : len(lrs)] = True
        lr[k, : len(lrs)] = torch.tensor(lrs, dtype=dtype)
    shape = (n_models, most, batch_size)
    return (
        idx.view(shape).transpose(0, 1).contiguous(),
        weights.view(shape).transpose(0, 1).contiguous(),
        active.t().contiguous(),
        lr.t().contiguous(),
    )


def _stacked_state(
    models: Sequence[nn.Module], fm: FunctionalModel
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """The models' parameters and buffers (``stack_module_state``), detached, on ``fm``'s device."""
    for k, model in enumerate(models):
        if ParamLayout.of(model) != fm.layout:
            raise InputError(f"model {k} does not have the parameters of model 0: one architecture only")
    params, buffers = stack_module_state(list(models))
    return (
        {name: t.detach().to(fm.device) for name, t in params.items()},
        {name: t.detach().to(fm.device) for name, t in buffers.items()},
    )


def train_many_vectorized(
    models: Sequence[nn.Module],
    X: Tensor,
    y: Tensor,
    *,
    rows: Sequence[Tensor],
    config: SGDConfig,
    seeds: Sequence[int],
    chunk_size: int | None = None,
    progress: ProgressFn | None = None,
    label: str = "models",
) -> dict[str, Tensor]:
    """Train all models together, one ``vmap`` over the models per SGD step.

    Same arguments and result as :func:`train_many_sequential` (which it equals to rounding), plus
    ``chunk_size``: models per vmapped call (None: all), to bound memory. The models train on the
    device of ``models[0]``, in its dtype; progress is reported after every epoch.

    Raises:
        NotVectorizableError: ``vmap`` cannot run the models' step (raised at the first step).
        InputError: Mismatched models, rows or seeds.

    Example:
        >>> from certunlearn.models import LogisticRegression
        >>> X, y = torch.eye(4, dtype=torch.float64), torch.tensor([0, 1, 0, 1])
        >>> cfg = SGDConfig(epochs=3, batch_size=2, lr=1.0)
        >>> seen = []
        >>> state = train_many_vectorized([LogisticRegression(4, 2)] * 2, X, y, rows=[[0, 1, 2], [3]],
        ...                               config=cfg, seeds=[0, 1], progress=lambda *a: seen.append(a))
        >>> seen
        [(2, 6, 'models'), (4, 6, 'models'), (6, 6, 'models')]
    """
    if chunk_size is not None:
        check_int("chunk_size", chunk_size, minimum=1)
    checked, seeds = _check_models(models, X, rows, seeds)
    fm = FunctionalModel(models[0], loss=config.loss, structured=False)
    X, y = prepare_data(fm, X, y)
    params, buffers = _stacked_state(models, fm)
    step = _vmapped_step(fm, config, chunk_size)
    samplers: list[Iterator[EpochPlan]] = [
        epoch_batches(n_samples=r.numel(), config=replace(config, seed=s))
        for r, s in zip(checked, seeds, strict=True)
    ]
    total, first = len(models) * config.epochs, True
    for epoch in range(config.epochs):
        plans = [next(sampler) for sampler in samplers]
        padded = _padded_epoch(checked, plans, config.batch_size, fm.dtype)
        idx, weights, active, lr = (t.to(fm.device) for t in padded)
        for s in range(idx.shape[0]):
            batch = idx[s]
            try:
                params = step(params, buffers, X[batch], y[batch], weights[s], lr[s], active[s])
            except RuntimeError as exc:  # includes vmap's missing batching rules (a subclass)
                if not first:
                    raise
                raise NotVectorizableError(str(exc)) from exc
            first = False
        report(progress, (epoch + 1) * len(models), total, label)
    merged = {**buffers, **params}
    return {key: merged[key].detach().clone() for key in fm.module.state_dict()}


def stacked_outputs(
    template: nn.Module,
    state: Mapping[str, Tensor],
    X: Tensor,
    *,
    batch_size: int | None = None,
    chunk_size: int | None = None,
) -> Tensor:
    """Outputs ``[N, m, ...]`` of every model of a stacked state on ``X [m, ...]``, without autograd.

    One ``vmap`` over the models of ``functional_call(template, state_k, X)``; ``template`` gives
    the structure (its own weights are unused). ``batch_size`` rows per forward pass (None: all),
    ``chunk_size`` models per vmapped call (None: all), to bound memory.

    Example:
        >>> from certunlearn.models import LogisticRegression
        >>> template = LogisticRegression(2, 3)
        >>> state = {k: torch.stack([v, 2 * v]) for k, v in template.state_dict().items()}
        >>> X = torch.randn(5, 2, dtype=torch.float64)
        >>> out = stacked_outputs(template, state, X, batch_size=2)
        >>> tuple(out.shape), torch.allclose(out[1], 2 * template(X))
        ((2, 5, 3), True)
    """

    def forward(one: dict[str, Tensor], rows: Tensor) -> Tensor:
        return functional_call(template, one, (rows,))

    batched = vmap(forward, in_dims=(0, None), chunk_size=chunk_size)
    state = dict(state)
    step = X.shape[0] if batch_size is None else batch_size
    with torch.no_grad():
        parts = [batched(state, X[i : i + step]) for i in range(0, X.shape[0], step)]
    return torch.cat(parts, dim=1)


def unstacked_model(template: nn.Module, state: Mapping[str, Tensor], k: int) -> nn.Module:
    """Model k of a stacked state as an ordinary ``nn.Module`` (a copy of ``template``, eval mode).

    Example:
        >>> from certunlearn.models import LogisticRegression
        >>> template = LogisticRegression(2, 3)
        >>> state = {k: torch.stack([v, 2 * v]) for k, v in template.state_dict().items()}
        >>> torch.equal(unstacked_model(template, state, 1).linear.bias, 2 * template.linear.bias)
        True
    """
    module = copy.deepcopy(template)
    module.load_state_dict({name: tensor[k] for name, tensor in state.items()}, strict=False)
    return module.eval()
