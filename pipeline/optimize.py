"""The optimiser loop for one image: Gatys et al. 2015, with Ruder et al. 2016's temporal term.

Convention: images are (1, 3, H, W) float32 RGB in [0, 1] on the model's device.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor

from .config import Config, Optimizer
from .lbfgs import LBFGS
from .losses import content_loss, gram_matrix, range_loss, style_loss, temporal_loss, tv_loss
from .model import VGG19

# Loss values for the progress bar are read (a device sync on a GPU) this often.
REPORT_EVERY = 5
# Adam's default step on [0, 1] pixels: about 5/255 per step, large enough to restyle in a few hundred steps.
ADAM_LEARNING_RATE = 0.02


@dataclass(frozen=True)
class Targets:
    """What one frame is optimised towards.

    `content`: content-layer features of the frame; `grams`: the run's style Grams (B=1);
    `warped` and `mask`: the previous stylized frame warped into this one, (1, 3, H, W), and its
    per-pixel weights (1, 1, H, W) for the temporal loss, or None for no temporal loss.
    """

    content: dict[str, Tensor]
    grams: dict[str, Tensor]
    warped: Tensor | None = None
    mask: Tensor | None = None
    temporal_weight: Tensor | None = None  # this frame's weight when `config.hold_step` sets it, else the config's
    # Per style layer, the Grams of the whole frames the image is a crop of ((B, C, C), no gradient)
    # and their number of positions: the style loss is then the whole frames' (`whole_gram`).
    whole: dict[str, tuple[Tensor, int]] | None = None


@dataclass(frozen=True)
class IterationDone:
    """Progress report after each iteration; `loss` is None except every REPORT_EVERY iterations."""

    iteration: int
    n_iters: int
    loss: float | None


@dataclass(frozen=True)
class FrameResult:
    image: Tensor  # (1, 3, H, W) RGB in [0, 1], detached
    iterations: int  # iterations actually run
    losses: dict[str, float]  # weighted terms at the result: content, style, tv, temporal, total
    step_length: Tensor | None = None  # L-BFGS's at the end (`LBFGS.step_length`), 0-d on the device; None with Adam


def frame_losses(model: VGG19, image: Tensor, targets: Targets, config: Config) -> dict[str, Tensor]:
    """Weighted loss terms of `image` and their sum under "total" (Gatys eq. 7, Ruder eq. 8)."""
    layers = (config.content_layer, *config.style_layers)
    features = model(image, tuple(dict.fromkeys(layers)))
    whole = targets.whole or {}
    style = sum(
        weight * style_loss(whole_gram(features[name], whole.get(name)), targets.grams[name])
        for name, weight in zip(config.style_layers, config.style_layer_weights)
    )
    terms = {
        "content": config.content_weight * content_loss(features[config.content_layer], targets.content[config.content_layer]),
        "style": config.style_weight * style,
        "tv": config.tv_weight * tv_loss(image),
    }
    if config.range_weight > 0:
        terms["range"] = config.range_weight * range_loss(image)
    if targets.warped is not None and config.temporal_weight > 0:
        weight = config.temporal_weight if targets.temporal_weight is None else targets.temporal_weight
        terms["temporal"] = weight * temporal_loss(image, targets.warped, targets.mask)
    terms["total"] = sum(terms.values())
    return terms


def whole_gram(features: Tensor, whole: tuple[Tensor, int] | None) -> Tensor:
    """The Gram matrix of (B, C, h, w) `features`, or with `whole` (the Grams (B, C, C) of the whole
    frames they are a crop of, and their number of positions) the whole frames' Grams, in which
    only the crop's part carries a gradient: its value is the whole frames', its gradient that of
    the whole frames' style loss with respect to the crop (network training, `train.whole_grams`)."""
    gram = gram_matrix(features)  # (B, C, C)
    if whole is None:
        return gram
    whole_grams, positions = whole
    share = features.shape[-2] * features.shape[-1] / positions  # the crop's share of the whole's positions
    return whole_grams + share * (gram - gram.detach())  # (B, C, C)


def look(losses: dict[str, float]) -> float:
    """How far a frame is from its content and style: its loss without the temporal term."""
    return losses["total"] - losses.get("temporal", 0.0)


