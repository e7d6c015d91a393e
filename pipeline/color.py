"""Colour preservation: Gatys, Bethge, Hertzmann and Shechtman 2016, "Preserving Color in Neural
Artistic Style Transfer", as tensor-in, tensor-out functions.

Convention: images are (B, 3, H, W) float32 sRGB in [0, 1], on any device; CIELAB is (B, 3, H, W)
with L* in [0, 100] and a*, b* roughly in [-128, 127], for the D65 white.

- `luminance` mode: the style is transferred on lightness only. Departs from the paper, which splits
  in YIQ: here the split is CIELAB's. YIQ's I and Q are differences of gamma-encoded RGB, so keeping
  them while Y changes shifts the colour's perceived saturation (a stroke painted darker keeps I, Q
  and turns more saturated); CIELAB's a* and b* are built to stay the same perceived hue and chroma
  at any lightness L*, so "the content's colours at the stylized lightness" is what `keep_colors` says.
- `histogram` mode: the style's RGB colours are mapped linearly onto the content's mean and
  covariance (the paper's section 2.1), with the symmetric square-root form of the transform
  A = Sigma_c^(1/2) Sigma_s^(-1/2) (the paper's "image analogies" variant) rather than Cholesky
  factors: it is the one that does not depend on the order of the channels, and the paper found it
  gives the most pleasing results.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .config import PreserveColors

# sRGB primaries to CIE XYZ, D65 white (IEC 61966-2-1); row 1 is the relative luminance Y.
_RGB_TO_XYZ = ((0.4124564, 0.3575761, 0.1804375), (0.2126729, 0.7151522, 0.0721750), (0.0193339, 0.1191920, 0.9503041))
_WHITE = (0.95047, 1.0, 1.08883)  # D65, the rows' sums: grey pixels have a* = b* = 0
_DELTA = 6 / 29  # CIELAB's switch from the cube root to its linear segment
# Added to the style's colour covariance before its inverse square root: a nearly flat style (all
# one colour in some direction) would otherwise blow up along that direction.
_COVARIANCE_FLOOR = 1e-5


def srgb_to_linear(image: Tensor) -> Tensor:
    """Undo the sRGB transfer curve: gamma-encoded [0, 1] to linear light [0, 1]."""
    return torch.where(image <= 0.04045, image / 12.92, ((image.clamp(min=0.0) + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(linear: Tensor) -> Tensor:
    """Apply the sRGB transfer curve: linear light to gamma-encoded values."""
    return torch.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear.clamp(min=0.0) ** (1 / 2.4) - 0.055)


def rgb_to_lab(image: Tensor) -> Tensor:
    """sRGB (B, 3, H, W) in [0, 1] to CIELAB (B, 3, H, W): L* in [0, 100], a*, b* around 0."""
    matrix = image.new_tensor(_RGB_TO_XYZ) / image.new_tensor(_WHITE)[:, None]  # (3, 3), white-normalised
    xyz = torch.einsum("ij,bjhw->bihw", matrix, srgb_to_linear(image))  # (B, 3, H, W)
    f = torch.where(xyz > _DELTA**3, xyz.clamp(min=_DELTA**3) ** (1 / 3), xyz / (3 * _DELTA**2) + 4 / 29)
    fx, fy, fz = f.unbind(1)
    return torch.stack((116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)), dim=1)  # (B, 3, H, W)


def lab_to_rgb(lab: Tensor) -> Tensor:
    """CIELAB (B, 3, H, W) to sRGB (B, 3, H, W); colours outside the sRGB gamut fall outside [0, 1]."""
    lightness, a, b = lab.unbind(1)
    fy = (lightness + 16) / 116
    f = torch.stack((fy + a / 500, fy, fy - b / 200), dim=1)  # (B, 3, H, W)
    xyz = torch.where(f > _DELTA, f**3, 3 * _DELTA**2 * (f - 4 / 29)) * lab.new_tensor(_WHITE)[:, None, None]
    matrix = torch.linalg.inv(lab.new_tensor(_RGB_TO_XYZ, dtype=torch.float64)).to(lab.dtype)
    return linear_to_srgb(torch.einsum("ij,bjhw->bihw", matrix, xyz))  # (B, 3, H, W)


def luminance(image: Tensor) -> Tensor:
    """The image's lightness as a grey sRGB image (B, 3, H, W): same L* per pixel, a* = b* = 0.

    What the network sees in `luminance` mode: the paper's luminance channel, repeated on the three
    channels VGG takes.
    """
    y = torch.einsum("j,bjhw->bhw", image.new_tensor(_RGB_TO_XYZ[1]), srgb_to_linear(image))  # (B, H, W)
    return linear_to_srgb(y).unsqueeze(1).expand(-1, 3, -1, -1).clamp(0.0, 1.0).contiguous()  # (B, 3, H, W)


def match_luminance(style: Tensor, content: Tensor) -> Tensor:
    """The style's luminance, its L* shifted and scaled to the content's mean and spread (the
    paper's eq. 1, on L*), as a grey sRGB image (B, 3, H, W)."""
    style_l, content_l = rgb_to_lab(style)[:, :1], rgb_to_lab(content)[:, :1]  # (B, 1, H, W)
    spread = content_l.std(dim=(2, 3), keepdim=True) / style_l.std(dim=(2, 3), keepdim=True).clamp(min=1e-3)
    matched = (style_l - style_l.mean(dim=(2, 3), keepdim=True)) * spread + content_l.mean(dim=(2, 3), keepdim=True)
    grey = torch.cat((matched.clamp(0.0, 100.0), torch.zeros_like(matched), torch.zeros_like(matched)), dim=1)
    return lab_to_rgb(grey).clamp(0.0, 1.0)  # (B, 3, H, W)


def keep_colors(stylized: Tensor, content: Tensor) -> Tensor:
    """The stylized image's lightness L* with the content's a* and b*, as sRGB clamped to [0, 1].

    Clamping is where the result can depart from the content's a*, b*: a saturated colour made much
    lighter or darker than it was may have no sRGB value (docs/quality.md, Colour).
    """
    lab = torch.cat((rgb_to_lab(stylized)[:, :1], rgb_to_lab(content)[:, 1:]), dim=1)  # (B, 3, H, W)
    return lab_to_rgb(lab).clamp(0.0, 1.0)


def chroma_difference(image: Tensor, reference: Tensor) -> Tensor:
    """Mean CIELAB colour difference in a* and b* only, sqrt(da*^2 + db^2) per pixel, of two
    (B, 3, H, W) images: how far `image` moved from `reference`'s colours, lightness aside. (B,)"""
    difference = rgb_to_lab(image)[:, 1:] - rgb_to_lab(reference)[:, 1:]  # (B, 2, H, W)
    return difference.pow(2).sum(1).sqrt().mean((1, 2))  # (B,)


def match_colors(style: Tensor, content: Tensor) -> Tensor:
    """The style's RGB colours mapped onto the content's mean and covariance (paper, section 2.1).

    x -> A (x - mu_s) + mu_c with A = Sigma_c^(1/2) Sigma_s^(-1/2), both symmetric square roots;
    computed in float64. Not clamped: the caller decides whether colours may leave [0, 1].
    Returns (B, 3, Hs, Ws) in the style's dtype.
    """
    style_flat, content_flat = style.double().flatten(2), content.double().flatten(2)  # (B, 3, N)
    style_mean, content_mean = style_flat.mean(2, keepdim=True), content_flat.mean(2, keepdim=True)  # (B, 3, 1)
    floor = _COVARIANCE_FLOOR * torch.eye(3, dtype=torch.float64, device=style.device)
    transform = _matrix_power(_covariance(content_flat), 0.5) @ _matrix_power(_covariance(style_flat) + floor, -0.5)
    mapped = transform @ (style_flat - style_mean) + content_mean  # (B, 3, N)
    return mapped.reshape(style.shape).to(style.dtype)


def _covariance(flat: Tensor) -> Tensor:
    centred = flat - flat.mean(2, keepdim=True)
    return centred @ centred.transpose(1, 2) / flat.shape[2]  # (B, 3, 3)


def _matrix_power(matrix: Tensor, power: float) -> Tensor:
    """A symmetric positive semi-definite matrix to a real power, by its eigendecomposition."""
    values, vectors = torch.linalg.eigh(matrix)  # (B, 3), (B, 3, 3)
    return vectors @ torch.diag_embed(values.clamp(min=1e-12) ** power) @ vectors.transpose(1, 2)


def style_for(mode: PreserveColors, style: Tensor, content: Tensor) -> Tensor:
    """The style image as the run uses it for `content` (a shot's first frame, or an image).

    none: unchanged; luminance: its luminance matched to the content's (a grey image);
    histogram: its colours mapped onto the content's, clamped to [0, 1].
    """
    if mode == PreserveColors.luminance:
        return match_luminance(style, content)
    if mode == PreserveColors.histogram:
        return match_colors(style, content).clamp(0.0, 1.0)
    return style
