"""The preview sheet: one frame stylized with each style and each combination of varied settings,
at the preview preset's size, laid out as a labelled grid in one PNG; and estimates of the full
run's time on this device, by each engine (`estimates`).

Convention: frames and cells are uint8 (H, W, 3) RGB arrays here (the sheet is a picture, not a
tensor); the stylization itself goes through `run.stylize_array`.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
import typing
from dataclasses import dataclass
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from . import io, preflight, run
from .config import Config, load_config, preset_file
from .errors import ConfigError, InputError, Interrupted
from .estimates import Estimate, Timings, network_estimate, optimize_estimate, time_iteration, time_network
from .events import Callback, CellDone, Event, FrameStarted, IterationDone, Notice, PreviewStarted
from .sequence import chain_view, check_frame_size, is_scene_cut, prepare_session, read_styles
from .shots import link_share

# The settings a sheet can vary: those that change how one frame looks.
VARY_KEYS = ("style_weight", "content_weight", "tv_weight", "style_scale", "preserve_colors", "first_iterations",
             "optimizer", "pooling", "seed")
PREVIEW_PRESET = preset_file("preview")  # configs/preview.toml, installed with the package
PREVIEW_KEYS = ("max_side", "first_iterations", "rung_iterations", "iterations")  # what the cells take from it
MAX_SCAN = 900  # frames searched for the first scene cut when --frame is not given (30 s at 30 fps)
GAP = 4  # pixels between cells and around the grid
TIMED_ITERATIONS = 2  # iterations (and training steps) timed at the full run's size for the estimate, after one untimed


@dataclass(frozen=True)
class PreviewSummary:
    output: Path
    frame: int | None  # the video frame used (None for an image)
    n_cells: int  # content cells included
    rows: int
    columns: int
    cell_width: int  # pixels, label strip included
    cell_height: int
    seconds: float  # stylizing the cells
    estimate: Estimate  # the optimiser's
    network: Estimate | None = None  # the network engine's (a video, one pass)


def parse_vary(items: list[str]) -> dict[str, list[Any]]:
    """["style_weight=1e-4,1e-3", ...] -> {"style_weight": [1e-4, 1e-3], ...}, each value checked
    against the Config field; ConfigError naming the item otherwise."""
    hints = typing.get_type_hints(Config)
    vary: dict[str, list[Any]] = {}
    for item in items:
        key, equals, values = item.partition("=")
        key = key.strip().replace("-", "_")
        if key not in VARY_KEYS:
            raise ConfigError(f"--vary {item}: cannot vary '{key}' (can vary: {', '.join(VARY_KEYS)})")
        if not equals or not values.strip():
            raise ConfigError(f"--vary {item}: expected {key}=VALUE1,VALUE2,...")
        if key in vary:
            raise ConfigError(f"--vary {item}: '{key}' is varied twice")
        vary[key] = [_value(item, key, text.strip(), hints[key]) for text in values.split(",")]
    return vary


def _value(item: str, key: str, text: str, hint: Any) -> Any:
    try:
        value = int(text) if hint is int else float(text) if hint is float else text
        dataclasses.replace(Config(), **{key: value})  # the field's own checks (ranges, choices)
    except ValueError:
        raise ConfigError(f"--vary {item}: '{text}' is not a valid {key} (expected {hint.__name__})") from None
    except ConfigError as error:
        raise ConfigError(f"--vary {item}: {error}") from None
    return value


def cell_config(config: Config, preset: Path | Traversable = PREVIEW_PRESET) -> Config:
    """`config` with the preview preset's size and iteration budgets (`PREVIEW_KEYS`) in place of its own."""
    small = load_config(preset)  # a missing file, unknown keys and wrong types fail here, naming the file
    return dataclasses.replace(config, **{key: getattr(small, key) for key in PREVIEW_KEYS})