def stylize_frame(
    model: VGG19,
    init: Tensor,
    targets: Targets,
    *,
    config: Config,
    n_iters: int,
    callback: Callable[[IterationDone], None] | None = None,
    level: float | None = None,
    step_length: Tensor | None = None,
) -> FrameResult:
    """Optimise the pixels of `init` for at most `n_iters` iterations and return the result.

    `init` is not modified. Pixels move freely during the optimisation and the result is clamped
    to [0, 1], as in Gatys's and Ruder's code: clamping after every step breaks L-BFGS's curvature
    pairs, and with a strong temporal term that made some frames diverge (docs/design.md, departure 4).
    L-BFGS without a line search is not monotone, so the result is the best point evaluated.
    The loss is read back every REPORT_EVERY iterations, the loop's only device synchronisation;
    with `config.stop_tolerance` > 0 the frame stops once the best loss improved by less than that
    fraction over the last `config.stop_window` iterations.

    `level` (later frames of a shot, with `config.settle`): the frame also stops once its loss is
    down to the `look` its predecessor ended at (within `stop_tolerance`), and a start already
    there is returned untouched.
    The loss is then read at the first iteration too (one more synchronisation per frame).

    `step_length` (L-BFGS): the first steps' length, from the `FrameResult.step_length` of a similar
    frame (the one before in a shot), instead of a short probe (`lbfgs.LBFGS`).
    """
    optimisation = Optimisation(model, init, targets, config, step_length=step_length)
    best_losses: list[float] = []  # best loss so far, at every reading
    iteration = 0
    for iteration in range(1, n_iters + 1):
        loss = optimisation.step()  # the loss where this step started
        report = iteration % REPORT_EVERY == 0 or iteration == n_iters or (level is not None and iteration == 1)
        value = float(loss.detach()) if report else None
        if callback is not None:
            callback(IterationDone(iteration, n_iters, value))
        if value is not None and level is not None and value <= level * (1 + config.stop_tolerance):
            if iteration == 1:  # the start is already as good as the frame before: keep it as it is
                start = init.detach().clamp(0.0, 1.0)
                return FrameResult(start, 0, final_losses(model, start, targets, config), step_length)
            break
        if value is not None:
            best_losses.append(min(value, best_losses[-1]) if best_losses else value)
            if _converged(best_losses, config):
                break
    result = optimisation.result()
    return FrameResult(result, iteration, final_losses(model, result, targets, config), optimisation.step_length())


def final_losses(model: VGG19, image: Tensor, targets: Targets, config: Config) -> dict[str, float]:
    """Each loss term of `image` (1, 3, H, W) against `targets`, as floats, without gradients."""
    with torch.no_grad():
        return {name: float(value) for name, value in frame_losses(model, image, targets, config).items()}


def iteration_step(model: VGG19, init: Tensor, targets: Targets, config: Config) -> Callable[[], Tensor]:
    """One iteration per call, exactly as `stylize_frame` runs them; returns the loss before the
    step without reading it back (for benchmarks)."""
    return Optimisation(model, init, targets, config).step


def _converged(best_losses: list[float], config: Config) -> bool:
    """Whether the best loss improved by less than `stop_tolerance` (relative) over `stop_window`."""
    readings = max(1, round(config.stop_window / REPORT_EVERY))
    if config.stop_tolerance <= 0 or len(best_losses) <= readings:
        return False
    before, now = best_losses[-1 - readings], best_losses[-1]
    return before - now < config.stop_tolerance * abs(before)


