"""Loss functions of Gatys et al. 2015 and Ruder et al. 2016, as plain tensor functions.

Convention: features are (B, C, H, W); images are (B, 3, H, W) RGB in [0, 1]. Every loss is a mean,
not a sum, so its scale does not change with the resolution (departs from Gatys, who sum; it only
rescales the weights alpha and beta).
"""

from __future__ import annotations

import torch
from torch import Tensor


def gram_matrix(features: Tensor) -> Tensor:
    """Gram matrix of (B, C, H, W) features, divided by H * W: (B, C, C).

    Gatys eq. 3 with the 1/M_l of eq. 4 folded in, so Grams of different image sizes compare.
    """
    b, c, h, w = features.shape
    flat = features.reshape(b, c, h * w)  # (B, C, M)
    return _Gram.apply(flat) / (h * w)  # (B, C, C)


class _Gram(torch.autograd.Function):
    """F F^T with a one-product backward: d(F F^T) = (G' + G'^T) F, where autograd's generic
    rule for `flat @ flat.T` does two products and adds them (a sixth of a CPU iteration, measured)."""

    @staticmethod
    def forward(ctx, flat: Tensor) -> Tensor:
        ctx.save_for_backward(flat)
        return flat @ flat.transpose(1, 2)  # (B, C, C)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        (flat,) = ctx.saved_tensors
        return (grad + grad.transpose(1, 2)) @ flat  # (B, C, M)


def content_loss(features: Tensor, target: Tensor) -> Tensor:
    """Mean squared difference of feature maps (Gatys eq. 1, as a mean)."""
    return (features - target).pow(2).mean()


def style_loss(gram: Tensor, target: Tensor) -> Tensor:
    """Mean squared difference of Gram matrices (Gatys eq. 4: the 1/(4 N^2) is the mean, less 1/4)."""
    return (gram - target).pow(2).mean()


def tv_loss(image: Tensor) -> Tensor:
    """Total variation: mean squared difference of horizontally and vertically adjacent pixels."""
    dx = image[..., :, 1:] - image[..., :, :-1]
    dy = image[..., 1:, :] - image[..., :-1, :]
    return dx.pow(2).mean() + dy.pow(2).mean()


def range_loss(image: Tensor) -> Tensor:
    """Mean squared distance of pixel values from [0, 1] (0 inside it). Departs from Gatys and Ruder:
    their pixels move freely and the result is clamped once at the end (docs/quality.md, The range term)."""
    return (image - image.clamp(0.0, 1.0)).pow(2).mean()


def temporal_loss(image: Tensor, warped: Tensor, mask: Tensor) -> Tensor:
    """Ruder et al. 2016 eq. 7 and 9: mask-weighted squared difference to warped earlier frames.

    `image` is (1, 3, H, W); `warped` is (J, 3, H, W), one earlier frame per row (J = 1 for the
    short-term loss, several for long-term consistency) and `mask` (J, 1, H, W) in [0, 1] its weights
    (0 at disocclusions and motion boundaries), the same for the three channels. Eq. 7 is
    (1/D) sum_k c_k (x_k - w_k)^2 with D = W x H x C, the dimensionality of the image, so each row's
    mean over pixels and channels is Ruder's loss as written, not a departure; rows are summed (eq. 9).
    """
    return (mask * (image - warped).pow(2)).mean((1, 2, 3)).sum()
