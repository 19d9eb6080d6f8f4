"""Exact batched Hessian-vector products and per-sample gradients for chains of dense layers.

For a network that is a chain ``Linear → act → Linear → … → Linear`` (softmax regression, the
library's :class:`~certunlearn.models.MLP`, a plain ``nn.Sequential`` of those) and a loss with a
closed-form output curvature (cross-entropy, squared error), the Hessian of the minibatch objective
applied to K tangents is Pearlmutter's R-operator written out by hand: one forward pass, one
backward pass, then an R-forward and R-backward pass in which every operation is a matrix product
over all K tangents at once (tensors laid out ``[width, K, B]`` so that each is one GEMM). It computes exactly what
``vmap(jvp(grad))`` computes (tests compare both against dense ``torch.func.hessian``), without the
per-operation overhead of the generic transforms, which dominates on small models (docs/performance.md).

:meth:`ChainNetwork.detect` recognises such a module by its exact type and structure and returns
None for anything else (the caller falls back to ``torch.func``); it also checks, on one random
batch, that its forward pass reproduces the module's, so a mis-recognised model is never used.

Example:
    >>> from certunlearn.autodiff.functional import ParamLayout
    >>> from certunlearn.models import MLP
    >>> net = MLP(3, 2, hidden=(4,), generator=torch.Generator().manual_seed(0))
    >>> chain = ChainNetwork.detect(net, ParamLayout.of(net), "cross_entropy")
    >>> [layer.activation for layer in chain.layers]
    ['tanh', None]
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from certunlearn.autodiff.functional import ParamLayout

__all__ = ["ACTIVATIONS", "ChainNetwork", "ChainLayer"]

_NARROW = 32  # CPU: GEMM output width under which the transposed product is faster (measured)

Derivatives = Callable[[Tensor], tuple[Tensor, Tensor, Tensor | None]]
"""z ↦ (σ(z), σ'(z), σ''(z)); σ'' None where it is zero almost everywhere (ReLU)."""


def _tanh(z: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
    t = torch.tanh(z)
    d1 = 1 - t * t
    return t, d1, -2 * t * d1


def _relu(z: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
    mask = (z > 0).to(z.dtype)  # autograd's ReLU derivative: 1 where z > 0, 0 elsewhere (z = 0 too)
    return z * mask, mask, None


def _sigmoid(z: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
    s = torch.sigmoid(z)
    d1 = s * (1 - s)
    return s, d1, d1 * (1 - 2 * s)


def _gelu(z: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
    cdf = 0.5 * (1 + torch.erf(z / math.sqrt(2.0)))
    pdf = torch.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    return z * cdf, cdf + z * pdf, pdf * (2 - z * z)


def _softplus(module: nn.Softplus) -> Derivatives:
    beta, threshold = float(module.beta), float(module.threshold)

    def derivatives(z: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        linear = z * beta > threshold  # torch's softplus is the identity there, derivative 1
        s = torch.sigmoid(z * beta)
        value = torch.where(linear, z, torch.nn.functional.softplus(z, beta, threshold))
        d1 = torch.where(linear, torch.ones_like(z), s)
        d2 = torch.where(linear, torch.zeros_like(z), beta * s * (1 - s))
        return value, d1, d2

    return derivatives


ACTIVATIONS: dict[type[nn.Module], tuple[str, Callable[[nn.Module], Derivatives | None]]] = {
    nn.Tanh: ("tanh", lambda m: _tanh),
    nn.ReLU: ("relu", lambda m: _relu),
    nn.Sigmoid: ("sigmoid", lambda m: _sigmoid),
    nn.GELU: ("gelu", lambda m: _gelu if m.approximate == "none" else None),
    nn.Softplus: ("softplus", _softplus),
}
"""Elementwise activations the chain path knows: exact module type -> (name, module -> derivatives or
None when this configuration is not supported)."""


@dataclass(frozen=True)
class ChainLayer:
    """One dense layer of the chain: slices of θ for its weight and bias, and the activation after it."""

    weight: slice
    bias: slice | None
    out_features: int
    in_features: int
    activation: str | None
    derivatives: Derivatives | None


_TRANSPOSED_GEMM_MIN = 1 << 20  # input elements from which the gradient's GEMM is taken on the transposed data


def _flatten_chain(module: nn.Module) -> list[nn.Module] | None:
    """The module as a list of Linear and activation leaves, by exact type; None if it is not one.

    A model class may declare the chain its ``forward`` computes with an ``as_chain()`` method
    (the zoo's ``LogisticRegression`` and ``MLP`` do); an inherited ``as_chain`` is not trusted.
    """
    if type(module) is nn.Linear or type(module) in ACTIVATIONS:
        return [module]
    if "as_chain" in vars(type(module)):  # the class itself declares the chain its forward computes
        return _flatten_chain(module.as_chain())
    if type(module) is nn.Sequential:
        leaves: list[nn.Module] = []
        for child in module:
            inner = _flatten_chain(child)
            if inner is None:
                return None
            leaves += inner
        return leaves
    return None


def _output_grad(name: str, logits: Tensor, y: Tensor) -> tuple[Tensor, Tensor | None]:
    """(∂loss_i/∂logits [B, C], softmax probabilities or None) for the chain's supported losses."""
    if name == "cross_entropy":
        p = torch.softmax(logits, dim=1)
        g = p.clone()
        g[torch.arange(logits.shape[0], device=logits.device), y.long()] -= 1
        return g, p
    return logits - y.to(logits.dtype).reshape(logits.shape[0], -1), None  # broadcasts as LOSSES["mse"]


class ChainNetwork:
    """A chain of dense layers evaluated, differentiated and twice differentiated by hand.

    Build it with :meth:`detect`; the methods mirror those of
    :class:`~certunlearn.autodiff.functional.FunctionalModel` and agree with them to rounding.
    """

    LOSSES = ("cross_entropy", "mse")

    def __init__(self, layers: tuple[ChainLayer, ...], loss: str, dim: int) -> None:
        self.layers = layers
        self.loss = loss
        self.dim = dim
        self._workspace: dict[str, Tensor] = {}
        self._transposed: list[tuple[Tensor, int, Tensor]] = []  # most recent first, at most two

    def _buffer(self, key: str, shape: tuple[int, ...], like: Tensor) -> Tensor:
        """Scratch space of ``shape`` for the R-passes, reused across calls on the CPU.

        Fresh multi-megabyte CPU tensors are served by ``mmap`` and page-faulted on first touch, which
        measured about half the time of a batched HVP on the wine MLP (docs/performance.md); keeping
        the scratch tensors avoids that. On other devices PyTorch's caching allocator already reuses
        memory, so a plain allocation is returned. Not thread-safe: one ChainNetwork per thread.
        """
        numel = math.prod(shape)
        if like.device.type != "cpu":
            return like.new_empty(shape)
        buf = self._workspace.get(key)
        if buf is None or buf.numel() < numel or buf.dtype != like.dtype:
            buf = like.new_empty(numel)
            self._workspace[key] = buf
        return buf[:numel].view(shape)

    def clear_workspace(self) -> None:
        """Drop the CPU scratch tensors kept between HVP calls (they are re-made when needed)."""
        self._workspace.clear()
        self._transposed = []

    def _input_transposed(self, X: Tensor) -> Tensor:
        """Xᵀ (contiguous) of the data, kept while the same data tensor comes back.

        Refinement evaluates gradients and HVPs on one set of rows many times; copying Xᵀ on every call
        measured an eighth of a request at n = 24,000. Two tensors are kept (the most recent first),
        so a small evaluation in between (the deleted rows of a request) does not evict the data's.
        The cache holds the tensors themselves (not only their addresses), so a freed and reallocated
        tensor can never be mistaken for one; an in-place change is detected through the version counter.
        """
        for k, (cached, version, transposed) in enumerate(self._transposed):
            if cached is X and version == X._version:
                if k:
                    self._transposed.insert(0, self._transposed.pop(k))
                return transposed
        transposed = X.T.contiguous()
        self._transposed = [(X, X._version, transposed)] + [e for e in self._transposed[:1] if e[0] is not X]
        return transposed

    @classmethod
    def detect(cls, module: nn.Module, layout: ParamLayout, loss: str) -> ChainNetwork | None:
        """Recognise ``module`` as a supported chain for ``loss``; None when it is not one.

        Example:
            >>> from certunlearn.autodiff.functional import ParamLayout
            >>> conv = nn.Sequential(nn.Conv1d(1, 1, 1))
            >>> ChainNetwork.detect(conv, ParamLayout.of(conv), "mse") is None
            True
        """
        if loss not in cls.LOSSES or list(module.buffers()):
            return None
        leaves = _flatten_chain(module)
        if not leaves or len(leaves) % 2 == 0:
            return None
        linears, activations = leaves[::2], leaves[1::2]  # Linear, act, Linear, …, act, Linear
        if any(type(m) is not nn.Linear for m in linears) or any(type(m) not in ACTIVATIONS for m in activations):
            return None
        offsets, start = {}, 0
        for name, numel in zip(layout.names, layout.numels, strict=True):
            offsets[name] = slice(start, start + numel)
            start += numel
        slices = {id(p): offsets[n] for n, p in module.named_parameters()}
        layers: list[ChainLayer] = []
        for k, linear in enumerate(linears):
            act_name, derivs = None, None
            if k < len(activations):
                act_name, factory = ACTIVATIONS[type(activations[k])]
                derivs = factory(activations[k])
                if derivs is None:
                    return None
            if not all(p.requires_grad for p in linear.parameters()):
                return None
            layers.append(ChainLayer(
                weight=slices[id(linear.weight)],
                bias=None if linear.bias is None else slices[id(linear.bias)],
                out_features=linear.out_features, in_features=linear.in_features,
                activation=act_name, derivatives=derivs,
            ))
        chain = cls(tuple(layers), loss, start)
        return chain if chain._agrees_with(module, layout) else None

    def _agrees_with(self, module: nn.Module, layout: ParamLayout) -> bool:
        """One random batch through both forward passes: the recognition is trusted only if they agree."""
        p = next(module.parameters())
        x = torch.randn(3, self.layers[0].in_features, generator=torch.Generator().manual_seed(0),
                        dtype=torch.float64).to(device=p.device, dtype=p.dtype)
        theta = layout.flatten(dict(module.named_parameters())).detach()
        with torch.no_grad():
            ours, theirs = self.outputs(theta, x), module(x)
        return ours.shape == theirs.shape and bool(torch.allclose(ours, theirs, rtol=1e-4, atol=1e-5))

    def _params(self, theta: Tensor, layer: ChainLayer) -> tuple[Tensor, Tensor | None]:
        w = theta[layer.weight].view(layer.out_features, layer.in_features)
        return w, None if layer.bias is None else theta[layer.bias]

    def _forward(self, theta: Tensor, X: Tensor) -> tuple[list[Tensor], list[tuple], Tensor]:
        """Inputs a_0..a_{L-1} of each layer [B, in], activation derivatives per hidden layer, logits."""
        inputs, derivs = [X], []
        a = X
        for layer in self.layers:
            w, b = self._params(theta, layer)
            z = a @ w.T if b is None else torch.addmm(b, a, w.T)
            if layer.derivatives is None:
                return inputs, derivs, z
            a, d1, d2 = layer.derivatives(z)
            inputs.append(a)
            derivs.append((d1, d2))
        raise AssertionError("the last layer of a chain has no activation")  # unreachable: detect checks

    def outputs(self, theta: Tensor, X: Tensor) -> Tensor:
        """Logits ``[B, C]``."""
        return self._forward(theta, X)[2]

    def _backward(self, theta: Tensor, X: Tensor, y: Tensor, weights: Tensor | None = None):  # noqa: ANN202
        """Forward pass plus the per-sample backward pass of the data loss (rows scaled by ``weights [B]``)."""
        inputs, derivs, logits = self._forward(theta, X)
        g, p = _output_grad(self.loss, logits, y)
        if weights is not None:
            g.mul_(weights.unsqueeze(1))
        gs: list[Tensor] = [g]  # ∂loss_i/∂z_l for l = L..1 (per sample rows)
        gas: list[Tensor] = []  # ∂loss_i/∂a_l for l = L-1..1
        for idx in range(len(self.layers) - 1, 0, -1):
            w, _ = self._params(theta, self.layers[idx])
            ga = gs[-1] @ w
            gas.append(ga)
            gs.append(ga * derivs[idx - 1][0])
        return inputs, derivs, p, gs[::-1], gas[::-1]

    def per_sample_grads(self, theta: Tensor, X: Tensor, y: Tensor, *, weight_decay: float) -> Tensor:
        """Gradients ``[B, d]`` of each sample's loss plus (λ/2)‖θ‖²."""
        inputs, _, _, gs, _ = self._backward(theta, X, y)
        out = (weight_decay * theta).expand(X.shape[0], -1).clone()
        for layer, a, g in zip(self.layers, inputs, gs, strict=True):
            out[:, layer.weight] += (g.unsqueeze(2) * a.unsqueeze(1)).reshape(X.shape[0], -1)
            if layer.bias is not None:
                out[:, layer.bias] += g
        return out

    def objective_grad(
        self, theta: Tensor, X: Tensor, y: Tensor, *, normalizer: float, weight_decay: float
    ) -> Tensor:
        """Gradient ``[d]`` of ``(1/normalizer) Σ_i [loss_i + (λ/2)‖θ‖²]`` (one GEMM per layer)."""
        inputs, _, _, gs, _ = self._backward(theta, X, y)
        return self._gradient(theta, inputs, gs, X.shape[0], normalizer, weight_decay)

    def _gradient(self, theta: Tensor, inputs: list[Tensor], gs: list[Tensor], rows: int, normalizer: float,
                  weight_decay: float, at: list[Tensor] | None = None) -> Tensor:
        out = theta * (weight_decay * rows)
        for k, (layer, a, g) in enumerate(zip(self.layers, inputs, gs, strict=True)):
            # with the transposed inputs at hand, aᵀg is the faster GEMM layout for a long inner sum
            # (1.6× for [10, 24,000]·[24,000, 200] in float64 with MKL on one core) and the slower one
            # for a short sum (0.7× for digits' [10, 1,437]·[1,437, 64])
            block = (at[k] @ g).T if at is not None and a.numel() >= _TRANSPOSED_GEMM_MIN else g.T @ a
            out[layer.weight] += block.reshape(-1)
            if layer.bias is not None:
                out[layer.bias] += g.sum(dim=0)
        return out / normalizer

    def hvp_operator(
        self, theta: Tensor, X: Tensor, y: Tensor, *, normalizer: float, weight_decay: float,
        chunk_size: int | None = None,
    ) -> Callable[[Tensor], Tensor]:
        """Return ``V [K, d] ↦ H V`` for the Hessian H of ``(1/normalizer) Σ_i [loss_i + (λ/2)‖θ‖²]``.

        The forward and backward pass at θ are done once here; each call is the R-passes alone, so
        repeated products at one θ (Lanczos, conjugate gradients) do not redo them.
        """
        passes = self._backward(theta, X, y)
        return self._operator(theta, passes, X.shape[0], normalizer, weight_decay, chunk_size)

    def grad_and_hvp_operator(
        self, theta: Tensor, X: Tensor, y: Tensor, *, normalizer: float, weight_decay: float,
        chunk_size: int | None = None, row_mask: Tensor | None = None,
    ) -> tuple[Tensor, Callable[[Tensor], Tensor]]:
        """The gradient ``[d]`` and :meth:`hvp_operator` from one shared forward and backward pass.

        ``row_mask [B]`` (bool) restricts both to the rows where it is True, with the weight decay
        counted once per kept row: the excluded rows' output gradients and curvature are multiplied
        by exact zeros, so the sums are those of the kept rows (adding an exact zero is exact), while
        the data tensor stays the same between calls and its transpose is reused.
        """
        weights = None if row_mask is None else row_mask.to(theta.dtype)
        rows = X.shape[0] if row_mask is None else int(row_mask.sum())
        passes = self._backward(theta, X, y, weights)
        at = self._transposed_inputs(passes[0])
        gradient = self._gradient(theta, passes[0], passes[3], rows, normalizer, weight_decay, at)
        operator = self._operator(theta, passes, rows, normalizer, weight_decay, chunk_size, at, weights)
        return gradient, operator

    def _transposed_inputs(self, inputs: list[Tensor]) -> list[Tensor]:
        return [self._input_transposed(inputs[0])] + [a.T.contiguous() for a in inputs[1:]]  # [in, B]

    def _operator(self, theta: Tensor, passes: tuple, rows: int, normalizer: float, weight_decay: float,
                  chunk_size: int | None, at: list[Tensor] | None = None,
                  weights: Tensor | None = None) -> Callable[[Tensor], Tensor]:
        """``V ↦ H V`` from the forward/backward pass at θ (:meth:`_backward`'s output)."""
        inputs, derivs, p, gs, gas = passes
        # [C, 1, B], contiguous: the curvature's element-wise products on a transposed view measured
        # ~10× slower than on a copy ([10, 24,000], float64), and each HVP makes three of them
        pt = None if p is None else p.T.contiguous().unsqueeze(1)
        ws = [self._params(theta, layer)[0] for layer in self.layers]
        at = self._transposed_inputs(inputs) if at is None else at
        gt = [g.T.contiguous() for g in gs]  # [out, B]
        dt = [(d1.T.unsqueeze(1), None if d2 is None else (d2 * ga).T.unsqueeze(1))  # [width, 1, B]
              for (d1, d2), ga in zip(derivs, gas, strict=True)]
        mask = None if weights is None else weights.view(1, 1, -1)  # [1, 1, B]
        ridge = weight_decay * rows / normalizer

        def apply(V: Tensor) -> Tensor:
            out = torch.empty_like(V)
            if V.shape[0] == 1:  # one tangent (Lanczos, CG): plain 2-D products, no scratch copies
                self._hvp_vector(V[0], out[0], ws, at, gt, dt, pt, mask)
            else:
                step = max(1, V.shape[0] if chunk_size is None else chunk_size)
                for start in range(0, V.shape[0], step):
                    out[start : start + step] = self._hvp_block(V[start : start + step], ws, at, gs, gt, dt, pt,
                                                                mask)
            return out.mul_(1.0 / normalizer).add_(V, alpha=ridge)

        return apply

    def batch_hvp(
        self, theta: Tensor, X: Tensor, y: Tensor, V: Tensor, *, normalizer: float, weight_decay: float,
        chunk_size: int | None = None,
    ) -> Tensor:
        """Hessian of ``(1/normalizer) Σ_i [loss_i + (λ/2)‖θ‖²]`` applied to every row of ``V [K, d]``."""
        return self.hvp_operator(theta, X, y, normalizer=normalizer, weight_decay=weight_decay,
                                 chunk_size=chunk_size)(V)

    def _hvp_vector(self, v, out, ws, at, gt, dt, pt, mask=None) -> None:  # noqa: ANN001
        """The R-passes of :meth:`_hvp_block` for a single tangent ``v [d]``, written into ``out [d]``.

        With K = 1 the ``[width, K, B]`` tensors are ``[width, B]`` matrices: every product is one
        2-D GEMM on views of ``v`` and ``out``, with none of the layout copies the batched path needs.
        On small models a Hessian-vector product is a few dozen tiny operations whose fixed cost
        dominates; this path was 1.35–1.7× faster than the batched one with K = 1 on the MLPs of
        ``benchmarks/bench_hvp.py`` (docs/performance.md).
        """
        rzs: list[Tensor] = []
        ras: list[Tensor | None] = [None]
        for idx, layer in enumerate(self.layers):
            vw = v[layer.weight].view(layer.out_features, layer.in_features)
            rz = vw @ at[idx]  # [o, B]
            if ras[idx] is not None:
                rz.addmm_(ws[idx], ras[idx])
            if layer.bias is not None:
                rz += v[layer.bias].unsqueeze(1)
            rzs.append(rz)
            if idx + 1 < len(self.layers):
                ras.append(rz * dt[idx][0][:, 0])
        rg = rzs[-1]
        if pt is not None:  # softmax curvature: p ⊙ (r − ⟨p, r⟩)
            p = pt[:, 0]
            rg = (rg - (p * rg).sum(dim=0, keepdim=True)).mul_(p)
        if mask is not None:  # excluded rows: exact zeros (the last layer's R-output is not reused)
            rg.mul_(mask[0])
        for idx in range(len(self.layers) - 1, -1, -1):
            layer = self.layers[idx]
            out_w = out[layer.weight].view(layer.out_features, layer.in_features)
            torch.mm(rg, at[idx].T, out=out_w)
            if ras[idx] is not None:
                out_w.addmm_(gt[idx], ras[idx].T)
            if layer.bias is not None:
                torch.sum(rg, dim=1, out=out[layer.bias])
            if idx == 0:
                break
            vw = v[layer.weight].view(layer.out_features, layer.in_features)
            rga = ws[idx].T @ rg  # [i, B]
            rga.addmm_(vw.T, gt[idx])
            d1t, d2gat = dt[idx - 1]
            rga.mul_(d1t[:, 0])
            if d2gat is not None:
                rga.addcmul_(d2gat[:, 0], rzs[idx - 1])
            rg = rga

    def _hvp_block(self, V, ws, at, gs, gt, dt, pt, mask=None) -> Tensor:  # noqa: ANN001
        """R-forward then R-backward over K tangents; tensors ``[width, K, B]``, every product one GEMM."""
        K, B = V.shape[0], at[0].shape[1]
        vws, rzs, ras = [], [], [None]
        for idx, layer in enumerate(self.layers):
            w = ws[idx]
            o, i = layer.out_features, layer.in_features
            vw = V[:, layer.weight].reshape(K, o, i)
            vws.append(vw)
            vwp = self._buffer(f"vwp{idx}", (o, K, i), V)
            vwp.copy_(vw.transpose(0, 1))
            rz = self._buffer(f"rz{idx}", (o, K, B), V)
            torch.mm(vwp.view(o * K, i), at[idx], out=rz.view(o * K, B))
            if ras[idx] is not None:
                rz.view(o, K * B).addmm_(w, ras[idx].view(i, K * B))
            if layer.bias is not None:
                rz += V[:, layer.bias].T.unsqueeze(2)
            rzs.append(rz)
            if idx + 1 < len(self.layers):
                ras.append(torch.mul(rz, dt[idx][0], out=self._buffer(f"ra{idx + 1}", (o, K, B), V)))
        rg = rzs[-1]
        if pt is not None:  # softmax curvature: p ⊙ (r − ⟨p, r⟩)
            q = torch.mul(pt, rg, out=self._buffer("q", tuple(rg.shape), V))
            mean = q.sum(dim=0, keepdim=True)
            rg = torch.sub(rg, mean, out=q).mul_(pt)
        if mask is not None:  # excluded rows: exact zeros (the last layer's R-output is not reused)
            rg.mul_(mask)
        out = torch.empty_like(V)
        for idx in range(len(self.layers) - 1, -1, -1):
            layer = self.layers[idx]
            o, i = layer.out_features, layer.in_features
            out_w = out[:, layer.weight].view(K, o, i)
            # On a CPU a GEMM with few output columns is slow: below _NARROW columns the product is
            # taken transposed (wide), at the price of a strided copy into the output.
            narrow = _NARROW if V.device.type == "cpu" else 0
            if i < narrow:
                rw = self._buffer(f"rw{idx}", (i, o, K), V)
                torch.mm(at[idx], rg.view(o * K, B).T, out=rw.view(i, o * K))
                out_w.copy_(rw.permute(2, 1, 0))
            else:
                rw = self._buffer(f"rw{idx}", (o, K, i), V)
                torch.mm(rg.view(o * K, B), at[idx].T, out=rw.view(o * K, i))
                out_w.copy_(rw.transpose(0, 1))
            if ras[idx] is not None:
                if o < narrow:
                    rw2 = self._buffer(f"rw2{idx}", (o, i, K), V)
                    torch.mm(gt[idx], ras[idx].view(i * K, B).T, out=rw2.view(o, i * K))
                    out_w += rw2.permute(2, 0, 1)
                else:
                    rw2 = self._buffer(f"rw2{idx}", (i, K, o), V)
                    torch.mm(ras[idx].view(i * K, B), gs[idx], out=rw2.view(i * K, o))
                    out_w += rw2.permute(1, 2, 0)
            if layer.bias is not None:
                out[:, layer.bias] = rg.sum(dim=2).T
            if idx == 0:
                break
            w = ws[idx]
            rga = self._buffer(f"rga{idx}", (i, K, B), V)
            torch.mm(w.T, rg.view(o, K * B), out=rga.view(i, K * B))
            vwq = self._buffer(f"vwq{idx}", (i, K, o), V)
            vwq.copy_(vws[idx].permute(2, 0, 1))
            rga.view(i * K, B).addmm_(vwq.view(i * K, o), gt[idx])
            d1t, d2gat = dt[idx - 1]
            rga.mul_(d1t)
            if d2gat is not None:
                rga.addcmul_(d2gat, rzs[idx - 1])
            rg = rga
        return out
