r"""Release noise: N(0, σ² I) from a cryptographically secure source unless reproducible noise is asked for.

A released model is ``w̄ + σ·z``. Anyone who can regenerate ``z`` subtracts it and recovers the
noiseless ``w̄``: the certificate is then void. So the default source (``generator=None``) reads
fresh bytes from the operating system's CSPRNG (:func:`os.urandom`, the same source as
:mod:`secrets`) for **every** draw and turns them into standard normals by the Box–Muller
transform in float64; there is no seed and no generator state to recover. A caller who passes a
``torch.Generator`` gets reproducible noise, and every release drawn that way is labelled
:data:`SEEDED_NOISE_LABEL` (in the result, the ledger and the report, whose verdict is then never
PASS). The argument, and the floating-point caveat of naive samplers (Mironov, CCS 2012; Jin et
al., IEEE S&P 2022), are in docs/theory.md §11.

Example:
    >>> import torch
    >>> z = secure_standard_normal((4, 3), dtype=torch.float32, device="cpu")
    >>> z.shape, z.dtype
    (torch.Size([4, 3]), torch.float32)
    >>> noise_source(None, 0.5), noise_source(torch.Generator().manual_seed(0), 0.5), noise_source(None, 0.0)
    ('secure', 'seeded', 'none')
"""

from __future__ import annotations

import math
import os

import torch
from torch import Tensor

__all__ = [
    "NOISE_SOURCES",
    "SEEDED_NOISE_LABEL",
    "gaussian_noise_like",
    "insecure_noise_generator",
    "noise_source",
    "secure_standard_normal",
]

NOISE_SOURCES = ("secure", "seeded", "none")
"""``secure``: OS CSPRNG bytes per draw; ``seeded``: an injected generator (reproducible, not
private); ``none``: σ = 0, nothing added."""

SEEDED_NOISE_LABEL = "reproducible noise: not private"
"""How a release whose noise came from a seeded generator is labelled everywhere."""

_MANTISSA = (1 << 53) - 1


def secure_standard_normal(shape: tuple[int, ...] | torch.Size, *, dtype: torch.dtype,
                           device: torch.device | str) -> Tensor:
    """Standard normal samples from the OS CSPRNG (``os.urandom``), computed in float64.

    Two 53-bit uniforms ``u₁, u₂ ∈ (0, 1]`` per pair of outputs (the top bits of fresh 64-bit
    words), then Box–Muller: ``√(−2 ln u₁)·(cos 2πu₂, sin 2πu₂)``. The result is cast to ``dtype``
    and moved to ``device``.

    Args:
        shape: Output shape.
        dtype: Output dtype (floating point).
        device: Output device.

    Returns:
        A tensor of i.i.d. N(0, 1) samples.

    Example:
        >>> z = secure_standard_normal((200_000,), dtype=torch.float64, device="cpu")
        >>> abs(float(z.mean())) < 0.02 and abs(float(z.std()) - 1.0) < 0.02
        True
    """
    count = math.prod(shape)
    pairs = (count + 1) // 2
    if pairs == 0:
        return torch.zeros(shape, dtype=dtype, device=device)
    words = torch.frombuffer(bytearray(os.urandom(16 * pairs)), dtype=torch.int64)
    uniform = ((words >> 11) & _MANTISSA).to(torch.float64).add_(1.0).mul_(2.0 ** -53)  # (0, 1]
    radius = uniform[:pairs].log_().mul_(-2.0).sqrt_()
    angle = uniform[pairs:].mul_(2.0 * math.pi)
    normal = torch.cat([radius * angle.cos(), radius * angle.sin()])[:count]
    return normal.reshape(shape).to(device=device, dtype=dtype)


def insecure_noise_generator(seed: int | None, *, device: torch.device | str = "cpu") -> torch.Generator | None:
    """The generator behind an explicit ``--insecure-noise-seed``: None (secure noise) unless a seed is given.

    The one place where a user's seed becomes release noise; every release drawn from it is labelled
    :data:`SEEDED_NOISE_LABEL` (its ``noise_source`` is ``seeded``).

    Example:
        >>> insecure_noise_generator(None) is None, insecure_noise_generator(3).initial_seed()
        (True, 3)
    """
    if seed is None:
        return None
    return torch.Generator(device=device).manual_seed(int(seed))


def noise_source(generator: torch.Generator | None, sigma: float) -> str:
    """Which of :data:`NOISE_SOURCES` a draw of scale ``sigma`` from ``generator`` uses."""
    if sigma == 0.0:
        return "none"
    return "secure" if generator is None else "seeded"


def gaussian_noise_like(theta: Tensor, sigma: float, generator: torch.Generator | None) -> Tensor:
    """N(0, σ² I) shaped like ``theta`` on its device and in its dtype.

    Args:
        theta: Tensor whose shape, dtype and device the noise takes.
        sigma: Standard deviation (0 gives zeros).
        generator: None (the default) for secure noise from the OS CSPRNG; a ``torch.Generator``
            for reproducible noise, which is **not private** (label the release
            :data:`SEEDED_NOISE_LABEL`).

    Returns:
        The noise tensor.

    Example:
        >>> theta = torch.zeros(3)
        >>> a = gaussian_noise_like(theta, 1.0, torch.Generator().manual_seed(1))
        >>> bool((a == gaussian_noise_like(theta, 1.0, torch.Generator().manual_seed(1))).all())
        True
        >>> bool((gaussian_noise_like(theta, 1.0, None) == gaussian_noise_like(theta, 1.0, None)).all())
        False
    """
    if sigma == 0.0:
        return torch.zeros_like(theta)
    if generator is None:
        noise = secure_standard_normal(theta.shape, dtype=theta.dtype, device=theta.device)
    else:
        noise = torch.randn(theta.shape, generator=generator, dtype=theta.dtype, device=theta.device)
    return noise.mul_(sigma)
