"""Baselines users compare unlearning against: fine-tuning, gradient ascent and two retrain oracles.

* ``finetune``: mini-batch SGD on the remaining data, starting from θ* (a few epochs).
* ``gradient-ascent``: gradient *ascent* on the forget set's loss, starting from θ* (plus weight decay
  pulling towards 0), a popular heuristic that easily destroys the model.
* ``retrain``: the exact minimiser of the remaining-data objective F_R, by full-batch L-BFGS warm
  started at θ* and run to a gradient tolerance — the reference of the Newton-family bounds.
* ``coupled-retrain``: SGD from the *initial* model on the recorded schedule without the deleted
  samples — the reference of the HF-OCU certificate (:func:`certunlearn.train.coupled_retrain`).

None of them carries a certificate: the two oracles are the retrained models themselves (they never
saw the deleted data), the heuristics have no proven bound.

Example:
    >>> from certunlearn.models import LogisticRegression
    >>> X = torch.randn(40, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    >>> y = (X[:, 0] > 0).long()
    >>> ex = ExactRetrain(LogisticRegression(3, 2), weight_decay=0.1).fit(X, y)
    >>> res = ex.forget([0, 1, 2])
    >>> res.extras["gradient_norm"] < 1e-8
    True
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from certunlearn.digest import array_digest
from certunlearn.train.config import SGDConfig
from certunlearn.train.schedule import Schedule
from certunlearn.train.sgd import coupled_retrain
from certunlearn.unlearn.base import register_unlearner
from certunlearn.unlearn.posthoc import PostHocUnlearner
from certunlearn.validation import check_int, check_positive

__all__ = ["CoupledRetrainOracle", "ExactRetrain", "FineTune", "GradientAscent"]

_ORACLE = ("an oracle: retrained without the deleted samples (the reference itself, no bound needed)",)
_HEURISTIC = ("a heuristic without a proven error bound",)


class FineTune(PostHocUnlearner):
    """Mini-batch SGD on the remaining data from θ*: ``epochs`` passes, batch size, step size, seed.

    Args:
        model: The trained model.
        epochs: Passes over the remaining data.
        batch_size: Minibatch size.
        lr: Step size.
        seed: Seed of the minibatch order.
        **kwargs: :class:`PostHocUnlearner` options.
    """

    name = "finetune"

    def __init__(self, model: nn.Module, *, epochs: int = 1, batch_size: int = 64, lr: float = 0.1,
                 seed: int = 0, **kwargs: Any) -> None:
        self.epochs = check_int("epochs", epochs, minimum=1)
        self.batch_size = check_int("batch_size", batch_size, minimum=1)
        self.lr = check_positive("lr", lr)
        self.seed = check_int("seed", seed, minimum=0)
        super().__init__(model, **kwargs)

    def _options(self) -> dict[str, Any]:
        return {**super()._options(), "epochs": self.epochs, "batch_size": self.batch_size, "lr": self.lr,
                "seed": self.seed}

    def _unlearn(self, deleted: list[int], keep: Tensor, generator: torch.Generator | None) -> tuple[Tensor, dict[str, Any], tuple[str, ...]]:
        del deleted, generator
        rows = torch.nonzero(keep).flatten().cpu()
        order = torch.Generator().manual_seed(self.seed)
        theta = self.theta_star.clone()
        steps = 0
        for _ in range(self.epochs):
            perm = rows[torch.randperm(rows.numel(), generator=order)]
            for start in range(0, perm.numel(), self.batch_size):
                batch = perm[start : start + self.batch_size].to(self.X.device)
                g = self.fm.objective_grad(theta, self.X[batch], self.y[batch], normalizer=batch.numel(),
                                           weight_decay=self.weight_decay)
                theta = theta - self.lr * g.detach()
                steps += 1
        return theta, {"sgd_steps": steps}, _HEURISTIC


class GradientAscent(PostHocUnlearner):
    """Gradient ascent on the forget set: θ ← θ + η ∇(mean forget loss) − η λ θ, ``steps`` times."""

    name = "gradient-ascent"

    def __init__(self, model: nn.Module, *, steps: int = 10, lr: float = 0.01, **kwargs: Any) -> None:
        self.steps = check_int("steps", steps, minimum=1)
        self.lr = check_positive("lr", lr)
        super().__init__(model, **kwargs)

    def _options(self) -> dict[str, Any]:
        return {**super()._options(), "steps": self.steps, "lr": self.lr}

    def _unlearn(self, deleted: list[int], keep: Tensor, generator: torch.Generator | None) -> tuple[Tensor, dict[str, Any], tuple[str, ...]]:
        del keep, generator
        Xu, yu = self._rows(deleted)
        theta = self.theta_star.clone()
        for _ in range(self.steps):
            g = self.fm.objective_grad(theta, Xu, yu, normalizer=len(deleted), weight_decay=0.0).detach()
            theta = theta + self.lr * g - self.lr * self.weight_decay * theta
        return theta, {"ascent_steps": self.steps}, _HEURISTIC


class ExactRetrain(PostHocUnlearner):
    """argmin F_R by full-batch L-BFGS warm-started at θ* (the Newton-family reference).

    Args:
        model: The trained model.
        tol: Convergence tolerance on the gradient: L-BFGS stops when its largest component is
            ≤ tol (or when it stalls at rounding); the result reports ‖∇F_R‖, and says so in its
            reasons when the iteration budget ran out first.
        max_iter: L-BFGS iterations (each with a strong-Wolfe line search).
        **kwargs: :class:`PostHocUnlearner` options.
    """

    name = "retrain"

    def __init__(self, model: nn.Module, *, tol: float = 1e-10, max_iter: int = 5000, **kwargs: Any) -> None:
        self.tol = check_positive("tol", tol)
        self.max_iter = check_int("max_iter", max_iter, minimum=1)
        super().__init__(model, **kwargs)

    def _options(self) -> dict[str, Any]:
        return {**super()._options(), "tol": self.tol, "max_iter": self.max_iter}

    def _unlearn(self, deleted: list[int], keep: Tensor, generator: torch.Generator | None) -> tuple[Tensor, dict[str, Any], tuple[str, ...]]:
        del deleted, generator
        theta = self.theta_star.clone().requires_grad_(True)
        opt = torch.optim.LBFGS([theta], lr=1.0, max_iter=self.max_iter, tolerance_grad=self.tol,
                                tolerance_change=0.0, history_size=50, line_search_fn="strong_wolfe")

        def closure() -> Tensor:
            opt.zero_grad()
            value = self.objective(theta, keep)
            value.backward()
            return value

        opt.step(closure)
        result = theta.detach()
        grad = self.gradient(result, keep)
        iterations = int(opt.state[opt._params[0]].get("n_iter", 0))
        converged = float(grad.abs().max()) <= self.tol or iterations < self.max_iter  # else: budget hit
        extras = {"gradient_norm": float(grad.norm()), "converged": converged, "lbfgs_iterations": iterations}
        if not converged:
            return result, extras, _ORACLE + (
                f"L-BFGS used all max_iter={self.max_iter} iterations and stopped at ||grad F_R|| = "
                f"{extras['gradient_norm']:.3g}: not an exact reference; raise max_iter",
            )
        return result, extras, _ORACLE


class CoupledRetrainOracle(PostHocUnlearner):
    """The HF-OCU reference: SGD from ``initial_model`` on ``config``'s schedule without the deleted ids.

    Args:
        model: The trained model (θ*, for step norms and ledger hashes).
        initial_model: The model at initialisation (w_0).
        config: The SGD configuration of the original training (its seed fixes the schedule).
        normalization: ``full_batch`` (the certificate's reference) or ``remaining``.
        **kwargs: :class:`PostHocUnlearner` options (``weight_decay`` is taken from ``config``).
    """

    name = "coupled-retrain"

    def __init__(self, model: nn.Module, *, initial_model: nn.Module, config: SGDConfig,
                 normalization: str = "full_batch", **kwargs: Any) -> None:
        kwargs["weight_decay"] = config.weight_decay
        kwargs.setdefault("loss", config.loss)
        self.initial_model = initial_model
        self.config = config
        self.normalization = normalization
        super().__init__(model, **kwargs)

    def _options(self) -> dict[str, Any]:
        return {**super()._options(), "config": self.config.to_dict(), "normalization": self.normalization,
                "initial_model": array_digest(dict(self.initial_model.state_dict()))}

    def _fit_method(self) -> None:
        self.schedule_ = Schedule.build(n_samples=self.n, config=self.config)

    def _unlearn(self, deleted: list[int], keep: Tensor, generator: torch.Generator | None) -> tuple[Tensor, dict[str, Any], tuple[str, ...]]:
        del keep, generator
        params = coupled_retrain(self.initial_model, self.X, self.y, self.schedule_, self.config,
                                 exclude=deleted, normalization=self.normalization)
        theta = self.fm.layout.flatten(params).to(device=self.fm.device, dtype=self.fm.dtype)
        return theta, {}, _ORACLE


for _cls in (FineTune, GradientAscent, ExactRetrain, CoupledRetrainOracle):
    register_unlearner(_cls.name, _cls)
