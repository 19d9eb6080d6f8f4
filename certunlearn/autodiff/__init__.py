"""torch.func helpers: functional models over flat parameter vectors, per-sample gradients,
batched Hessian-vector products, the cubic-regularised Newton subproblem. Nothing here mutates an ``nn.Module``."""

from certunlearn.autodiff.cubic import CubicStep, cubic_model, solve_cubic
from certunlearn.autodiff.functional import LOSSES, FunctionalModel, ParamLayout

__all__ = ["LOSSES", "CubicStep", "FunctionalModel", "ParamLayout", "cubic_model", "solve_cubic"]
