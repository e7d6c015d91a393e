"""Optical flow between content frames, warping, and Ruder et al. 2016's occlusion mask.

Convention: flow is (B, 2, H, W) float32 in pixels, channel 0 = dx, channel 1 = dy.
`flow(a, b)` maps frame a to frame b: the content at pixel x of a is at x + flow(x) in b.
`warp(image, flow)` samples *backwards*: output(x) = image(x + flow(x)). So to bring frame t-1
into frame t, warp it with the flow from t to t-1 (the backward flow).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .config import Flow


def optical_flow(first: np.ndarray, second: np.ndarray, *, method: Flow | str = Flow.dis) -> Tensor:
    """Dense flow from `first` to `second`, both uint8 (H, W, 3) RGB: (1, 2, H, W) in pixels."""
    method = Flow(method)
    if method == Flow.none:
        raise ValueError("optical_flow called with method 'none'")
    if first.shape != second.shape:
        raise ValueError(f"frames differ in size: {first.shape} and {second.shape}")
    a, b = (cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in (first, second))
    if method == Flow.dis:
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        # The preset stops at half resolution (finest scale 1). Going down to full resolution cut
        # the flow's error on a 1 px pan of a real photo from 0.056 to 0.008 px (std, at 128 px),
        # and a warped frame's error against the exact shift with it (docs/quality.md, Drift).
        dis.setFinestScale(0)
        flow = dis.calc(a, b, None)
    else:
        flow = cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 4, 15, 3, 5, 1.2, 0)
    return torch.from_numpy(np.ascontiguousarray(flow)).permute(2, 0, 1)[None]  # (1, 2, H, W)


def warp(image: Tensor, flow: Tensor) -> Tensor:
    """Sample `image` (B, C, H, W) at x + flow(x), bilinearly; outside the frame takes the border."""
    return F.grid_sample(image, _grid(image, flow), mode="bilinear", padding_mode="border", align_corners=True)


def warp_sharp(image: Tensor, flow: Tensor) -> Tensor:
    """`warp` with bicubic sampling, clipped to [0, 1]: for an image (B, 3, H, W) in [0, 1] warped
    again and again, each time into the next frame (the network engine's `carry`). Bilinear sampling
    at a fractional shift averages neighbours, so a frame carried along 10 warps loses its strokes'
    edges a little more with each; the cubic kernel keeps them (docs/design.md, departure 27)."""
    sampled = F.grid_sample(image, _grid(image, flow), mode="bicubic", padding_mode="border", align_corners=True)
    return sampled.clamp(0, 1)  # the cubic kernel's lobes overshoot at an edge


def _grid(image: Tensor, flow: Tensor) -> Tensor:
    """Where `warp` samples `image`, as grid_sample wants it: (B, H, W, 2) in [-1, 1], where with
    align_corners=True -1 and 1 are pixel centres 0 and n-1 of the image."""
    h, w = image.shape[-2:]
    x, y = _positions(flow.to(image.dtype))
    return torch.stack((2 * x / max(w - 1, 1) - 1, 2 * y / max(h - 1, 1) - 1), dim=-1)  # (B, H, W, 2)


def _positions(flow: Tensor) -> tuple[Tensor, Tensor]:
    """Where each pixel of a (B, 2, H, W) flow points: x + dx and y + dy, each (B, H, W)."""
    h, w = flow.shape[-2:]
    ys, xs = torch.meshgrid(
        torch.arange(h, device=flow.device, dtype=flow.dtype),
        torch.arange(w, device=flow.device, dtype=flow.dtype),
        indexing="ij",
    )
    return xs + flow[:, 0], ys + flow[:, 1]


def occlusion_mask(flow_forward: Tensor, flow_backward: Tensor) -> Tensor:
    """Ruder et al. 2016 section 3.1 weights in frame t: 0 where the flow cannot be trusted, else 1.

    `flow_forward` maps t-1 to t, `flow_backward` maps t to t-1, both (B, 2, H, W). A pixel is 0
    when it is disoccluded (forward-backward check, eq. 5), on a motion boundary (eq. 6), or its
    predecessor lies outside frame t-1. Returns (B, 1, H, W) float.
    """
    forward_at_t = warp(flow_forward, flow_backward)  # w~ in the paper
    round_trip = (forward_at_t + flow_backward).pow(2).sum(1)  # (B, H, W)
    magnitude = forward_at_t.pow(2).sum(1) + flow_backward.pow(2).sum(1)
    disoccluded = round_trip > 0.01 * magnitude + 0.5
    boundary = _flow_gradient(flow_backward) > 0.01 * flow_backward.pow(2).sum(1) + 0.002
    return (~(disoccluded | boundary | _leaves_frame(flow_backward))).unsqueeze(1).float()  # (B, 1, H, W)


def _flow_gradient(flow: Tensor) -> Tensor:
    """|grad u|^2 + |grad v|^2 with central differences, (B, H, W)."""
    padded = F.pad(flow, (1, 1, 1, 1), mode="replicate")
    dx = (padded[..., 1:-1, 2:] - padded[..., 1:-1, :-2]) / 2
    dy = (padded[..., 2:, 1:-1] - padded[..., :-2, 1:-1]) / 2
    return (dx.pow(2) + dy.pow(2)).sum(1)


def _leaves_frame(flow: Tensor) -> Tensor:
    h, w = flow.shape[-2:]
    x, y = _positions(flow)
    return (x < 0) | (x > w - 1) | (y < 0) | (y > h - 1)


# Largest per-channel difference, in [0, 1] units, between a frame and an earlier frame warped into it
# for which the flow still counts as explaining the pixel.
PHOTOMETRIC_THRESHOLD = 0.1


def photometric_error(earlier: Tensor, current: Tensor, flow_backward: Tensor) -> Tensor:
    """Largest per-channel difference (B, 1, H, W) between `current` and `earlier` warped into it."""
    return (warp(earlier, flow_backward) - current).abs().amax(1, keepdim=True)


def photometric_mask(earlier: Tensor, current: Tensor, flow_backward: Tensor, *,
                     threshold: float = PHOTOMETRIC_THRESHOLD) -> Tensor:
    """1 where `earlier` (B, 3, H, W) warped into `current` along `flow_backward` matches it within
    `threshold` in every channel, else 0.

    Catches what the forward-backward check passes: DIS gives a thin occluder's background a
    near-zero, self-consistent flow, so pixels the occluder covered in the earlier frame would be
    held to what it painted there. Returns (B, 1, H, W) float.
    """
    return (photometric_error(earlier, current, flow_backward) <= threshold).to(current.dtype)


def best_explained(masks: Tensor, errors: Tensor, *, margin: float) -> Tensor:
    """Keep, per pixel, only the rows of `masks` (J, 1, H, W) whose link explains the content within
    `margin` of the best linked row: `errors` (J, 1, H, W) are each row's `photometric_error`."""
    errors = torch.where(masks > 0.5, errors, torch.inf)
    return masks * (errors <= errors.amin(0, keepdim=True) + margin).to(masks.dtype)


def closest_first(masks: Tensor) -> Tensor:
    """Ruder et al. 2016 eq. 9: each pixel held only by the nearest earlier frame where it is visible.

    `masks` is (J, 1, H, W) in [0, 1], nearest frame first; returns max(c_j - sum_{k<j} c_k, 0).
    """
    before = torch.cumsum(masks, 0) - masks  # sum over the nearer frames, (J, 1, H, W)
    return (masks - before).clamp(min=0.0)


def warp_residual(previous: Tensor, current: Tensor, flow_backward: Tensor, mask: Tensor) -> float:
    """Mean squared difference between `current` and `previous` warped into it, over the pixels `mask` trusts.

    Both (1, 3, H, W) in [0, 1], averaged over RGB: one pair's E_warp (Lai et al. 2018).
    """
    squared = (current - warp(previous, flow_backward)).pow(2).mean(1, keepdim=True)  # (1, 1, H, W)
    return float((mask * squared).sum() / mask.sum().clamp(min=1.0))


def unlinked_fraction(previous: Tensor, current: Tensor, flow_backward: Tensor, mask: Tensor) -> float:
    """Share of pixels of `current` that the flow cannot explain from `previous` (both (1, 3, H, W) [0, 1]).

    A pixel is unlinked when the mask rejects it or its warped predecessor differs by more than 0.1
    in some channel. A shot change leaves most pixels unlinked; a pan leaves few.
    """
    return unlinked_share(mask, photometric_error(previous, current, flow_backward))


def unlinked_share(mask: Tensor, error: Tensor) -> float:
    """`unlinked_fraction` from the mask and a `photometric_error` already computed (both (1, 1, H, W))."""
    return float(((mask < 0.5) | (error > PHOTOMETRIC_THRESHOLD)).float().mean())