"""Several passes over a sequence, alternating direction: Ruder et al. 2016, section 3.3.

The first pass is the ordinary forward chain (`sequence.stylize_sequence`). Each later pass runs the
other way: frame t starts from its previous-pass result blended, where the flow is trusted, with
the current pass's result for its neighbour warped into it (eq. 10), and the temporal loss holds
it to that neighbour: frame t-1 on forward passes, frame t+1 on backward ones. Information then
travels both ways along the shot, which is what helps at image borders under strong camera motion.
Cuts found by the first pass are respected by every pass.

Later passes need every frame of the run at once, so they hold the content frames (uint8) and the
previous pass's results (float32) in memory: about 2.2 MB per 512x288 frame. After each pass the
results are saved in the work folder (`pass.pt`); an interrupted run resumes at the start of the
pass it was in.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch

from . import flow, io
from .checkpoint import Checkpoint, Resume
from .config import Flow
from .events import Callback, FrameDone, FrameStarted, Notice
from .optimize import Targets, content_targets, stylize_frame
from .sequence import Session, Step, link_back, shot_session, stylize_sequence

BLEND = 0.5  # delta of Ruder eq. 10: share of the previous pass's result in a frame's start


def stylize_passes(session: Session, frames: Iterable[np.ndarray], emit: Callback, resume: Resume,
                   checkpoint: Checkpoint | None, *, first_index: int = 0,
                   shot_first: np.ndarray | None = None) -> Iterator[Step]:
    """`config.passes` passes over `frames`; yields the last pass's frames in order.

    With one pass this is `stylize_sequence` (which says what `first_index` and `shot_first` are).
    Otherwise every pass but the last reports its frames through `emit` (FrameDone), and the caller
    gets Steps only once the last pass is done.
    """
    config = session.config
    piece = {"first_index": first_index, "shot_first": shot_first}
    if config.passes == 1:
        yield from stylize_sequence(session, frames, emit, resume, **piece)
        return
    stored = checkpoint.load_pass() if checkpoint is not None else None
    if stored is not None and stored["pass"] == config.passes:  # only the writing was left
        frames = list(frames)  # still decoded: a video's writer takes each frame's timestamp from it
        for index in range(resume.done, len(stored["results"])):
            yield _step(stored, index)
        return
    contents = list(frames)  # the later passes visit every frame again
    if stored is None:
        emit(Notice(f"pass 1/{config.passes} (forward)"))
        state = _first_pass(session, contents, emit, resume, piece)
        if checkpoint is not None:
            checkpoint.save_pass(state)
    else:
        emit(Notice(f"resuming after pass {stored['pass']} of {config.passes} from {checkpoint.folder}"))
        state = stored
    for number in range(state["pass"] + 1, config.passes + 1):
        backward = number % 2 == 0
        emit(Notice(f"pass {number}/{config.passes} ({'backward' if backward else 'forward'})"))
        state = _later_pass(session, contents, state, number, emit, last=number == config.passes, piece=piece)
        if checkpoint is not None:
            checkpoint.save_pass(state)
    for index in range(len(contents)):
        yield _step(state, index)


def _first_pass(session: Session, contents: list[np.ndarray], emit: Callback, resume: Resume,
                piece: dict[str, Any]) -> dict[str, Any]:
    results, records = [], []
    for step in stylize_sequence(session, contents, emit, Resume(rng=resume.rng), **piece):
        results.append(step.chain["stylized"][-1:].clone())  # full precision, (1, 3, H, W)
        records.append(dataclasses.asdict(step.record))
        emit(step.record)
    return {"pass": 1, "results": torch.cat(results), "records": records}


def _later_pass(session: Session, contents: list[np.ndarray], state: dict[str, Any], number: int,
                emit: Callback, *, last: bool, piece: dict[str, Any]) -> dict[str, Any]:
    """One pass against the direction of the one before; returns the new state. `piece`: as
    `stylize_sequence`'s `first_index` and `shot_first`."""
    config, model, device = session.config, session.model, session.device
    previous = state["results"]  # (N, 3, H, W) on the CPU
    cuts = [record["scene_cut"] or index == 0 for index, record in enumerate(state["records"])]
    backward = number % 2 == 0
    order = range(len(contents) - 1, -1, -1) if backward else range(len(contents))
    results: list[torch.Tensor | None] = [None] * len(contents)
    records = list(state["records"])
    shot_starts = list(itertools.accumulate((index if cut else 0 for index, cut in enumerate(cuts)), max))
    shots: dict[int, Session] = {}  # by the shot's first frame: its style Grams (`shot_session`)
    for index in order:
        start = time.perf_counter()
        neighbour = index + 1 if backward else index - 1
        # Linked unless the pass crosses a cut: frame t+1 starting a shot, or frame t starting one.
        linked = 0 <= neighbour < len(contents) and not cuts[index + 1 if backward else index]
        content = io.to_tensor(contents[index]).to(device)
        before = previous[index : index + 1].to(device)
        first = shot_starts[index]
        if first not in shots:
            opening = piece["shot_first"] if first == 0 and piece["shot_first"] is not None else contents[first]
            shots[first] = shot_session(session, io.to_tensor(opening).to(device))
        targets = Targets(content_targets(model, content, config), shots[first].grams)
        init = before
        if linked:
            warped, mask = _neighbour(config.flow, contents[neighbour], contents[index], results[neighbour].to(device))
            init = mask * (BLEND * before + (1 - BLEND) * warped) + (1 - mask) * before
            if config.temporal_weight > 0:
                targets = dataclasses.replace(targets, warped=warped, mask=mask)
        emit(FrameStarted(index + piece["first_index"], config.iterations))
        result = stylize_frame(model, init, targets, config=config, n_iters=config.iterations, callback=emit)
        results[index] = result.image.cpu()
        earlier = records[index]
        record = FrameDone(earlier["index"], earlier["iterations"] + result.iterations,
                           earlier["seconds"] + time.perf_counter() - start, result.losses, earlier["scene_cut"],
                           earlier["flow_seconds"], earlier["optimize_seconds"] + time.perf_counter() - start)
        records[index] = dataclasses.asdict(record)
        if not last:
            emit(record)
    return {"pass": number, "results": torch.cat(results), "records": records}


def _neighbour(method: Flow, neighbour_frame: np.ndarray, frame: np.ndarray, neighbour: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """The neighbour's result warped into this frame, and the mask of pixels the flow links (the
    occlusion and photometric checks, as `sequence.link_frames` makes them)."""
    to_neighbour, mask = link_back(method, neighbour_frame, frame, neighbour.device)
    return flow.warp(neighbour, to_neighbour), mask


def _step(state: dict[str, Any], index: int) -> Step:
    image = state["results"][index : index + 1]
    return Step(io.to_array(image), np.zeros(0, np.uint8), FrameDone(**state["records"][index]), {})
