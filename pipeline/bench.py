"""Speed measurements behind `stylereel bench`: one optimisation iteration, and whole frames.

An iteration is one evaluation of the loss and its gradient with respect to the image, plus the
optimiser's step: the unit every optimisation-based method pays hundreds of times per frame.
`bench_iterations` times stylereel's iteration beside a reference loop written the textbook way
(torchvision's VGG-19 layout, NCHW fp32, in-place ReLUs, `torch.optim.LBFGS` with a closure that
clamps the pixels, as the PyTorch tutorial does) and beside the hardware's floor: the time the
iteration's convolutions need at the rate this device sustains on exactly those convolutions.

Convention: sizes are (width, height) in pixels; times are seconds per iteration, the median of
`repeat` timed runs after warm-up; FLOPs count multiply-adds as two, as torch.utils.flop_counter does.
"""

from __future__ import annotations

import dataclasses
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from . import io, run
from .config import Config
from .errors import ConfigError
from .losses import content_loss, style_loss, tv_loss
from .model import LAYERS, TORCHVISION_CONV_INDICES, VGG19
from .optimize import Targets, content_targets, iteration_step, style_grams
from .outputs import Summary
from .network import TransformNet
from .sequence import load_model, minimum_side, prepare_session, read_styles, select_device
from .train import BATCH, compiled_network, train_network


@dataclass(frozen=True)
class LoopTiming:
    """Seconds and FLOPs of one iteration of one loop."""

    name: str
    seconds: float  # median seconds per iteration
    flops: float  # floating-point operations per iteration (forward and backward)

    @property
    def gflops_per_second(self) -> float:
        return self.flops / self.seconds / 1e9


@dataclass(frozen=True)
class SizeResult:
    """Every loop timed at one size, and the floor they are measured against."""

    width: int
    height: int
    floor_seconds: float  # stylereel's iteration FLOPs at the sustained convolution rate
    conv_gflops_per_second: float  # the rate this device sustains on the iteration's convolutions
    loops: list[LoopTiming]

    def loop(self, name: str) -> LoopTiming:
        return next(loop for loop in self.loops if loop.name == name)


TEXTBOOK = "textbook"  # all 16 convs and 5 pools, trainable weights: the untruncated, unfrozen form
TEXTBOOK_FROZEN = "textbook, frozen"  # the tutorial's form: truncated after the last loss layer, frozen


@dataclass(frozen=True)
class Variant:
    """One way of running stylereel's own iteration."""

    name: str
    bf16: bool = False  # convolutions under bf16 autocast
    channels_last: bool = False
    compile: bool = False  # the loss through torch.compile


def variants_for(device: torch.device, *, compile: bool) -> list[Variant]:
    """stylereel as it runs on `device` by default, plus fp32 beside bf16 on CUDA and the compiled form."""
    if device.type == "cuda":
        found = [Variant("stylereel, bf16", bf16=True, channels_last=True),
                 Variant("stylereel, fp32", channels_last=True)]
    else:
        found = [Variant("stylereel")]
    if compile:
        found.append(dataclasses.replace(found[0], name=f"{found[0].name}, compiled", compile=True))
    return found


def bench_iterations(model: VGG19, config: Config, variants: list[Variant], *, width: int, height: int,
                     device: torch.device, repeat: int = 5, warmup: int = 2) -> SizeResult:
    """Time stylereel's iteration in each variant, both textbook loops and the convolution floor.

    `model` is stylereel's truncated VGG on `device`; the textbook loops get the same weights in
    torchvision's layout. Content and style are seeded noise: the cost does not depend on the pixels.
    The floor is stylereel's FLOPs at the rate this device sustains on the same convolutions alone.
    """
    generator = torch.Generator().manual_seed(0)
    content = torch.rand(1, 3, height, width, generator=generator).to(device)
    style = torch.rand(1, 3, height, width, generator=generator).to(device)
    flops = _count_flops(_stylereel_step(model, content, style, config))  # every variant does the same maths
    loops = []
    for variant in variants:
        model.set_execution(bf16=variant.bf16, channels_last=variant.channels_last)
        step = _stylereel_step(model, content, style, dataclasses.replace(config, compile=variant.compile))
        loops.append(LoopTiming(variant.name, _median_seconds(step, repeat, warmup, device), flops))
    model.set_execution(bf16=False, channels_last=False)
    for name, frozen, truncated in ((TEXTBOOK, False, False), (TEXTBOOK_FROZEN, True, True)):
        step = _textbook_step(model, content, style, config, frozen=frozen, truncated=truncated)
        loops.append(LoopTiming(name, _median_seconds(step, repeat, warmup, device), _count_flops(step)))
    conv_flops, conv_seconds = conv_floor(model, content, variants[0], repeat=repeat, warmup=warmup)
    rate = conv_flops / conv_seconds
    return SizeResult(width, height, loops[0].flops / rate, rate / 1e9, loops)


