"""`stylereel video | frames | image`: the Typer app.

The CLI keeps no defaults of its own: every option left unset keeps the value of `--config` (or of
the `Config` dataclass), so presets and flags compose.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from stylereel.pipeline import __version__
from stylereel.pipeline import bench as benchmark
from stylereel.pipeline import evaluate as evaluation
from stylereel.pipeline import learned, run
from stylereel.pipeline import preview as previews
from stylereel.pipeline import shots as planning
from stylereel.pipeline.config import (
    SOURCE, Config, Device, Engine, Flow, Init, Optimizer, Precision, PreserveColors, load_config,
)
from stylereel.pipeline.errors import ConfigError, Interrupted, StylereelError

from .progress import (
    PreviewView, ProgressView, print_bench, print_estimate, print_evaluation, print_network, print_phases, print_shots,
    print_summary, print_training,
)

app = typer.Typer(
    help="Paint videos, frame folders and images in the style of an artwork.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ContentFile = Annotated[Path, typer.Argument(metavar="CONTENT", show_default=False, help="Content video or image.")]
Styles = Annotated[Optional[list[Path]], typer.Option(
    "--style", "-s", help="Style image; repeat to blend several. With --model: may be left out (the model's).")]
ModelOption = Annotated[Optional[Path], typer.Option(
    "--model", metavar="MODEL.safetensors", help="Paint with this model file (stylereel train) instead: the "
    "network engine, no training. -s, if given, must be the styles it was trained for.")]
ConfigPath = Annotated[Optional[Path], typer.Option("--config", "-c", help="TOML file, or a preset's name (configs/NAME.toml, e.g. preview).")]
StyleBlend = Annotated[Optional[list[float]], typer.Option("--style-blend", help="Weight of each style image, in order.")]
PreserveColorsOption = Annotated[Optional[PreserveColors], typer.Option(
    "--preserve-colors", help="Keep the content's colours: luminance (style on lightness only) or histogram "
    "(style recoloured to the content's).")]
StyleScale = Annotated[Optional[float], typer.Option(help="Style image long side as a multiple of the content's.")]
MaxSide = Annotated[Optional[str], typer.Option(
    metavar="PX|source", help="Long side of the working resolution in pixels, or 'source' for the input's own size.")]
Iterations = Annotated[Optional[int], typer.Option(help="Most iterations for each frame after a shot's first.")]
FirstIterations = Annotated[Optional[int], typer.Option(
    help="Most iterations per size for a shot's first frame (and images): each rung of the coarse-to-fine ladder.")]
ContentWeight = Annotated[Optional[float], typer.Option(help="Weight of the content loss.")]
StyleWeight = Annotated[Optional[float], typer.Option(help="Weight of the style loss.")]
TvWeight = Annotated[Optional[float], typer.Option(help="Weight of the total-variation loss.")]
TemporalWeight = Annotated[Optional[float], typer.Option(help="Weight of the temporal loss (0 = off).")]
InitOption = Annotated[Optional[Init], typer.Option("--init", help="How frames after the first start.")]
FlowOption = Annotated[Optional[Flow], typer.Option("--flow", help="Optical flow method.")]
OptimizerOption = Annotated[Optional[Optimizer], typer.Option("--optimizer", help="Pixel optimiser.")]
LearningRate = Annotated[Optional[float], typer.Option(help="Optimiser step size.")]
DeviceOption = Annotated[Optional[Device], typer.Option("--device", help="auto = CUDA, then MPS, then CPU.")]
Seed = Annotated[Optional[int], typer.Option(help="Random seed; same seed, device and number of threads give the same result.")]
MaxFrames = Annotated[Optional[int], typer.Option(help="Stylize only the first N frames.")]
Crf = Annotated[Optional[int], typer.Option(help="H.264 quality (.mp4 outputs): 0 lossless .. 51 worst.")]
StopTolerance = Annotated[Optional[float], typer.Option(
    help="Stop a frame when its loss improved by less than this fraction over stop_window iterations (0 = never).")]
CoarseToFine = Annotated[Optional[bool], typer.Option(
    "--coarse-to-fine/--no-coarse-to-fine", show_default=False,
    help="Start each shot (and an image) small, about 256 px, and double up to the working size, refining at each size.")]
PrecisionOption = Annotated[Optional[Precision], typer.Option("--precision", help="auto = bf16 on CUDA, and for network training on CPUs with bf16 units; else fp32.")]
Compile = Annotated[Optional[bool], typer.Option(
    "--compile/--no-compile", show_default=False,
    help="torch.compile the loss (--engine network: its painting too): faster after about a minute of compiling.")]
Settle = Annotated[Optional[bool], typer.Option(
    "--settle/--no-settle", show_default=False,
    help="A later frame stops once its loss is back to its predecessor's: no drift within a shot.")]
LongTerm = Annotated[Optional[str], typer.Option(
    "--long-term", metavar="1,2,4", help="Also hold each frame to these earlier frames (long-term consistency).")]
Passes = Annotated[Optional[int], typer.Option(
    "--passes", help="Passes over the video, alternating forward and backward (Ruder et al. 3.3).")]
HoldStep = Annotated[Optional[float], typer.Option(
    "--hold-step", metavar="STEP",
    help="Hold linked pixels to about this mean change per frame (/255). For camera moves over still "
         "scenes; it smears moving footage (docs/quality.md, Drift). 0 = off.")]
Residual = Annotated[Optional[float], typer.Option(
    "--residual", metavar="SHARE",
    help="Add this share of the content's change the flow does not explain to each warped frame: keeps "
         "small moving objects, costs style on busy footage (docs/quality.md, Drift). 0 = off.")]
Ray = Annotated[Optional[str], typer.Option(
    "--ray", metavar="ADDRESS",
    help="Run the shots as tasks on a Ray cluster: auto (RAY_ADDRESS / the running one), local, or HOST:PORT.")]
EngineOption = Annotated[Optional[Engine], typer.Option(
    "--engine", help="optimize: each frame's pixels (the papers' method); network: train a small network on the clip "
    "with the same losses, then run it over every frame (much faster on long clips; docs/speed.md).")]
TrainIterations = Annotated[Optional[int], typer.Option(
    "--train-iterations", metavar="N", help="--engine network: training steps (one pair of frames each).")]
Refine = Annotated[Optional[int], typer.Option(
    "--refine", metavar="N", help="--engine network: then at most N iterations of the per-frame optimisation "
    "on each frame, from the network's output (0 = none).")]
Carry = Annotated[Optional[float], typer.Option(
    "--carry", metavar="SHARE", help="--engine network: share of the frame before, warped along the flow, blended "
    "into each painted frame where the flow explains the pixel (steadier; 0 = frames painted on their own).")]
Weights = Annotated[Optional[Path], typer.Option(help="A torchvision-format VGG-19 state dict to use instead.")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace an existing output.")]
Stats = Annotated[Optional[Path], typer.Option("--stats", help="Write per-frame statistics as JSON here.")]
Resume = Annotated[bool, typer.Option("--resume", help="Continue an interrupted run from its last finished frame.")]
TrainResume = Annotated[bool, typer.Option("--resume", help="Continue an interrupted training from its last saved step.")]
KeepFrames = Annotated[bool, typer.Option("--keep-frames", help="Keep the work folder of finished frames.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Print only errors.")]
Debug = Annotated[bool, typer.Option("--debug", help="Show the full traceback on errors.")]

ERROR_EXIT = 2  # bad input, bad output, bad settings
INTERRUPTED_EXIT = 130  # 128 + SIGINT, as shells report Ctrl-C
RUN_OPTIONS = (
    "style_blend", "style_scale", "max_side", "iterations", "first_iterations", "content_weight",
    "style_weight", "tv_weight", "temporal_weight", "init", "flow", "optimizer", "learning_rate",
    "device", "seed", "max_frames", "crf", "weights", "stop_tolerance", "coarse_to_fine", "precision", "compile",
    "settle", "long_term", "passes", "hold_step", "residual", "preserve_colors", "ray", "engine", "train_iterations", "refine",
    "carry",
)


def _print_version(wanted: bool) -> None:
    if wanted:
        typer.echo(f"stylereel {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context, debug: Debug = False,
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="Print stylereel's version and exit.")] = False,
) -> None:
    """Paint videos, frame folders and images in the style of an artwork."""
    ctx.obj = {"debug": debug}


def _debugging(ctx: typer.Context, debug: bool) -> bool:
    """--debug given to the command or to the app (`stylereel --debug video ...`)."""
    return debug or (ctx.obj or {}).get("debug", False)


def _execute(ctx: typer.Context, entry, content: Path, output: Path | None, options: dict) -> None:
    """Build the config from --config and flags, run `entry` with a progress view, map errors to exit codes."""
    console = Console(stderr=True)
    debug = _debugging(ctx, options["debug"])
    extra = {name: options[name] for name in ("resume", "keep_frames", "model") if options.get(name)}
    try:
        config = _config(options)
        if not options["style"] and not options.get("model"):
            raise ConfigError("give a style image (-s/--style), or a model file to paint with (--model)")
        with sigterm_as_interrupt(), ProgressView(quiet=options["quiet"], console=console) as view:
            summary = entry(content, options["style"] or [], output, config, overwrite=options["overwrite"],
                            stats=options["stats"], callback=view.handle, **extra)
        if not options["quiet"]:
            print_summary(console, summary)
    except KeyboardInterrupt:  # before the run had anything to keep (it says what it kept otherwise)
        _fail(console, Interrupted(f"interrupted before any work was kept; nothing was written to {output or 'the output'}"), debug,
              code=INTERRUPTED_EXIT)
    except Interrupted as error:
        _fail(console, error, debug, code=INTERRUPTED_EXIT)
    except StylereelError as error:
        _fail(console, error, debug)


def _config(options: dict) -> Config:
    """The run's Config: --config, then the flags given (those left unset keep the file's values)."""
    overrides = {name: options[name] for name in RUN_OPTIONS if name in options}
    overrides["style_blend"] = tuple(overrides["style_blend"]) if overrides.get("style_blend") else None
    overrides["weights"] = str(overrides["weights"]) if overrides.get("weights") else None
    overrides["long_term"] = _offsets(overrides["long_term"]) if overrides.get("long_term") else None
    overrides["max_side"] = _max_side(overrides["max_side"]) if overrides.get("max_side") else None
    return load_config(options["config"], **overrides)


def _offsets(text: str) -> tuple[int, ...]:
    """"1,2,4" -> (1, 2, 4); ConfigError naming the option otherwise."""
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ConfigError(f"--long-term takes frame offsets separated by commas, e.g. 1,2,4; got {text!r}") from None


def _max_side(text: str) -> int | str:
    """"512" -> 512, "source" stays; ConfigError naming the option otherwise."""
    if text == SOURCE:
        return text
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"--max-side takes a number of pixels or '{SOURCE}', got {text!r}") from None


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM like Ctrl-C, so `kill` also drops the current frame and keeps the checkpoint."""
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@app.command()
def video(
    ctx: typer.Context,
    content: ContentFile,
    output: Annotated[Optional[Path], typer.Option(
        "--output", "-o", help="Default: <input>.stylized.mp4. Suffix: .mp4, .mov, .mkv or .webm.")] = None,
    style: Styles = None, model: ModelOption = None,
    config: ConfigPath = None, style_blend: StyleBlend = None, style_scale: StyleScale = None,
    preserve_colors: PreserveColorsOption = None,
    max_side: MaxSide = None, iterations: Iterations = None, first_iterations: FirstIterations = None,
    content_weight: ContentWeight = None, style_weight: StyleWeight = None, tv_weight: TvWeight = None,
    temporal_weight: TemporalWeight = None, init: InitOption = None, flow: FlowOption = None,
    optimizer: OptimizerOption = None, learning_rate: LearningRate = None, device: DeviceOption = None,
    seed: Seed = None, max_frames: MaxFrames = None, crf: Crf = None, weights: Weights = None,
    stop_tolerance: StopTolerance = None, coarse_to_fine: CoarseToFine = None, precision: PrecisionOption = None,
    compile: Compile = None, settle: Settle = None, long_term: LongTerm = None, passes: Passes = None,
    hold_step: HoldStep = None, residual: Residual = None, engine: EngineOption = None,
    train_iterations: TrainIterations = None, refine: Refine = None, carry: Carry = None,
    ray: Ray = None, overwrite: Overwrite = False, resume: Resume = False, keep_frames: KeepFrames = False,
    stats: Stats = None, quiet: Quiet = False, debug: Debug = False,
) -> None:
    """Stylize a video, keeping frame timing and audio; the output's suffix picks the codec
    (.mp4 H.264, .mov ProRes 422 HQ, .mkv FFV1 lossless, .webm VP9)."""
    _execute(ctx, run.stylize_video, content, output, locals())


