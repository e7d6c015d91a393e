"""Training the network engine on one clip, then painting its frames: a flat recipe.

The network (`network.TransformNet`) learns the clip's own frames with the optimiser's losses: the
content loss and the style Grams of the run (`optimize.frame_losses`, the same weights, layers,
blend and style scale), the TV term, and Ruder et al. 2016's temporal loss between its outputs on
two consecutive frames, the first warped into the second along the content's flow, outside
occlusions (`sequence.link_back`, the chain's occlusion and photometric checks). Each step takes
one pair of consecutive frames of one shot (no pair crosses a cut), the same random crop of both
(brush strokes keep their scale, and a step costs the crop's size, not the frame's), and one Adam
step. Texler et al. 2020 train a per-video network on patches too, from painted keyframes.
Departs from patch training: with `train_whole_frame_style` the crop's style loss is the whole
frame's (`whole_grams`, the pair's first), which is what the optimiser lowers and the evaluator
measures: a crop held to the style's Grams on its own paints every region alike, where the
optimiser spreads the style's textures over the frame so that only the whole frame matches them.

Convention: frames are uint8 (H, W, 3) RGB as the chain sees them (`sequence.chain_view`); images
on the device are (B, 3, H, W) RGB in [0, 1].
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from . import flow, io
from .config import Config
from .events import Callback, TrainStep
from .losses import gram_matrix, temporal_loss
from .network import TransformNet
from .optimize import Targets, content_targets, frame_losses, static_graph
from .sequence import Session, link_back, trains_in_bf16

LEARNING_RATE = 1e-3  # Adam's first step size (Johnson et al. 2016), then `learning_rate`'s decay
BATCH = 4  # frames the network paints at once
SAVE_SECONDS = 60.0  # between checkpoints of training (`train_network`'s `save`)


def learning_rate(step: int, steps: int) -> float:
    """Adam's step size at `step` of `steps`: `LEARNING_RATE` decayed to 0 along a half cosine
    (Loshchilov and Hutter 2017, without restarts). A fixed budget of steps: a constant step size
    keeps the last steps as noisy as the first, the decay lets the network settle (the city clip at
    512 px, 128-px crops, 600 steps: style loss 1.93x the optimiser's against 2.34x, one seed)."""
    return LEARNING_RATE * 0.5 * (1.0 + math.cos(math.pi * step / steps))


def training_pairs(n_frames: int, shot_starts: Iterable[int]) -> list[int]:
    """The frames t whose pair (t, t+1) lies within one shot: no pair crosses a cut."""
    starts = set(shot_starts)
    return [index for index in range(n_frames - 1) if index + 1 not in starts]


@dataclass
class TrainState:
    """Where training stands after `step` steps, all a resume needs to continue it exactly: the
    network's and Adam's state dicts and the sampling generator's state (tensors and plain values)."""

    step: int
    network: dict[str, Tensor]
    optimiser: dict[str, Any]
    generator: Tensor  # torch.Generator.get_state()


def train_network(session: Session, frames: list[np.ndarray], shot_starts: list[int], *, steps: int,
                  emit: Callback, network: TransformNet | None = None, start: int = 0,
                  resume: TrainState | None = None, save: Callable[[TrainState], None] | None = None,
                  save_seconds: float = SAVE_SECONDS) -> TransformNet:
    """Train a network on `frames` for `steps` Adam steps (from step `start` of a given `network`,
    or from where `resume` stood) and return it in eval mode; reports a `TrainStep` after each step.
    Seeded by `config.seed`: the same frames and settings give the same network on the same device
    and threads, and so does a run resumed from a saved `TrainState`. `save` is given the state
    every `save_seconds`, after the last step, and on Ctrl-C (then re-raised) unless it came inside
    Adam's step, which leaves no consistent state (the last save stands)."""
    config = session.config
    network = (network or TransformNet(width=config.network_width)).to(session.device).train()
    optimiser = torch.optim.Adam(network.parameters(), lr=LEARNING_RATE)
    pairs = training_pairs(len(frames), shot_starts) or [None]  # a one-frame clip: frames alone
    generator = torch.Generator().manual_seed(config.seed)
    if resume is not None:
        network.load_state_dict(resume.network)
        optimiser.load_state_dict(resume.optimiser)
        generator.set_state(resume.generator)
        start = resume.step
    began = saved = time.perf_counter()
    done, drawn, stepping = start, generator.get_state(), False  # the last finished step, and the generator then
    bf16 = trains_in_bf16(config, session.device)  # the losses' VGG; a `refine` after runs as the run set it
    try:
        for step in range(start, steps):
            # Sample a pair and a crop, take the losses, and one Adam step.
            for group in optimiser.param_groups:
                group["lr"] = learning_rate(step, steps)
            first = pairs[int(torch.randint(len(pairs), (1,), generator=generator))]
            with session.model.bf16_while(bf16):  # autocast records each op's dtype: backward follows it
                loss = pair_loss(session, network, sample_pair(config, frames, first, generator))
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            stepping = True  # the network and Adam change here, the generator changed above
            optimiser.step()
            done, drawn = step + 1, generator.get_state()
            stepping = False
            emit(TrainStep(done, steps, float(loss.detach()), time.perf_counter() - began))
            # Checkpoint by the clock, not every N steps: a step takes milliseconds on a GPU and
            # seconds on a CPU, so a clock bounds the work a crash loses without flooding the disk.
            if save is not None and (done == steps or time.perf_counter() - saved > save_seconds):
                save(TrainState(done, network.state_dict(), optimiser.state_dict(), drawn))
                saved = time.perf_counter()
    except KeyboardInterrupt:
        if save is not None and not stepping and done > start:
            save(TrainState(done, network.state_dict(), optimiser.state_dict(), drawn))
        raise
    return network.eval()


@dataclass(frozen=True)
class Sample:
    """What one training step learns from (`sample_pair`)."""

    contents: Tensor  # (B, 3, h, w): the crop of a pair's two frames (B = 2), or of one frame
    link: tuple[Tensor, Tensor] | None  # the second frame back to the first: flow (1, 2, h, w), mask (1, 1, h, w)
    whole: Tensor | None = None  # (1, 3, H, W): the first whole frame, where the crop is smaller and
    # `train_whole_frame_style` takes the style loss on it


def pair_loss(session: Session, network: TransformNet, sample: Sample) -> Tensor:
    """The training loss of the network's outputs on a crop (`sample_pair`): content, style and TV,
    and the second frame's output held to the first's, warped into it, outside occlusions."""
    config, device = session.config, session.device
    contents = sample.contents.to(device)
    outputs = network(contents)  # (B, 3, h, w), B = 2 for a pair
    whole = None if sample.whole is None else whole_grams(session, network, sample.whole.to(device))
    targets = Targets(content_targets(session.model, contents, config), session.grams, whole=whole)
    terms = frame_losses(session.model, outputs, targets, config)
    loss = terms["total"]
    if whole is not None:
        # The content, TV and temporal terms are means over the crop, the style term is the whole
        # frame's loss: weigh it by the whole frame's size over the crop's, so the step follows the
        # whole frame's loss (each of its terms a mean over the whole frame) restricted to the crop.
        loss = loss + (sample.whole[0, 0].numel() / contents[0, 0].numel() - 1) * terms["style"]
    if sample.link is not None and config.train_temporal_weight > 0:
        backward, mask = (tensor.to(device) for tensor in sample.link)
        warped = flow.warp(outputs[:1], backward)
        loss = loss + config.train_temporal_weight * temporal_loss(outputs[1:], warped, mask)
    return loss


def whole_grams(session: Session, network: TransformNet, whole: Tensor) -> dict[str, tuple[Tensor, int]]:
    """The style Grams of the network's outputs on the `whole` frames (B, 3, H, W), without a
    gradient, and their number of positions, per style layer (`optimize.whole_gram`). A forward
    pass of a whole frame each step: 2.65 s a step against 1.92 s at 512x288 with 256-px crops on
    a 2-core CPU (docs/speed.md, Whole-frame style)."""
    with torch.no_grad():
        features = session.model(network(whole), session.config.style_layers)
        return {name: (gram_matrix(value), value.shape[-2] * value.shape[-1]) for name, value in features.items()}


def sample_pair(config: Config, frames: list[np.ndarray], first: int | None, generator: torch.Generator) -> Sample:
    """A random crop of the pair (`first`, `first` + 1) of `frames`, with the link from the second
    back to the first; for no pair, one random frame and no link. With `train_whole_frame_style`,
    and a crop smaller than the frames, the first whole frame too."""
    if first is None:
        index = int(torch.randint(len(frames), (1,), generator=generator))
        whole = io.to_tensor(frames[index])  # (1, 3, H, W)
        return Sample(_crop([whole], config.train_crop, generator)[0], None, _whole(config, whole))
    backward, mask = link_back(config.flow, frames[first], frames[first + 1])
    whole = torch.cat([io.to_tensor(frames[first]), io.to_tensor(frames[first + 1])])  # (2, 3, H, W)
    contents, backward, mask = _crop([whole, backward, mask], config.train_crop, generator)
    return Sample(contents, (backward, mask * _lands_inside(backward)), _whole(config, whole))


def _whole(config: Config, whole: Tensor) -> Tensor | None:
    """The first frame of `whole` where `train_whole_frame_style` asks for it and a crop is smaller
    than it, else None. One frame's Grams stand for the pair's: on the sample's scene at 512 px two
    consecutive frames' Grams differ by 0.3-4% of their distance to the style's, and the frames'
    pass costs half as much (docs/speed.md, Whole-frame style)."""
    h, w = whole.shape[-2:]
    return whole[:1] if config.train_whole_frame_style and config.train_crop < max(h, w) else None  # (1, 3, H, W)


def _crop(tensors: list[Tensor], side: int, generator: torch.Generator) -> list[Tensor]:
    """The same random window of at most `side` x `side` pixels of each (B, C, H, W) tensor."""
    h, w = tensors[0].shape[-2:]
    ch, cw = min(side, h), min(side, w)
    top = int(torch.randint(h - ch + 1, (1,), generator=generator))
    left = int(torch.randint(w - cw + 1, (1,), generator=generator))
    return [tensor[..., top : top + ch, left : left + cw] for tensor in tensors]


def _lands_inside(backward: Tensor) -> Tensor:
    """1 where a pixel's flow lands inside the crop (its warped value is real), else 0: (1, 1, h, w)."""
    h, w = backward.shape[-2:]
    ys, xs = torch.meshgrid(torch.arange(h, dtype=backward.dtype), torch.arange(w, dtype=backward.dtype),
                            indexing="ij")
    x, y = xs + backward[:, 0], ys + backward[:, 1]  # (1, h, w)
    return ((x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)).to(backward.dtype)[:, None]


def carried(painted: Tensor, warped: Tensor, mask: Tensor, *, share: float) -> Tensor:
    """`painted` (1, 3, H, W) with `share` of `warped` (the finished frame before it, warped into it)
    blended in where `mask` (1, 1, H, W) in [0, 1] says the flow explains the pixel. The network
    paints each frame on its own, so a small change of the input can move its strokes; the
    optimiser starts each frame from the warped one before (Ruder et al. 2016, section 3.1) and
    keeps them. Carrying a share of it makes the painted strokes follow the flow the same way."""
    return painted + share * mask * (warped - painted)


def paint(network: TransformNet, frames: Iterable[np.ndarray], device: torch.device, *,
          bf16: bool = False, compiled: bool = False) -> Iterator[np.ndarray]:
    """Each of `frames` (uint8 (H, W, 3)) through the network, in order, `BATCH` at a time; with
    `bf16`, its convolutions in bfloat16 (`--precision bf16`, the default on CUDA); with `compiled`,
    the network through torch.compile (`--compile`; a short last batch is padded to `BATCH`, so one
    graph serves a run). A frame's result does not depend on the frames sharing its batch."""
    run = compiled_network(network) if compiled else network
    batch: list[np.ndarray] = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == BATCH:
            yield from _paint_batch(run, batch, device, bf16, pad=compiled)
            batch = []
    yield from _paint_batch(run, batch, device, bf16, pad=compiled)


def compiled_network(network: TransformNet) -> Callable[[Tensor], Tensor]:
    """`network` through `optimize.static_graph`, one graph per frame size: inductor fuses the
    instance norms, paddings and activations around the convolutions (docs/speed.md, The network engine)."""
    return static_graph(network)


@torch.no_grad()  # per batch, not around the generator: a no_grad held across `yield` leaks into the caller
def _paint_batch(network: Callable[[Tensor], Tensor], batch: list[np.ndarray], device: torch.device, bf16: bool, *,
                 pad: bool) -> list[np.ndarray]:
    if not batch:
        return []
    images = torch.cat([io.to_tensor(frame) for frame in batch]).to(device)  # (B, 3, H, W)
    if pad and len(batch) < BATCH:
        images = torch.cat([images, images[-1:].expand(BATCH - len(batch), -1, -1, -1)])  # (BATCH, 3, H, W)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        painted = network(images)[: len(batch)].float()
    return [io.to_array(image[None]) for image in painted.cpu()]