def check_inputs(config: Config, *, sizes: list[int], clip: Path | None, styles: list[Path]) -> None:
    """Refuse, before any timing, a size too small for the network and an unreadable clip or style.

    Raises:
        ConfigError: a size is under what VGG-19 needs; InputError: the clip or a style cannot be read.
    """
    smallest = minimum_side(config)
    for size in sizes:
        if size < smallest:
            raise ConfigError(f"--size {size}: too small, VGG-19 needs at least {smallest} px on a side")
    if clip is not None:
        info = io.probe_video(clip)
        width, height = io.fit_size(info.width, info.height, config.working_side, even=True)
        read_styles(config, styles, long_side=max(width, height))


def run_iterations(config: Config, *, sizes: list[int], repeat: int, compile: bool) -> Iterator[SizeResult]:
    """`bench_iterations` at each square size on the config's device, with the run's network."""
    check_inputs(config, sizes=sizes, clip=None, styles=[])
    device = select_device(config.device)
    model = load_model(config, device)
    for size in sizes:
        yield bench_iterations(model, config, variants_for(device, compile=compile), width=size, height=size,
                               device=device, repeat=repeat)


def run_video(clip: Path, styles: list[Path], config: Config, *, n_frames: int) -> Summary:
    """Stylize the first `n_frames` of `clip` as a user would, into a temporary file; the summary
    holds the seconds of each stage (decode, flow, optimize, encode, checkpoint)."""
    with tempfile.TemporaryDirectory(prefix="stylereel-bench-") as folder:
        config = dataclasses.replace(config, max_frames=n_frames)
        return run.stylize_video(clip, styles, Path(folder) / "bench.mp4", config, overwrite=True)


@dataclass(frozen=True)
class NetworkTiming:
    """The network engine at one frame size: painting a frame, and one training step (`time_network`)."""

    width: int
    height: int
    paint_seconds: float  # per frame, painted in batches of `train.BATCH`, NCHW
    paint_channels_last_seconds: float  # the same in channels_last memory layout
    paint_bf16_seconds: float  # the same under bfloat16 autocast (`--precision bf16`)
    train_step_seconds: float  # one Adam step on a pair of frames (cropped to `train_crop`), flow included
    paint_compiled_seconds: float | None = None  # NCHW painting through torch.compile (`--compile`), if timed
    paint_compiled_bf16_seconds: float | None = None  # the same under bfloat16 autocast