@app.command()
def frames(
    ctx: typer.Context,
    content: Annotated[Path, typer.Argument(metavar="FOLDER", show_default=False, help="Folder of frames.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the stylized PNG frames.")],
    style: Styles = None, model: ModelOption = None,
    config: ConfigPath = None, style_blend: StyleBlend = None, style_scale: StyleScale = None,
    preserve_colors: PreserveColorsOption = None,
    max_side: MaxSide = None, iterations: Iterations = None, first_iterations: FirstIterations = None,
    content_weight: ContentWeight = None, style_weight: StyleWeight = None, tv_weight: TvWeight = None,
    temporal_weight: TemporalWeight = None, init: InitOption = None, flow: FlowOption = None,
    optimizer: OptimizerOption = None, learning_rate: LearningRate = None, device: DeviceOption = None,
    seed: Seed = None, max_frames: MaxFrames = None, weights: Weights = None,
    stop_tolerance: StopTolerance = None, coarse_to_fine: CoarseToFine = None, precision: PrecisionOption = None,
    compile: Compile = None, settle: Settle = None, long_term: LongTerm = None, passes: Passes = None,
    hold_step: HoldStep = None, residual: Residual = None, engine: EngineOption = None,
    train_iterations: TrainIterations = None, refine: Refine = None, carry: Carry = None,
    ray: Ray = None, overwrite: Overwrite = False, resume: Resume = False, keep_frames: KeepFrames = False,
    stats: Stats = None, quiet: Quiet = False, debug: Debug = False,
) -> None:
    """Stylize a folder of frames (natural order) into a folder of PNGs with the same names."""
    _execute(ctx, run.stylize_frames, content, output, locals())