class Optimisation:
    """The pixels being optimised, their optimiser, and the best point evaluated so far: `step()`
    runs one iteration (returning the loss where it started), `result()` the best image, (1, 3, H, W)
    in [0, 1]. `stylize_frame` drives one; benchmarks and tests drive it step by step."""

    def __init__(self, model: VGG19, init: Tensor, targets: Targets, config: Config, *,
                 step_length: Tensor | None = None) -> None:
        self.model, self.targets, self.config = model, targets, config
        self.losses = _compiled_frame_losses() if config.compile else frame_losses
        self.image = init.detach().clone(memory_format=torch.contiguous_format).requires_grad_(True)
        self.optimizer = _make_optimizer(self.image, config, step_length)
        self.best_loss = self.image.new_tensor(float("inf"))
        self.best_image = self.image.detach().clone()

    def step(self) -> Tensor:
        return self.optimizer.step(self._closure)

    def step_length(self) -> Tensor | None:
        """L-BFGS's step length so far (`LBFGS.step_length`), None with Adam."""
        return self.optimizer.step_length() if isinstance(self.optimizer, LBFGS) else None

    def _closure(self) -> Tensor:
        self.optimizer.zero_grad()
        loss = self.losses(self.model, self.image, self.targets, self.config)["total"]
        loss.backward()
        self._keep_best(loss.detach(), self.image.detach())
        if self.holds and self.targets.temporal_weight is None:
            self._set_hold(self.image.grad)
        return loss

    @property
    def holds(self) -> bool:
        return self.config.hold_step > 0 and self.targets.warped is not None and self.config.temporal_weight > 0

    def _set_hold(self, gradient: Tensor) -> None:
        """Raise this frame's temporal weight so held pixels move about `hold_step` at most.

        At the start, held pixels sit on their warped target, so the temporal term adds no gradient
        and the first evaluation is the same whatever its weight: the weight can be set from it.
        Against a pull g, the term (1/D) sum m (x - w)^2 with weight lambda stops a pixel at
        x - w = -g D / (2 lambda m) (its quadratic minimum), so lambda = D mean(|g| / m) / (2 step)
        over held pixels (m > 0.5) keeps their mean move at `step`. Departs from Ruder: docs/quality.md, Hold step.
        """
        mask = self.targets.mask.sum(0, keepdim=True)  # (1, 1, H, W), all rows
        held = (mask > 0.5).expand_as(gradient)
        pull = torch.where(held, gradient.abs() / mask.clamp(min=0.5), 0.0).sum() / held.sum().clamp(min=1)
        needed = gradient[0].numel() * pull / (2 * self.config.hold_step / 255)
        weight = torch.maximum(needed, needed.new_tensor(self.config.temporal_weight))
        self.targets = replace(self.targets, temporal_weight=weight)

    def _keep_best(self, loss: Tensor, image: Tensor) -> None:
        """Remember the lowest-loss image without a device sync (no Python branch on a tensor)."""
        better = loss < self.best_loss
        self.best_image = torch.where(better, image, self.best_image)
        self.best_loss = torch.minimum(loss, self.best_loss)

    def result(self) -> Tensor:
        """The best point, including the one the last step moved to, clamped to [0, 1]; detached."""
        with torch.no_grad():
            self._keep_best(frame_losses(self.model, self.image, self.targets, self.config)["total"], self.image)
        return self.best_image.clamp(0.0, 1.0)


@functools.cache
def _compiled_frame_losses() -> Callable[..., dict[str, Tensor]]:
    """`frame_losses` through `static_graph`: inductor fuses the elementwise work around the
    convolutions (ReLU and pooling backward, the loss terms): 12-23% off a CPU iteration, after
    compiling one graph per frame size and loss shape, tens of seconds each (docs/speed.md, One
    iteration)."""
    return static_graph(frame_losses)


def static_graph(function: Callable[..., Any]) -> Callable[..., Any]:
    """`function` (a function or a module) through torch.compile, one static graph per input shape
    (`--compile`). Where it cannot compile (no C++ compiler, say) dynamo falls back to running eagerly."""
    import torch._dynamo  # loaded only when asked for

    torch._dynamo.config.suppress_errors = True
    return torch.compile(function, dynamic=False)


def _make_optimizer(image: Tensor, config: Config, step_length: Tensor | None) -> torch.optim.Optimizer | LBFGS:
    if config.optimizer == Optimizer.adam:
        return torch.optim.Adam([image], lr=config.learning_rate or ADAM_LEARNING_RATE)
    return LBFGS(image, lr=config.learning_rate or 1.0, history_size=50, step_length=step_length)


def content_targets(model: VGG19, content: Tensor, config: Config) -> dict[str, Tensor]:
    """Content-layer features of the (1, 3, H, W) content image, detached."""
    with torch.no_grad():
        return model(content, (config.content_layer,))


def style_grams(model: VGG19, styles: list[Tensor], blend: tuple[float, ...], config: Config) -> dict[str, Tensor]:
    """Blended style Gram matrices {layer: (1, C, C)}, computed once per run.

    Several styles: the weighted mean of their Grams, which is the minimiser of the weighted sum of
    the per-style losses (so it blends exactly as separate losses would, at a third of the cost).
    """
    weights = blend or (1.0,) * len(styles)
    if len(weights) != len(styles):
        raise ValueError(f"{len(weights)} style blend weights for {len(styles)} style images")
    grams = {name: 0.0 for name in config.style_layers}
    with torch.no_grad():
        for style, weight in zip(styles, weights):
            features = model(style, config.style_layers)
            for name in config.style_layers:
                grams[name] = grams[name] + weight / sum(weights) * gram_matrix(features[name])
    return grams
