"""The batched HF-OCU recorder against the loop / dense-Hessian reference (tests/reference/hfocu_loop.py).

The reference is itself checked against a second, independent derivation: the tangent-linear model
of the training step obtained by autograd of the whole step map (clipping and projection included).
"""

from __future__ import annotations

import pytest
import torch

# tests/ is on sys.path (see tests/conftest.py): the slow loop references.
from reference.hfocu_loop import flat_params, reference_hfocu, step_map
from torch import Tensor, nn

from certunlearn.autodiff.functional import FunctionalModel
from certunlearn.models import MLP, LogisticRegression
from certunlearn.train.config import SGDConfig
from certunlearn.train.schedule import Schedule
from certunlearn.train.sgd import run_schedule
from certunlearn.unlearn.recorder import HFOCURecorder
from certunlearn.unlearn.store import StatisticsStore

N, FEATURES, CLASSES = 11, 3, 3  # batch_size 4 -> batches of 4, 4, 3: an uneven last batch
RTOL, ATOL = 1e-9, 1e-13




def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _data(loss: str = "cross_entropy") -> tuple[Tensor, Tensor]:
    g = _gen(7)
    X = torch.randn(N, FEATURES, dtype=torch.float64, generator=g)
    if loss == "mse":
        return X, torch.randn(N, dtype=torch.float64, generator=g)
    return X, torch.randint(0, CLASSES, (N,), generator=g)


def _logreg(seed: int = 5) -> LogisticRegression:
    """Softmax regression started away from zero (zero init would hide sign/transpose mistakes)."""
    model = LogisticRegression(FEATURES, CLASSES)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.3 * torch.randn(p.shape, dtype=torch.float64, generator=_gen(seed)))
    return model


def _mlp(activation: str = "tanh") -> MLP:
    return MLP(FEATURES, CLASSES, hidden=(4,), activation=activation, generator=_gen(1))


# name -> (factory, loss, clip_norm, projection_radius); C and R are chosen so that clipping and
# projection are each active on some steps but not on all (asserted through the reference's counters)
MODELS = {
    "mlp-tanh": (lambda: _mlp("tanh"), "cross_entropy", 0.6, 1.45),
    "mlp-softplus": (lambda: _mlp("softplus"), "cross_entropy", None, None),
    "logreg": (_logreg, "cross_entropy", 0.7, 1.0),
    "logreg-mse": (_logreg, "mse", None, None),
}
CASES = [
    ("mlp-tanh", "plain"),
    ("mlp-tanh", "clip"),
    ("mlp-tanh", "project"),
    ("mlp-tanh", "clip+project"),
    ("logreg", "plain"),
    ("logreg", "clip"),
    ("logreg", "project"),
    ("logreg", "clip+project"),
    ("mlp-softplus", "plain"),
    ("logreg-mse", "plain"),
]


def _options(model_name: str, option: str) -> dict[str, float]:
    _, _, clip, radius = MODELS[model_name]
    out: dict[str, float] = {}
    if "clip" in option:
        out["clip_norm"] = clip
    if "project" in option:
        out["projection_radius"] = radius
    return out


def _config(loss: str, **options: float) -> SGDConfig:
    return SGDConfig(
        epochs=2,
        batch_size=4,
        lr=0.7,
        lr_decay=0.9,
        weight_decay=0.05,
        seed=3,
        loss=loss,
        **options,
    )


def _record(
    model: nn.Module,
    X: Tensor,
    y: Tensor,
    cfg: SGDConfig,
    *,
    track: list[int] | None = None,
    storage_dtype: str = "float64",
    path: str | None = None,
    block_rows: int | None = None,
    vmap_chunk: int | None = None,
) -> tuple[Tensor, dict[int, Tensor], Schedule, HFOCURecorder]:
    """Run the library's recorder; return w_T, {id: a_u} and the schedule."""
    fm = FunctionalModel(model, loss=cfg.loss)
    ids = list(range(X.shape[0])) if track is None else track
    store = StatisticsStore(ids, fm.dim, storage_dtype=storage_dtype, path=path)
    rec = HFOCURecorder(
        fm, store, weight_decay=cfg.weight_decay, block_rows=block_rows, vmap_chunk=vmap_chunk
    )
    schedule = Schedule.build(n_samples=X.shape[0], config=cfg)
    theta = run_schedule(fm, X, y, schedule, cfg, observers=[rec])
    rows = store.read(0, store.num_rows, dtype=torch.float64, device="cpu")
    return theta, {u: rows[int(store.rows_of([u])[0])] for u in ids}, schedule, rec


