"""Release noise: secure by default (OS CSPRNG), reproducible only with an explicit generator, and
labelled everywhere a release is recorded.

The distribution checks use a fixed false-alarm rate of 1e-6 (the secure source cannot be seeded,
so these tests see fresh samples on every run)."""

from __future__ import annotations

import os
import tempfile

import numpy as np
import pytest
import torch
from scipy import stats

from certunlearn.certify.ledger import Ledger, LedgerPolicy
from certunlearn.models import LogisticRegression, build_model
from certunlearn.train.config import SGDConfig
from certunlearn.unlearn.hfocu import HFOCU
from certunlearn.unlearn.noise import (
    SEEDED_NOISE_LABEL,
    gaussian_noise_like,
    noise_source,
    secure_standard_normal,
)

P_FLOOR = 1e-6


def test_secure_samples_are_standard_normal() -> None:
    z = secure_standard_normal((100_000,), dtype=torch.float64, device="cpu").numpy()
    assert stats.kstest(z, "norm").pvalue > P_FLOOR
    pairs = z[:-1:2], z[1::2]  # the two Box-Muller outputs of one pair are independent
    assert stats.pearsonr(*pairs).pvalue > P_FLOOR
    assert np.isfinite(z).all() and np.abs(z).max() < 10  # u1 in (0, 1]: log never sees 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("shape", [(0,), (1,), (7,), (3, 5)])
def test_secure_shapes_dtypes_and_freshness(shape: tuple[int, ...], dtype: torch.dtype) -> None:
    a = secure_standard_normal(shape, dtype=dtype, device="cpu")
    b = secure_standard_normal(shape, dtype=dtype, device="cpu")
    assert a.shape == torch.Size(shape) and a.dtype == dtype
    if a.numel() >= 3:
        assert not torch.equal(a, b)


def test_seeded_noise_is_reproducible_and_secure_noise_is_not() -> None:
    theta = torch.zeros(50, dtype=torch.float64)
    seeded = [gaussian_noise_like(theta, 0.3, torch.Generator().manual_seed(5)) for _ in range(2)]
    assert torch.equal(seeded[0], seeded[1])
    assert not torch.equal(gaussian_noise_like(theta, 0.3, None), gaussian_noise_like(theta, 0.3, None))
    assert torch.equal(gaussian_noise_like(theta, 0.0, None), theta)
    assert (noise_source(None, 1.0), noise_source(torch.Generator(), 1.0), noise_source(None, 0.0)) == (
        "secure", "seeded", "none")