@app.command()
def image(
    ctx: typer.Context,
    content: ContentFile,
    output: Annotated[Path, typer.Option("--output", "-o", help="Output image (format from its suffix).")],
    style: Styles = None, model: ModelOption = None,
    config: ConfigPath = None, style_blend: StyleBlend = None, style_scale: StyleScale = None,
    preserve_colors: PreserveColorsOption = None,
    max_side: MaxSide = None, first_iterations: FirstIterations = None,
    iterations: Annotated[Optional[int], typer.Option(
        help="Most iterations per scale; sets first_iterations for this command.")] = None,
    content_weight: ContentWeight = None, style_weight: StyleWeight = None, tv_weight: TvWeight = None,
    optimizer: OptimizerOption = None, learning_rate: LearningRate = None, device: DeviceOption = None,
    seed: Seed = None, weights: Weights = None,
    stop_tolerance: StopTolerance = None, coarse_to_fine: CoarseToFine = None, precision: PrecisionOption = None,
    compile: Compile = None,
    overwrite: Overwrite = False, stats: Stats = None, quiet: Quiet = False, debug: Debug = False,
) -> None:
    """Stylize one image (at most first_iterations iterations per scale, as a shot's first frame)."""
    options = locals() | {"first_iterations": first_iterations if iterations is None else iterations, "iterations": None}
    _execute(ctx, run.stylize_image, content, output, options)


