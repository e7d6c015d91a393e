"""The checks before any work, shared by the local path (`run`), the Ray path (`cluster`) and the
preview sheet: every output can be written, nothing overwrites an input, the frames decode and the
styles suit them. Each raises the error a user sees, naming the file, before the model loads.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from . import io
from .checkpoint import Checkpoint
from .config import Config
from .errors import InputError, OutputError
from .events import Callback, FramesChecked
from .sequence import StyleImages, check_frame_size, read_style_images, read_styles

__all__ = [
    "CheckedFolder", "CheckedVideo", "check_folder_output", "check_frame_folder", "check_frames", "check_output",
    "check_output_dir", "check_stats", "check_video", "check_writable", "checked_style_images", "frame_targets",
]


@dataclass(frozen=True)
class CheckedVideo:
    """What the checks of a video run learned (`check_video`)."""

    info: io.VideoInfo
    output: Path  # the output asked for, or the default beside the input
    chosen: io.OutputFormat  # the format the output's suffix picks
    width: int  # px, of the frames at the working size (even)
    height: int


@dataclass(frozen=True)
class CheckedFolder:
    """What the first checks of a frame-folder run learned (`check_frame_folder`)."""

    every_path: list[Path]  # every frame of the folder, in natural order (the resume contract records them all)
    skipped: list[Path]  # files in the folder that are not frames
    paths: list[Path]  # the frames to stylize: at most `max_frames`
    targets: list[Path]  # the PNG each of `paths` becomes


def check_video(content: Path, styles: list[Path], output: Path | None, config: Config, *, overwrite: bool,
                stats: Path | None) -> CheckedVideo:
    """Probe `content` and check the output (`check_output`), its format and the stats path.

    Raises:
        InputError: `content` is not a readable video.
        OutputError: the output or the stats file cannot be written, or would replace an input.
    """
    info = io.probe_video(content)
    output = output or io.default_output(content)
    check_output(output, overwrite=overwrite, inputs=[content, *styles])
    chosen = io.output_format(output)  # an unsupported suffix fails before any work
    check_stats(stats, inputs=[content, *styles], outputs=[output])
    width, height = io.fit_size(info.width, info.height, config.working_side, even=True)
    return CheckedVideo(info, output, chosen, width, height)


def check_frame_folder(folder: Path, styles: list[Path], output_dir: Path, config: Config, *,
                       stats: Path | None) -> CheckedFolder:
    """List the frames of `folder`, name the PNG each becomes in `output_dir` and check the stats path.

    Raises:
        InputError: the folder holds no frames, or two frames would be written under one name.
        OutputError: the stats file cannot be written, or would replace an input.
    """
    every_path, skipped = io.list_frames(folder)
    paths, targets = frame_targets(folder, every_path, output_dir, config)
    check_stats(stats, inputs=[*paths, *styles], outputs=[output_dir])
    return CheckedFolder(every_path, skipped, paths, targets)


def check_folder_output(checked: CheckedFolder, folder: Path, output_dir: Path, checkpoint: Checkpoint,
                        styles: list[Path], config: Config, emit: Callback, *, resume: bool, overwrite: bool
                        ) -> list[Path]:
    """The checks of a frame-folder run once its work folder is known: the work folder
    (`Checkpoint.check`), the output folder (a run stopped while moving its frames into place may
    resume into it) and every frame (`check_frames`). Returns the frames that will be resized."""
    checkpoint.check(resume=resume, overwrite=overwrite)
    resuming = resume and checkpoint.folder.exists()
    check_output_dir(output_dir, checked.targets, overwrite=overwrite or resuming, input_dir=folder)
    return check_frames(checked.paths, styles, config, emit)


def frame_targets(folder: Path, every_path: list[Path], output_dir: Path, config: Config
                  ) -> tuple[list[Path], list[Path]]:
    """The frames of `folder` (`every_path`, natural order) to stylize, at most `max_frames`, and the
    PNG in `output_dir` each becomes.

    Raises:
        InputError: two frames would be written under one name (same stem, other suffix).
    """
    paths = every_path[: config.max_frames]
    targets = [output_dir / (path.stem + ".png") for path in paths]
    clashes = sorted({target.name for target in targets if targets.count(target) > 1})
    if clashes:
        raise InputError(f"{folder}: several frames would be written as {clashes[0]} (same name, other suffix)")
    return paths, targets


def check_frames(paths: list[Path], styles: list[Path], config: Config, emit: Callback) -> list[Path]:
    """Decode every frame once (reporting `FramesChecked`), and the styles at the frames' size,
    before any work; returns the frames that will be resized to the first one's size.

    Raises:
        InputError: a frame or a style cannot be read, or a style is too small at that size.
    """
    frames = io.read_frames(paths, max_side=config.working_side)
    for done, frame in enumerate(frames, start=1):
        if done == 1:
            read_styles(config, styles, long_side=max(frame.shape[:2]))
        emit(FramesChecked(done, len(paths)))
    return frames.resized


def checked_style_images(config: Config, styles: list[Path], output: Path, *, width: int, height: int
                         ) -> StyleImages:
    """The style images for frames of `width` x `height` (`sequence.read_style_images`), after
    checking that such frames suit VGG-19 (the Ray driver reads them once for every task).

    Raises:
        ConfigError: the frames are too small, or --style-blend does not match the styles.
        InputError: a style cannot be read, or is too small.
    """
    check_frame_size(config, width, height, name=output)
    return read_style_images(config, styles, size=(height, width))


def check_output(output: Path, *, overwrite: bool, inputs: list[Path]) -> None:
    """Refuse an output that exists (without `overwrite`), is one of `inputs`, or sits in a folder
    that is missing or not writable (`OutputError`)."""
    if any(output.resolve() == Path(path).resolve() for path in inputs):
        raise OutputError(f"{output}: is also an input; choose another output name")
    if output.is_dir():
        raise OutputError(f"{output}: is a folder, expected a file name")
    if output.exists() and not overwrite:
        raise OutputError(f"{output}: already exists (use --overwrite to replace it)")
    check_writable(output.parent if str(output.parent) else Path("."))


def check_output_dir(output_dir: Path, targets: list[Path], *, overwrite: bool, input_dir: Path) -> None:
    """Refuse an output folder that is the input folder or a file, one whose `targets` exist
    (without `overwrite`), or one that cannot be created or written (`OutputError`)."""
    if output_dir.resolve() == input_dir.resolve():
        raise OutputError(f"{output_dir}: is the input folder; choose another output folder")
    if output_dir.exists() and not output_dir.is_dir():
        raise OutputError(f"{output_dir}: exists and is not a folder")
    existing = [path for path in targets if path.exists()]
    if existing and not overwrite:
        raise OutputError(f"{existing[0]}: already exists (use --overwrite to replace it)")
    check_writable(output_dir if output_dir.exists() else output_dir.parent)


def check_writable(folder: Path) -> None:
    """OutputError if `folder` is missing or not writable."""
    if not folder.is_dir():
        raise OutputError(f"{folder}: output folder does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{folder}: output folder is not writable")


def check_stats(stats: Path | None, *, inputs: list[Path], outputs: list[Path]) -> None:
    """Refuse a --stats path that could not be written, before any work (`OutputError`). It may go
    into an output folder the run creates (`frames -o out --stats out/stats.json`)."""
    if stats is None:
        return
    if any(stats.resolve() == Path(path).resolve() for path in [*inputs, *outputs]):
        raise OutputError(f"{stats}: --stats would overwrite an input or the output; choose another name")
    if stats.is_dir():
        raise OutputError(f"{stats}: --stats is a folder, expected a file name")
    folder = stats.parent if str(stats.parent) else Path(".")
    created = [output for output in outputs if output.resolve() == folder.resolve() and not output.exists()]
    check_writable(created[0].parent if created else folder)