def preview_sheet(
    content: Path, styles: list[Path], output: Path, config: Config, *, vary: dict[str, list[Any]],
    frame: int | None = None, overwrite: bool = False, callback: Callback | None = None,
    preset: Path | Traversable | None = None,
) -> PreviewSummary:
    """Stylize one frame of `content` with each style and each combination of `vary`, write the
    labelled grid to `output` and estimate the full run's time for `config`.

    Rows are styles; each row starts with the content frame, then one cell per combination.
    Every cell uses `config` with the preview preset's size and budgets (`preset`, default
    configs/preview.toml as installed), then its varied values.
    Everything is checked before the first cell: InputError, OutputError or ConfigError.
    """
    emit = callback or (lambda event: None)
    small, combos, index, image = _check_sheet(content, styles, output, config, vary=vary, frame=frame,
                                               overwrite=overwrite, preset=preset, emit=emit)

    # Stylize the cells, lay them out, then time the full run's size for the estimate.
    start = time.perf_counter()
    cells, labels = _stylize_cells(image, index, styles, small, combos, output, emit)
    seconds = time.perf_counter() - start
    io.write_image(output, grid(cells, labels, columns=len(combos) + 1))
    cell_width, cell_height = cell_size(cells, labels)
    emit(Notice(f"timing an iteration{' and a training step' if index is not None else ''} at the full run's size "
                f"(--max-side {config.max_side}) for the estimate"))
    return PreviewSummary(output, index, len(cells), len(styles), len(combos) + 1, cell_width, cell_height, seconds,
                          *estimate(content, styles, config, frame=index))


def _check_sheet(content: Path, styles: list[Path], output: Path, config: Config, *, vary: dict[str, list[Any]],
                 frame: int | None, overwrite: bool, preset: Path | Traversable | None, emit: Callback
                 ) -> tuple[Config, list[dict[str, Any]], int | None, np.ndarray]:
    """Everything a sheet checks before its first cell. Returns the cells' config, the combinations
    of `vary`, and the frame at the cells' size with its index in the video (None for an image)."""
    preflight.check_output(output, overwrite=overwrite, inputs=[content, *styles])
    io.check_image_suffix(output)
    small = cell_config(config, preset or PREVIEW_PRESET)
    combos = [dict(zip(vary, values)) for values in itertools.product(*vary.values())]
    for combo in combos:
        dataclasses.replace(small, **combo)  # every cell's settings are valid together
    for style in styles:
        io.image_size(style)  # a missing or unreadable style fails before the frame is searched for
    is_video = content.suffix.lower() not in io.IMAGE_SUFFIXES
    if not is_video and frame is not None:
        raise InputError(f"{content}: --frame applies to videos, and this is an image")
    if is_video:
        index, image = pick_frame(content, small, frame, emit)
    else:
        index, image = None, io.read_image(content, max_side=small.working_side)
    for combo in combos:
        read_styles(dataclasses.replace(small, **combo), styles, long_side=max(image.shape[:2]))
    check_frame_size(config, *_full_size(content, config, is_video), name=content)  # the estimate's size
    return small, combos, index, image


def _stylize_cells(image: np.ndarray, index: int | None, styles: list[Path], small: Config,
                   combos: list[dict[str, Any]], output: Path, emit: Callback) -> tuple[list[np.ndarray], list[list[str]]]:
    """The sheet's cells and their labels: rows are styles, each led by the content frame."""
    total = len(styles) * len(combos)
    emit(PreviewStarted(total, image.shape[1], image.shape[0]))
    cells, labels, done = [], [], 0
    for style in styles:
        cells.append(image)
        labels.append(["content" + (f" (frame {index})" if index is not None else "")])
        for combo in combos:
            try:
                stylized, _ = run.stylize_array(image, [style], dataclasses.replace(small, **combo), callback=_inner(emit))
            except Interrupted:
                raise Interrupted(f"interrupted after {done} of {total} cells; nothing was written to {output}") from None
            cells.append(stylized)
            labels.append([style.stem, *(f"{key}={_show(value)}" for key, value in combo.items())])
            done += 1
            emit(CellDone(done, total))
    return cells, labels


def _show(value: Any) -> str:
    return value.value if hasattr(value, "value") else f"{value:g}" if isinstance(value, float) else str(value)


def _inner(emit: Callback) -> Callback:
    """A cell's own events: its iterations and notices go on, its run and frame records do not."""
    def forward(event: Event) -> None:
        if isinstance(event, (FrameStarted, IterationDone, Notice)):
            emit(event)
    return forward


def pick_frame(content: Path, config: Config, frame: int | None, emit: Callback) -> tuple[int, np.ndarray]:
    """Frame `frame` of the video at the cell size, or by default the middle of its first shot."""
    info = io.probe_video(content)
    if frame is not None:
        if frame < 0 or (info.n_frames and frame >= info.n_frames):
            raise InputError(f"{content}: --frame {frame} is outside the video (frames 0 to {(info.n_frames or 1) - 1})")
        for index, decoded in enumerate(io.read_video(content, max_side=config.working_side, max_frames=frame + 1)):
            if index == frame:
                return index, decoded.image
        raise InputError(f"{content}: --frame {frame} is past the last frame that decodes ({index})")
    frames = []
    for decoded in io.read_video(content, max_side=config.working_side, max_frames=MAX_SCAN):
        if frames and _is_cut(frames[-1], decoded.image, config):
            break
        frames.append(decoded.image)
    middle = len(frames) // 2
    emit(Notice(f"using frame {middle}, the middle of the first shot (frames 0 to {len(frames) - 1})"))
    return middle, frames[middle]


