"""Degradation mechanism f_y(X, Z): the SCM's structural equation for Y (Eq. 1) and p(Y | X, Z) (Eq. 2).

The mean is physically structured, in the order of the synthetic pipeline
(blur -> downsample -> noise -> JPEG):

1. isotropic Gaussian blur, sigma = the named blur factor (HR pixels); the
   kernel is built from sigma, so sigma gets gradients; sigma 0 = identity;
2. MATLAB bicubic `imresize` by 1/scale (differentiable, antialiased);
3. compression: a LEARNED STAND-IN for JPEG (no differentiable codec): a small
   conv net FiLM-modulated by q = (100 - quality) / 90 and scaled by q, so
   quality 100 leaves the image unchanged;
4. a small learned residual FiLM-conditioned on the free dims of Z (what the
   physics leaves out).

Noise has zero mean, so it enters only the likelihood: log p(Y|X,Z) is an
isotropic Gaussian around the mean with per-sample variance
sigma_model^2 + (noise / 255)^2 (the noise factor's physical meaning; noise is
modelled as added after the compression stand-in, a simplification of
noise -> JPEG). No clamping: it would kill gradients.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from causalsr import factors
from causalsr.data.imresize import imresize

_BLUR = factors.factor_index("blur")
_NOISE = factors.factor_index("noise")
_JPEG = factors.factor_index("jpeg")


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, ksize: int) -> torch.Tensor:
    """Separable Gaussian blur of (B,C,H,W) with per-sample sigma (B,), differentiable in x and sigma.

    The kernel is truncated to `ksize` taps; sigma <= 0 gives the identity
    (the kernel collapses to a delta). Borders are reflect-padded (replicate
    for images smaller than the kernel radius).
    """
    b, c, h, w = x.shape
    r = ksize // 2
    t = torch.arange(-r, r + 1, dtype=x.dtype, device=x.device)
    s2 = sigma.clamp(min=0).to(x.dtype)[:, None] ** 2
    k = torch.exp(-t**2 / (2 * s2 + 1e-12))  # (B, ksize); exactly a delta at sigma 0
    k = (k / k.sum(dim=1, keepdim=True)).repeat_interleave(c, dim=0)  # (B*C, ksize)
    mode = "reflect" if r < min(h, w) else "replicate"
    y = F.pad(x.reshape(1, b * c, h, w), (r, r, r, r), mode=mode)
    y = F.conv2d(y, k[:, None, :, None], groups=b * c)
    y = F.conv2d(y, k[:, None, None, :], groups=b * c)
    return y.reshape(b, c, h, w)


class _FiLMConvNet(nn.Module):
    """conv3x3 -> FiLM(cond) -> ReLU -> conv3x3 (zero-initialised: outputs 0 at start)."""

    def __init__(self, n_feats: int, cond_dim: int):
        super().__init__()
        self.conv1 = nn.Conv2d(3, n_feats, 3, padding=1)
        self.film = nn.Linear(cond_dim, 2 * n_feats) if cond_dim > 0 else None
        self.conv2 = nn.Conv2d(n_feats, 3, 3, padding=1)
        assert self.conv2.bias is not None  # built with a bias
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.conv2.keep_init = True  # type: ignore[assignment]  # CausalSR's Xavier initialisation leaves it alone

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = self.conv1(x)
        if self.film is not None:
            gamma, beta = self.film(cond)[:, :, None, None].chunk(2, dim=1)
            h = h * (1 + gamma) + beta
        return self.conv2(F.relu(h))


class DegradationMechanism(nn.Module):
    """f_y(X, Z) -> E[Y] and the Gaussian log p(Y | X, Z) of Eq. 2.

    Args:
        scale: downsampling factor (2, 3, 4, 8).
        z_dim: latent width; Z[:, :N_NAMED] are the normalised named factors
            (blur, noise, jpeg; `causalsr.factors`), the rest are free.
        n_feats: width of the compression stand-in and of the residual net.
        blur_ksize: taps of the blur kernel (odd; truncates large sigmas).
        sigma_floor: lower bound of the learned model noise std (in [0,1] units).
    """

    def __init__(self, scale: int = 4, z_dim: int = 8, n_feats: int = 16, blur_ksize: int = 7,
                 sigma_floor: float = 0.01):
        super().__init__()
        if z_dim < factors.N_NAMED:
            raise ValueError(f"z_dim must be at least {factors.N_NAMED} (the named factors), got {z_dim}")
        if blur_ksize % 2 == 0:
            raise ValueError(f"blur_ksize must be odd, got {blur_ksize}")
        self.scale = scale
        self.z_dim = z_dim
        self.blur_ksize = blur_ksize
        self.sigma_floor = sigma_floor
        self.compression = _FiLMConvNet(n_feats, 1)
        self.residual = _FiLMConvNet(n_feats, z_dim - factors.N_NAMED)
        # sigma_model = floor + softplus(raw), starting at 2 x floor
        self.sigma_raw = nn.Parameter(torch.tensor(math.log(math.expm1(sigma_floor))))

    def physical(self, z: torch.Tensor) -> torch.Tensor:
        """Named factors of z in physical units (B, N_NAMED): blur sigma, noise sigma (0-255), JPEG quality."""
        return factors.denormalise(z[:, :factors.N_NAMED])

    def sigma_model(self) -> torch.Tensor:
        return self.sigma_floor + F.softplus(self.sigma_raw)

    def forward(self, hr: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """E[Y | X=hr, Z=z]: hr (B,3,H,W) in [0,1], z (B,z_dim) -> (B,3,ceil(H/s),ceil(W/s))."""
        phys = self.physical(z)
        y = gaussian_blur(hr, phys[:, _BLUR], self.blur_ksize)
        y = imresize(y, scale=1.0 / self.scale)
        q = ((100.0 - phys[:, _JPEG]) / 90.0).clamp(min=0)[:, None]  # 0 = no compression
        y = y + q[:, :, None, None] * self.compression(y, q)
        return y + self.residual(y, z[:, factors.N_NAMED:])

    def noise_var(self, z: torch.Tensor) -> torch.Tensor:
        """Per-sample variance (B,) in [0,1]^2 units: sigma_model^2 + (noise / 255)^2."""
        return self.sigma_model() ** 2 + (self.physical(z)[:, _NOISE] / 255.0) ** 2

    def log_likelihood(self, lr: torch.Tensor, hr: torch.Tensor, z: torch.Tensor,
                       per_pixel: bool = False) -> torch.Tensor:
        """Gaussian log p(Y=lr | X=hr, Z=z) (Eq. 2), shape (B,).

        Summed over all C*h*w values of Y (a proper log-density, nats); with
        `per_pixel` it is divided by C*h*w (a mean, for loss scaling).
        """
        mean = self.forward(hr, z)
        var = self.noise_var(z)[:, None, None, None]
        ll = -0.5 * ((lr - mean) ** 2 / var + torch.log(2 * math.pi * var))
        ll = ll.flatten(1)
        return ll.mean(dim=1) if per_pixel else ll.sum(dim=1)