def time_network(config: Config, styles: list[Path], *, size: int, repeat: int, compile: bool = False
                 ) -> NetworkTiming:
    """Time the network engine on 16:9 frames of long side `size` on the config's device: painting
    (median of `repeat` batches after one untimed; with `compile` also through torch.compile, its
    compilation untimed) and a training step (median of `repeat` steps after one untimed), on
    random frames with the first of `styles`."""
    device = select_device(config.device)
    width, height = io.fit_size(size, size * 9 // 16, size, even=True)
    network = TransformNet(width=config.network_width).to(device).eval()
    batch = torch.rand(BATCH, 3, height, width, device=device)

    @torch.no_grad()
    def paint() -> Tensor:
        return network(batch)

    nchw = _median_seconds(paint, repeat, 1, device) / BATCH
    with torch.autocast(device.type, dtype=torch.bfloat16):
        bf16 = _median_seconds(paint, repeat, 1, device) / BATCH
    compiled = compiled_bf16 = None
    if compile:
        run = compiled_network(network)
        with torch.no_grad():
            compiled = _median_seconds(lambda: run(batch), repeat, 1, device) / BATCH
            with torch.autocast(device.type, dtype=torch.bfloat16):
                compiled_bf16 = _median_seconds(lambda: run(batch), repeat, 1, device) / BATCH
    network.to(memory_format=torch.channels_last)
    batch = batch.contiguous(memory_format=torch.channels_last)
    channels_last = _median_seconds(paint, repeat, 1, device) / BATCH
    session = prepare_session(config, styles[:1], size=(height, width))
    frames = [(torch.rand(height, width, 3) * 255).to(torch.uint8).numpy() for _ in range(2)]
    steps: list[float] = []
    train_network(session, frames, [0], steps=repeat + 1, emit=lambda event: steps.append(event.seconds))
    step_seconds = statistics.median(b - a for a, b in zip(steps[:-1], steps[1:]))
    return NetworkTiming(width, height, nchw, channels_last, bf16, step_seconds, compiled, compiled_bf16)


def _stylereel_step(model: VGG19, content: Tensor, style: Tensor, config: Config) -> Callable[[], None]:
    """One iteration exactly as `stylize_frame` runs it."""
    targets = Targets(content_targets(model, content, config), style_grams(model, [style], (), config))
    return iteration_step(model, content, targets, config)


def _textbook_step(model: VGG19, content: Tensor, style: Tensor, config: Config, *,
                   frozen: bool, truncated: bool) -> Callable[[], None]:
    """The reference loop: torchvision-layout VGG-19 with in-place ReLUs, features taken by index."""
    features = _torchvision_features(model, frozen=frozen, truncated=truncated).to(content.device)
    taps = {name: TORCHVISION_CONV_INDICES[index] + 1 for index, (name, *_) in enumerate(LAYERS)}  # after the ReLU

    def gram(features: Tensor) -> Tensor:  # the textbook product; autograd differentiates it
        b, c, h, w = features.shape
        flat = features.reshape(b * c, h * w)
        return (flat @ flat.t() / (h * w))[None]  # (1, C, C)

    def run(image: Tensor) -> dict[str, Tensor]:
        x, out = model.preprocess(image), {}
        for index, layer in enumerate(features):
            x = layer(x)
            out[index] = x
        return {name: out[index] for name, index in taps.items() if index in out}

    with torch.no_grad():
        content_features = run(content)[config.content_layer].clone()
        style_features = run(style)
        grams = {name: gram(style_features[name]).clone() for name in config.style_layers}
    image = content.clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS([image], max_iter=1)  # one closure evaluation (an iteration) per step

    def closure() -> Tensor:
        with torch.no_grad():
            image.clamp_(0, 1)
        optimizer.zero_grad()
        found = run(image)
        style = sum(weight * style_loss(gram(found[name]), grams[name])
                    for name, weight in zip(config.style_layers, config.style_layer_weights))
        loss = (config.content_weight * content_loss(found[config.content_layer], content_features)
                + config.style_weight * style + config.tv_weight * tv_loss(image))
        loss.backward()
        return loss

    return lambda: optimizer.step(closure)


def _torchvision_features(model: VGG19, *, frozen: bool, truncated: bool) -> nn.Sequential:
    """torchvision's `vgg19().features` layout (max pools, in-place ReLUs) holding `model`'s weights."""
    layers: list[nn.Module] = []
    for (name, _, c_in, c_out), source in zip(LAYERS, model.convs):
        if name.endswith("_1") and name != "conv1_1":
            layers.append(nn.MaxPool2d(2, 2))
        conv = nn.Conv2d(c_in, c_out, 3, padding=1)
        conv.load_state_dict(source.state_dict())
        layers += [conv, nn.ReLU(inplace=True)]
    for _, _, c_in, c_out in LAYERS[len(model.convs):] if not truncated else ():
        layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(inplace=True)]
    if not truncated:
        layers.append(nn.MaxPool2d(2, 2))
    return nn.Sequential(*layers).requires_grad_(not frozen)


def conv_floor(model: VGG19, image: Tensor, variant: Variant, *, repeat: int, warmup: int) -> tuple[float, float]:
    """(FLOPs, seconds) of the iteration's convolutions alone: each layer's forward and the
    gradient with respect to its input, on the shapes one iteration sees, in the number format
    and memory layout of `variant` (the device's default way of running)."""
    dtype = torch.bfloat16 if variant.bf16 else torch.float32
    layout = torch.channels_last if variant.channels_last else torch.contiguous_format
    shapes, x = [], model.preprocess(image)
    with torch.no_grad():
        for name, conv in zip(model.names, model.convs):
            if name.endswith("_1") and name != "conv1_1":
                x = model.pool(x, kernel_size=2, stride=2)
            shapes.append(x.shape)
            x = F.relu(conv(x))
    flops = seconds = 0.0
    for shape, conv in zip(shapes, model.convs):
        x = torch.randn(shape, device=image.device, dtype=dtype).contiguous(memory_format=layout).requires_grad_(True)
        weight = conv.weight.detach().to(dtype).contiguous(memory_format=layout)
        bias = conv.bias.detach().to(dtype)
        grad = torch.randn_like(F.conv2d(x.detach(), weight, bias, padding=1))

        def step() -> None:
            out = F.conv2d(x, weight, bias, padding=1)
            (input_grad,) = torch.autograd.grad(out, x, grad)

        seconds += _median_seconds(step, repeat, warmup, image.device)
        flops += _count_flops(step)
    return flops, seconds


def _median_seconds(step: Callable[[], object], repeat: int, warmup: int, device: torch.device) -> float:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeat):
        _synchronize(device)
        start = time.perf_counter()
        step()
        _synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _count_flops(step: Callable[[], object]) -> float:
    with FlopCounterMode(display=False) as counter:
        step()
    return float(counter.get_total_flops())


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()