def _is_cut(previous: np.ndarray, frame: np.ndarray, config: Config) -> bool:
    """The run's own scene-cut test, on the frames as the chain sees them (`shots.scan`)."""
    seen = [chain_view(config.preserve_colors, image) for image in (previous, frame)]
    return is_scene_cut(config, link_share(config, *seen)[0])


def _full_size(content: Path, config: Config, is_video: bool) -> tuple[int, int]:
    """(width, height) of the full run's frames, as `run` would make them."""
    if is_video:
        info = io.probe_video(content)
        return io.fit_size(info.width, info.height, config.working_side, even=True)
    height, width = io.read_image(content, max_side=config.working_side).shape[:2]
    return width, height


def estimate(content: Path, styles: list[Path], config: Config, *, frame: int | None) -> tuple[Estimate, Estimate | None]:
    """The full run's time with `config` on this device, by each engine (`estimates`): the
    optimiser's, one iteration timed at the run's working size (median of TIMED_ITERATIONS after an
    untimed one) x its iteration budgets x the frames; for a video also the network engine's, a
    training step and a painted batch timed the same way (None for an image, or with --passes,
    which the network engine does not make)."""
    is_video = frame is not None
    if is_video:
        info = io.probe_video(content)
        image = next(f.image for i, f in enumerate(io.read_video(content, max_side=config.working_side)) if i == frame)
        n_frames = min(info.n_frames or 1, config.max_frames or info.n_frames or 1)
    else:
        image, n_frames = io.read_image(content, max_side=config.working_side), 1
    height, width = image.shape[:2]
    session = prepare_session(config, styles[:1], size=(height, width))
    timings = Timings(iteration=time_iteration(session, image, repeat=TIMED_ITERATIONS))
    sizes = {"width": width, "height": height, "n_frames": n_frames, "device": str(session.device)}
    optimiser = optimize_estimate(config, timings=timings, **sizes)
    if not is_video or config.passes > 1:
        return optimiser, None
    train_step, painted = time_network(session, [image], repeat=TIMED_ITERATIONS)
    timings = dataclasses.replace(timings, train_step=train_step, paint=painted)
    return optimiser, network_estimate(config, timings=timings, **sizes)


def grid(cells: list[np.ndarray], labels: list[list[str]], *, columns: int) -> np.ndarray:
    """Lay out uint8 (H, W, 3) cells row by row, `columns` to a row, each with its label lines
    under it (Pillow's default font), on white; GAP pixels between cells and around the grid.
    Every cell takes the size of the largest image and label. Returns a uint8 (H, W, 3) sheet."""
    if len(cells) != len(labels) or not cells:
        raise ValueError(f"{len(cells)} cells for {len(labels)} labels")
    font = ImageFont.load_default()
    cell_width, cell_height = cell_size(cells, labels)
    rows = -(-len(cells) // columns)
    sheet = Image.new("RGB", (columns * (cell_width + GAP) + GAP, rows * (cell_height + GAP) + GAP), "white")
    draw = ImageDraw.Draw(sheet)
    for number, (cell, lines) in enumerate(zip(cells, labels)):
        left = GAP + (number % columns) * (cell_width + GAP)
        top = GAP + (number // columns) * (cell_height + GAP)
        sheet.paste(Image.fromarray(cell, "RGB"), (left, top))
        for line_number, line in enumerate(lines):
            draw.text((left, top + cell.shape[0] + 2 + line_number * _line_height(font)), line, fill="black", font=font)
    return np.asarray(sheet)


def _line_height(font: ImageFont.ImageFont | ImageFont.FreeTypeFont) -> int:
    left, top, right, bottom = font.getbbox("Ag")
    return bottom + 3


def cell_size(cells: list[np.ndarray], labels: list[list[str]]) -> tuple[int, int]:
    """(width, height) of every cell of the grid: the largest image, its label lines under it."""
    font = ImageFont.load_default()
    widest_label = max((font.getlength(line) for lines in labels for line in lines), default=0)
    width = max(max(cell.shape[1] for cell in cells), int(np.ceil(widest_label)) + 2)
    height = max(cell.shape[0] for cell in cells) + 4 + max(len(lines) for lines in labels) * _line_height(font)
    return width, height