def _reference(model: nn.Module, X: Tensor, y: Tensor, schedule: Schedule, cfg: SGDConfig, **kw):
    return reference_hfocu(
        model,
        X,
        y,
        [s.ids for s in schedule.steps],
        [cfg.lr * cfg.lr_decay**t for t in range(len(schedule))],  # η_t = η_0 γ^t, independently
        weight_decay=cfg.weight_decay,
        loss=cfg.loss,
        clip_norm=cfg.clip_norm,
        projection_radius=cfg.projection_radius,
        **kw,
    )


def _assert_rows_close(
    actual: dict[int, Tensor], expected: dict[int, Tensor], **tol: float
) -> None:
    assert actual.keys() == expected.keys()
    failures = []
    for u in expected:
        try:
            torch.testing.assert_close(
                actual[u], expected[u], **(tol or {"rtol": RTOL, "atol": ATOL})
            )
        except AssertionError as exc:
            failures.append(f"a_{u}: {exc}")
    assert not failures, "\n".join(failures)


# --------------------------------------------------------------------------- the reference itself
def test_reference_recursion_is_the_tangent_linear_model_of_the_training_step() -> None:
    """a_{t+1} = (∂step/∂w) a_t − ∂step/∂s_u, both by autograd of the full step map (clip + proj)."""
    X, y = _data()
    model = _mlp()
    cfg = _config("cross_entropy", clip_norm=0.6, projection_radius=1.45)
    schedule = Schedule.build(n_samples=N, config=cfg)
    steps = [(list(s.ids), cfg.lr * cfg.lr_decay**t) for t, s in enumerate(schedule.steps)]
    u = steps[0][0][1]
    ref = _reference(model, X, y, schedule, cfg, track=[u])
    assert ref.clipped_steps > 0 and ref.projected_steps > 0

    module = model.eval()
    kw = dict(
        loss=cfg.loss,
        weight_decay=cfg.weight_decay,
        clip_norm=cfg.clip_norm,
        projection_radius=cfg.projection_radius,
    )
    theta = flat_params(module)
    a = torch.zeros_like(theta)
    for batch, lr in steps:
        w = theta.clone().requires_grad_(True)

        def by_theta(t: Tensor, batch: list[int] = batch, lr: float = lr) -> Tensor:
            return step_map(module, t, X, y, batch, lr, **kw)

        J = torch.autograd.functional.jacobian(by_theta, w)
        a = J @ a
        if u in batch:
            k = batch.index(u)

            def by_weight(
                s: Tensor, w: Tensor = w, batch: list[int] = batch, lr: float = lr
            ) -> Tensor:
                return step_map(module, w, X, y, batch, lr, weights=s, **kw)

            dS = torch.autograd.functional.jacobian(
                by_weight, torch.ones(len(batch), dtype=X.dtype)
            )
            a = a - dS[:, k]  # dropping u: s_u goes from 1 to 0
        theta = step_map(module, w, X, y, batch, lr, **kw).detach()
    torch.testing.assert_close(ref.theta, theta, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(ref.approximators[u], a, rtol=RTOL, atol=ATOL)


def test_reference_training_matches_library_training() -> None:
    X, y = _data()
    cfg = _config("cross_entropy", clip_norm=0.6, projection_radius=1.45)
    theta, _, schedule, _ = _record(_mlp(), X, y, cfg, track=[0])
    ref = _reference(_mlp(), X, y, schedule, cfg, track=[])
    torch.testing.assert_close(theta, ref.theta, rtol=1e-12, atol=1e-14)


# --------------------------------------------------------------------------- recorder == reference
@pytest.mark.parametrize(("model_name", "option"), CASES)
def test_recorder_matches_dense_reference(model_name: str, option: str) -> None:
    factory, loss, _, _ = MODELS[model_name]
    X, y = _data(loss)
    cfg = _config(loss, **_options(model_name, option))
    theta, rows, schedule, rec = _record(factory(), X, y, cfg)
    assert rec.steps_seen == len(schedule) == 6
    assert [len(s.ids) for s in schedule.steps] == [4, 4, 3] * 2
    ref = _reference(factory(), X, y, schedule, cfg)
    if cfg.clip_norm is not None:
        assert 0 < ref.clipped_steps < len(schedule), (
            "clipping must be active on some steps, not all"
        )
    if cfg.projection_radius is not None:
        assert 0 < ref.projected_steps < len(schedule), (
            "projection must be active on some steps, not all"
        )
    torch.testing.assert_close(theta, ref.theta, rtol=1e-12, atol=1e-14)
    assert all(float(a.norm()) > 1e-6 for a in ref.approximators.values())
    _assert_rows_close(rows, ref.approximators)


def test_tracking_a_subset_gives_the_same_rows() -> None:
    X, y = _data()
    cfg = _config("cross_entropy", clip_norm=0.6, projection_radius=1.45)
    _, full, _, _ = _record(_mlp(), X, y, cfg)
    track = [9, 2, 7]
    _, subset, _, rec = _record(_mlp(), X, y, cfg, track=track)
    assert rec.store.num_rows == 3 and sorted(subset) == sorted(track)
    _assert_rows_close(subset, {u: full[u] for u in track}, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize(
    "kw",
    [{"vmap_chunk": 1}, {"vmap_chunk": 3}, {"block_rows": 1}, {"block_rows": 4, "vmap_chunk": 2}],
    ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()),
)
def test_chunking_and_blocking_do_not_change_results(kw: dict[str, int]) -> None:
    X, y = _data()
    cfg = _config("cross_entropy", clip_norm=0.6, projection_radius=1.45)
    theta0, base, _, _ = _record(_mlp(), X, y, cfg)
    theta1, rows, _, _ = _record(_mlp(), X, y, cfg, **kw)
    assert torch.equal(theta0, theta1)  # the recorder never touches training
    # different row-block sizes change matmul reduction orders: equal up to rounding
    _assert_rows_close(rows, base, rtol=1e-13, atol=1e-16)


def test_memmap_store_records_the_same_rows(tmp_path) -> None:
    X, y = _data()
    cfg = _config("cross_entropy", projection_radius=1.45)
    _, in_memory, _, _ = _record(_mlp(), X, y, cfg)
    _, mapped, _, rec = _record(_mlp(), X, y, cfg, path=str(tmp_path / "rows.bin"), block_rows=3)
    assert rec.store.backend == "memmap"
    _assert_rows_close(mapped, in_memory, rtol=1e-13, atol=1e-16)


@pytest.mark.parametrize(("storage", "rel"), [("float32", 1e-5), ("bfloat16", 3e-2)])
def test_low_precision_storage_is_close_to_float64(storage: str, rel: float) -> None:
    X, y = _data()
    cfg = _config("cross_entropy")
    _, exact, _, _ = _record(_mlp(), X, y, cfg)
    _, rounded, _, rec = _record(_mlp(), X, y, cfg, storage_dtype=storage)
    assert rec.store.nbytes == N * rec.fm.dim * {"float32": 4, "bfloat16": 2}[storage]
    for u in exact:
        err = float((rounded[u] - exact[u]).norm())
        assert err <= rel * float(exact[u].norm()), (u, err)
        if storage == "bfloat16":  # really rounded: not a float32 store in disguise
            assert torch.equal(rounded[u], rounded[u].to(torch.bfloat16).to(torch.float64))


def test_recorder_refuses_a_store_of_the_wrong_width() -> None:
    fm = FunctionalModel(_mlp())
    with pytest.raises(ValueError, match="parameters"):
        HFOCURecorder(fm, StatisticsStore([0, 1], fm.dim + 1), weight_decay=0.0)