@app.command()
def evaluate(
    ctx: typer.Context,
    content: ContentFile,
    stylized: Annotated[Path, typer.Argument(metavar="STYLIZED", show_default=False, help="The stylized video.")],
    style: Annotated[Optional[list[Path]], typer.Option("--style", "-s", help="Also report mean style/content losses.")] = None,
    config: ConfigPath = None, flow: FlowOption = None, max_frames: MaxFrames = None,
    stride: Annotated[int, typer.Option(help="Compare frames t and t-K (K > 1: long-term consistency).")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    debug: Debug = False,
) -> None:
    """Measure flicker (warping error) of a stylized video against its content, and its losses."""
    console = Console(stderr=True)
    try:
        settings = load_config(config, flow=flow, max_frames=max_frames)
        if stride < 1:
            raise ConfigError(f"--stride must be at least 1, got {stride}")
        result = evaluation.evaluate_video(content, stylized, style or [], settings, stride=stride)
    except StylereelError as error:
        _fail(console, error, _debugging(ctx, debug))
    if as_json:
        typer.echo(json.dumps(dataclasses.asdict(result)))
    else:
        print_evaluation(Console(), result)


@app.command()
def preview(
    ctx: typer.Context,
    content: ContentFile,
    style: Annotated[list[Path], typer.Option("--style", "-s", help="Style image; repeat for a row per style.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The sheet (PNG, or another image suffix).")],
    vary: Annotated[Optional[list[str]], typer.Option(
        "--vary", metavar="KEY=V1,V2", help=f"A setting to vary; repeat. Keys: {', '.join(previews.VARY_KEYS)}.")] = None,
    frame: Annotated[Optional[int], typer.Option(
        "--frame", help="Video frame to preview (default: the middle of the first shot).")] = None,
    config: ConfigPath = None, style_scale: StyleScale = None, preserve_colors: PreserveColorsOption = None,
    max_side: MaxSide = None, iterations: Iterations = None, first_iterations: FirstIterations = None,
    content_weight: ContentWeight = None, style_weight: StyleWeight = None, tv_weight: TvWeight = None,
    optimizer: OptimizerOption = None, device: DeviceOption = None, seed: Seed = None, max_frames: MaxFrames = None,
    stop_tolerance: StopTolerance = None, coarse_to_fine: CoarseToFine = None, passes: Passes = None,
    overwrite: Overwrite = False, quiet: Quiet = False, debug: Debug = False,
) -> None:
    """Stylize one frame with each style and each --vary value at the preview preset's size, as a
    labelled grid; then estimate the full run's time for the settings given."""
    console = Console(stderr=True)
    try:
        settings = _config(locals())
        varied = previews.parse_vary(vary or [])
        with sigterm_as_interrupt(), PreviewView(quiet=quiet, console=console) as view:
            summary = previews.preview_sheet(content, style, output, settings, vary=varied, frame=frame,
                                             overwrite=overwrite, callback=view.handle)
        if not quiet:
            print_estimate(console, summary)
    except KeyboardInterrupt:
        _fail(console, Interrupted(f"interrupted; nothing was written to {output}"), _debugging(ctx, debug),
              code=INTERRUPTED_EXIT)
    except Interrupted as error:
        _fail(console, error, _debugging(ctx, debug), code=INTERRUPTED_EXIT)
    except StylereelError as error:
        _fail(console, error, _debugging(ctx, debug))


@app.command()
def shots(
    ctx: typer.Context,
    content: Annotated[Path, typer.Argument(metavar="VIDEO", show_default=False, help="The video to plan.")],
    config: ConfigPath = None, max_side: MaxSide = None, max_frames: MaxFrames = None, flow: FlowOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    debug: Debug = False,
) -> None:
    """List a video's shots (the cheap planning pass a --ray run makes: decode, flow, cut test; no VGG)."""
    console = Console(stderr=True)
    try:
        settings = load_config(config, max_side=_max_side(max_side) if max_side else None, max_frames=max_frames, flow=flow)
        plan = planning.plan_video(content, settings)
    except StylereelError as error:
        _fail(console, error, _debugging(ctx, debug))
    if as_json:
        typer.echo(json.dumps(planning.plan_summary(plan)))
    else:
        print_shots(Console(), plan)


@app.command()
def train(
    ctx: typer.Context,
    inputs: Annotated[list[Path], typer.Argument(
        metavar="INPUT", show_default=False, help="Videos, frame folders or images to learn from.")],
    style: Annotated[list[Path], typer.Option("--style", "-s", help="Style image; repeat to blend several.")],
    output: Annotated[Optional[Path], typer.Option(
        "--output", "-o", metavar="MODEL.safetensors", help="Default: <first input>.model.safetensors.")] = None,
    config: ConfigPath = None, style_blend: StyleBlend = None, style_scale: StyleScale = None,
    preserve_colors: PreserveColorsOption = None, max_side: MaxSide = None, max_frames: MaxFrames = None,
    content_weight: ContentWeight = None, style_weight: StyleWeight = None, tv_weight: TvWeight = None,
    temporal_weight: TemporalWeight = None, flow: FlowOption = None, train_iterations: TrainIterations = None,
    device: DeviceOption = None, seed: Seed = None, weights: Weights = None,
    overwrite: Overwrite = False, resume: TrainResume = False, quiet: Quiet = False, debug: Debug = False,
) -> None:
    """Train the network engine's network on videos, frame folders or images (each its own shots) and
    save it as a model file, for --model on video, frames and image."""
    console = Console(stderr=True)
    target = output or learned.default_model(inputs[0])
    with _reported(console, _debugging(ctx, debug), target):
        settings = _config(locals())
        with sigterm_as_interrupt(), ProgressView(quiet=quiet, console=console) as view:
            summary = learned.train_model(inputs, style, target, settings, overwrite=overwrite, resume=resume,
                                          callback=view.handle)
        if not quiet:
            print_training(console, summary)


@contextlib.contextmanager
def _reported(console: Console, debug: bool, output: Path) -> Iterator[None]:
    """A StylereelError inside is one line and exit 2, an interruption exit 130 (`_fail`)."""
    try:
        yield
    except KeyboardInterrupt:
        _fail(console, Interrupted(f"interrupted; nothing was written to {output}"), debug, code=INTERRUPTED_EXIT)
    except Interrupted as error:
        _fail(console, error, debug, code=INTERRUPTED_EXIT)
    except StylereelError as error:
        _fail(console, error, debug)


def _fail(console: Console, error: StylereelError, debug: bool, *, code: int = ERROR_EXIT) -> None:
    """One line on stderr and exit `code`; with --debug, the traceback instead."""
    if debug:
        raise error
    label = "interrupted" if isinstance(error, Interrupted) else "error"
    console.print(f"[red]{label}:[/] {escape(str(error))}", highlight=False, soft_wrap=True)
    raise typer.Exit(code) from None


@app.command()
def bench(
    ctx: typer.Context,
    size: Annotated[Optional[list[int]], typer.Option("--size", help="Square side to time; repeat (default: 256 and 512).")] = None,
    repeat: Annotated[int, typer.Option(help="Timed iterations per loop; the median is reported.")] = 5,
    compile: Annotated[bool, typer.Option("--compile/--no-compile", help="Also time the compiled loss and painting.")] = True,
    clip: Annotated[Path, typer.Option(help="Clip for the end-to-end run.")] = Path("samples/clip.mp4"),
    style: Annotated[Optional[list[Path]], typer.Option("--style", "-s", help="Style for the end-to-end run.")] = None,
    frames: Annotated[int, typer.Option(help="Frames of the end-to-end run (0 skips it).")] = 3,
    config: ConfigPath = None, device: DeviceOption = None,
    peak_tflops: Annotated[Optional[float], typer.Option(help="The device's peak, to report the share reached.")] = None,
    debug: Debug = False,
) -> None:
    """Time one iteration against a textbook loop and the hardware floor, the network engine's painting and
    training step, then whole frames by stage."""
    console = Console()
    try:
        settings = load_config(config, device=device)
        styles = style or [Path("samples/styles/swirl.png")]
        benchmark.check_inputs(settings, sizes=size or [256, 512], clip=clip if frames else None, styles=styles)
        for result in benchmark.run_iterations(settings, sizes=size or [256, 512], repeat=repeat, compile=compile):
            print_bench(console, result, peak_tflops)
        for side in size or [256, 512]:
            print_network(console, benchmark.time_network(settings, styles, size=side, repeat=repeat, compile=compile))
        if frames:
            print_phases(console, benchmark.run_video(clip, styles, settings, n_frames=frames))
    except StylereelError as error:
        _fail(Console(stderr=True), error, _debugging(ctx, debug))


if __name__ == "__main__":
    app()
