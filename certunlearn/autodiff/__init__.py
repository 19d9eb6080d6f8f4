"""torch.func helpers: functional models over flat parameter vectors, per-sample gradients,
batched Hessian-vector products. Nothing here mutates an ``nn.Module``."""

from certunlearn.autodiff.functional import LOSSES, FunctionalModel, ParamLayout

__all__ = ["LOSSES", "FunctionalModel", "ParamLayout"]