def _fitted(ledger: Ledger | None = None) -> tuple[HFOCU, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    X = torch.randn(40, 3, generator=generator, dtype=torch.float64)
    X = X / X.norm(dim=1, keepdim=True).clamp_min(1.0)
    y = (X[:, 0] > 0).long()
    config = SGDConfig(epochs=2, batch_size=10, lr=0.2, weight_decay=0.05, seed=0)
    hf = HFOCU(LogisticRegression(3, 2).double(), config, feature_norm_bound=1.0, ledger=ledger).fit(X, y)
    return hf, X, y


def test_hfocu_release_is_labelled_in_result_and_ledger() -> None:
    ledger = Ledger(LedgerPolicy(epsilon=10.0, delta=1e-4))
    hf, _, _ = _fitted(ledger)
    secure = hf.forget([1], epsilon=1.0, delta=1e-5)
    seeded = hf.forget([2], epsilon=1.0, delta=1e-5, generator=torch.Generator().manual_seed(0))
    assert secure.sigma > 0 and secure.noise_source == "secure" and secure.summary()["private_noise"]
    assert seeded.noise_source == "seeded" and not seeded.summary()["private_noise"]
    assert [e.noise_source for e in ledger.events] == ["secure", "seeded"]
    hf.prefetch_noise()  # a prefetched secure draw keeps its label
    assert hf.forget([3], epsilon=1.0, delta=1e-5).noise_source == "secure"
    hf.prefetch_noise(torch.Generator().manual_seed(1))
    assert hf.forget([4], epsilon=1.0, delta=1e-5).noise_source == "seeded"


def test_default_release_cannot_be_regenerated() -> None:
    """Two identical requests on identical state give different released weights by default."""
    a, _, _ = _fitted()
    b, _, _ = _fitted()
    ra, rb = a.forget([1, 2], epsilon=1.0, delta=1e-5), b.forget([1, 2], epsilon=1.0, delta=1e-5)
    assert torch.equal(ra.params_noiseless["linear.weight"], rb.params_noiseless["linear.weight"])
    assert not torch.equal(ra.params_released["linear.weight"], rb.params_released["linear.weight"])


def test_forget_job_secure_by_default_and_labelled_when_seeded() -> None:
    from certunlearn.jobs.forget import ForgetSpec, run_forget

    d = tempfile.mkdtemp()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 4))
    X /= np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1.0)
    np.savez(os.path.join(d, "data.npz"), X=X, y=np.arange(30) % 2)
    torch.save(build_model("logreg", in_features=4, num_classes=2).state_dict(), os.path.join(d, "w.pt"))
    common = dict(model="logreg", weights=os.path.join(d, "w.pt"), data=os.path.join(d, "data.npz"), ids=(3, 7),
                  method="curenewton", weight_decay=0.1, epsilon=1.0, delta=1e-5, noise_sensitivity=0.05)

    def released(tag: str, **kw: object) -> tuple[dict, torch.Tensor]:
        summary = run_forget(ForgetSpec(**common, out=os.path.join(d, tag), **kw))
        return summary["result"], torch.load(os.path.join(d, tag, "released.pt"), weights_only=True)["linear.weight"]

    (r1, w1), (_, w2) = released("a"), released("b")
    assert r1["noise_source"] == "secure" and r1["private_noise"] and not torch.equal(w1, w2)
    (s1, v1), (_, v2) = released("c", insecure_noise_seed=4), released("d", insecure_noise_seed=4)
    assert s1["noise_source"] == "seeded" and not s1["private_noise"] and torch.equal(v1, v2)
    assert SEEDED_NOISE_LABEL == "reproducible noise: not private"


def test_minibatches_have_their_own_seed_and_the_job_leaves_the_global_rng_alone() -> None:
    """CureNewton's stochastic minibatches come from its ``seed`` option, not the noise generator, and the
    forget job seeds nothing globally."""
    from certunlearn.jobs.forget import ForgetSpec, run_forget
    from certunlearn.unlearn.curenewton import CureNewton

    generator = torch.Generator().manual_seed(0)
    X = torch.randn(60, 3, generator=generator, dtype=torch.float64)
    y = (X[:, 0] > 0).long()
    model = LogisticRegression(3, 2).double()

    def noiseless(seed: int, noise_seed: int) -> torch.Tensor:
        fitted = CureNewton(model, weight_decay=0.1, batch_size=7, iterations=3, seed=seed).fit(X, y)
        out = fitted.forget([1, 2], epsilon=1.0, delta=1e-5, generator=torch.Generator().manual_seed(noise_seed))
        return out.params_noiseless["linear.weight"]

    assert torch.equal(noiseless(4, 0), noiseless(4, 1))  # the noise generator does not move the minibatches
    assert not torch.equal(noiseless(4, 0), noiseless(5, 0))
    d = tempfile.mkdtemp()
    np.savez(os.path.join(d, "data.npz"), X=X.numpy(), y=y.numpy())
    torch.save(model.state_dict(), os.path.join(d, "w.pt"))

    def job_noiseless(global_seed: int, tag: str) -> torch.Tensor:
        torch.manual_seed(global_seed)  # the test may seed the global RNG; the job must not depend on it
        run_forget(ForgetSpec(model="logreg", weights=os.path.join(d, "w.pt"), data=os.path.join(d, "data.npz"),
                              ids=(3,), method="curenewton", weight_decay=0.1, seed=9, save_noiseless=True,
                              method_args={"batch_size": 7}, out=os.path.join(d, tag)))
        return torch.load(os.path.join(d, tag, "noiseless.pt"), weights_only=True)["linear.weight"]

    assert torch.equal(job_noiseless(1, "a"), job_noiseless(2, "b"))  # --seed alone fixes the minibatches
