"""Scale-out over a Ray cluster: each shot of a video (or chunk of a long take) is one Ray task.

Scene cuts already restart the temporal chain, so shots are independent: the driver plans them
(`shots.plan_video`, no VGG), decodes the video and sends each task its frames at the working size
through the object store; the task runs the same chain a local run does (`passes.stylize_passes`)
and, as a Ray generator, sends back each stylized frame (uint8, lossless) with its record as soon as
it is done; the driver, the only writer of files, stores them in the work folder `<output>.parts/`
as they arrive and encodes them in order at the end, with the audio and every timestamp, as
`run.stylize_video` does.

A long take is cut into chunks of at most `max_chunk_frames`; each chunk but a shot's last also
stylizes the `seam_frames` after it, and the output cross-fades from that tail into the next chunk
over those frames, so the seam is spread over several frames instead of a jump (docs/scale-out.md, Seams).

The network engine (`--engine network`, `learned`) trains once: the driver decodes the whole clip,
one task trains the network on it (`train_task`), the driver keeps it in the work folder and puts it
in the object store once, and each shot is painted by a task that gets it from there
(`paint_chunk`). With `carry` or `refine` each frame is finished from the one before (a chain, as
in a local run), so a shot is one task; with neither a long take's chunks need no seam.

This module and `ray_connect` (joining or starting Ray) are the only ones that import `ray`, and
only inside the functions that need it.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import heapq
import json
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch

from . import io, learned, outputs, preflight
from .checkpoint import Checkpoint, Resume
from .config import Config, Engine
from .errors import ClusterError, Interrupted, OutputError, StylereelError
from .events import Callback, Event, FrameDone, Notice, RunStarted, TasksChanged, TrainStep
from .network import TransformNet
from .notices import audio_notice, decoder_notices, folder_notices, streams_notice
from .outputs import Summary
from .passes import stylize_passes
from .sequence import Colors, Session, StyleImages, chain_view, cut_notice, select_device, session_from_styles
from .shots import Chunk, Plan, plan_frames, plan_video, split_shots
from .train import train_network

RETRIES = 3  # Ray reruns a task this often when its worker dies (killed process, lost node)
QUEUED_PER_WORKER = 1  # tasks submitted beyond one running per worker, so none waits for the driver
CANCEL_WAIT = 10.0  # seconds Ctrl-C waits for the cancelled tasks to end
MEMORY_SHARE = 0.5  # of the object store (and of the free memory) the driver's decoded frames may take

# Joining or starting Ray, and what a task asks of it, live in `ray_connect` (imported here, so that
# tests can replace `cluster.connect` and `cluster.check_ray`).
from .ray_connect import check_ray, connect, placement  # noqa: E402


# --- the task (runs on a worker) ---

_SESSIONS: dict[tuple, Session] = {}  # the worker's last session: tasks of one run share the VGG and Grams


def run_chunk(config: Config, styles: dict[str, Any], frames: np.ndarray, first: int,
              shot_first: np.ndarray | None = None) -> Iterator[dict[str, Any]]:
    """A Ray generator task: stylize `frames` (uint8 (N, H, W, 3), video frames `first` ...) as one
    chain, the same `stylize_passes` a local run goes through; `shot_first` is the first frame of
    the shot when the chunk starts inside one (its colours are the ones `preserve_colors` keeps).
    Yields what the chain says ({"notice": text, "key": key}) and each stylized frame as soon as it
    is done ({"image": uint8 (H, W, 3), "record": its record, index in the video}), then once where
    and how the task ran ({"node", "retries", "seconds", "device"}).

    Ray reruns a generator whose worker died and passes on only the items the first attempt had not
    yielded (the chain is deterministic for a seed, so the rerun yields the same frames)."""
    import ray

    start = time.perf_counter()
    key = (config, styles["digest"])
    if key not in _SESSIONS:
        _SESSIONS.clear()
        _SESSIONS[key] = session_from_styles(config, styles["images"])
    session = _SESSIONS[key]
    if session.device.type == "cpu":
        torch.set_num_threads(_threads(ray))
    torch.manual_seed(config.seed)  # as a local run's chain starts: every task is seeded alike
    colors, said = Colors(config.preserve_colors), []
    opening = None if shot_first is None else chain_view(config.preserve_colors, np.array(shot_first))
    steps = stylize_passes(session, list(colors.frames(iter(np.array(frames)), start=first)),
                           lambda event: said.append(event) if isinstance(event, Notice) else None, Resume(), None,
                           first_index=first, shot_first=opening)
    for step in steps:
        yield from ({"notice": notice.text, "key": notice.key} for notice in said)
        said.clear()
        yield {"image": colors.output(step.record.index, step.image), "record": dataclasses.asdict(step.record)}
    yield from ({"notice": notice.text, "key": notice.key} for notice in said)
    yield _ended(ray, start, str(session.device))


def _threads(ray: ModuleType) -> int:
    """The CPUs Ray gave the current task: torch runs on as many threads."""
    return max(1, int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1)))


def _ended(ray: ModuleType, start: float, device: str) -> dict[str, Any]:
    """A task's last item: where and how it ran."""
    return {"node": ray.get_runtime_context().get_node_id(), "retries": _attempt(ray),
            "seconds": time.perf_counter() - start, "device": device}


def _attempt(ray: ModuleType) -> int:
    """How many times Ray has rerun the current task (0 on the first try)."""
    try:
        return int(ray._private.worker.global_worker.core_worker.get_current_task_attempt_number())
    except Exception:  # a private API: the count is for --stats only
        return 0


def train_task(config: Config, styles: dict[str, Any], frames: np.ndarray, starts: list[int]
               ) -> Iterator[dict[str, Any]]:
    """A Ray generator task: train the network engine's network on `frames` (uint8 (N, H, W, 3),
    the whole clip at the working size; `starts` the first frame of each shot) as a local run
    trains it (`learned.loss_session`, `train.train_network`, seeded alike). Yields the latest
    training step now and then ({"step": `TrainStep`'s fields}), then the network (`shipped`) with
    its steps and where and how the task ran."""
    import ray

    start, threads, steps = time.perf_counter(), _threads(ray), queue.Queue()

    def train() -> dict[str, Any]:
        try:
            torch.set_num_threads(threads)  # on this thread: OpenMP's count is per thread
            seen = [chain_view(config.preserve_colors, frame) for frame in np.array(frames)]
            session = learned.loss_session(config, styles["images"], seen[0])
            network = train_network(session, seen, starts, steps=config.train_iterations, emit=steps.put)
            return {**shipped(network), "device": str(session.device)}
        finally:
            steps.put(None)

    # Training runs on a thread so that its steps can be sent as they come, the latest of each wait.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="stylereel-train") as pool:
        training, ended = pool.submit(train), False
        while not ended:
            latest = [steps.get()]
            while not steps.empty():
                latest.append(steps.get_nowait())
            ended, latest = latest[-1] is None, [step for step in latest if step is not None]
            if latest:
                yield {"step": dataclasses.asdict(latest[-1])}
        trained = training.result()  # raises what training raised
    yield {**trained, **_ended(ray, start, trained["device"]), "steps": config.train_iterations}


def paint_chunk(config: Config, network: dict[str, Any], styles: dict[str, Any], frames: np.ndarray, first: int,
                cut: bool, clip_first: np.ndarray) -> Iterator[dict[str, Any]]:
    """A Ray generator task: paint `frames` (uint8 (N, H, W, 3), video frames `first` ... of one
    shot; `cut`: frame `first` starts a shot after the first) with `network` (`shipped`) as a local
    run paints them (`learned.paint_shot`); with `refine` the losses are those of a local run, the
    style mapped to the clip's first frame `clip_first` (`learned.loss_session`). Yields each
    frame and its end as `run_chunk` does."""
    import ray

    start, device = time.perf_counter(), select_device(config.device)
    if device.type == "cpu":
        torch.set_num_threads(_threads(ray))
    if config.refine:  # refining takes the optimiser's losses, as after a local run's training
        first_seen = chain_view(config.preserve_colors, np.array(clip_first))
        session = learned.loss_session(config, styles["images"], first_seen)
    else:  # painting alone needs no VGG
        session = Session(config, device, model=None, grams={})
    painted = learned.paint_shot(unshipped(network), session, list(np.array(frames)), first=first, cut=cut)
    for image, record in painted:
        yield {"image": image, "record": dataclasses.asdict(record)}
    yield _ended(ray, start, str(device))


def shipped(network: TransformNet) -> dict[str, Any]:
    """A network as the object store and the work folder carry it: its shape and its weights (CPU tensors)."""
    weights = {name: tensor.detach().cpu() for name, tensor in network.state_dict().items()}
    return {"width": network.width, "n_residual": network.n_residual, "weights": weights}


def unshipped(network: dict[str, Any]) -> TransformNet:
    """The network `shipped` carries, on the CPU, in eval mode."""
    rebuilt = TransformNet(width=network["width"], n_residual=network["n_residual"])
    rebuilt.load_state_dict(network["weights"])
    return rebuilt.eval()


# --- the driver ---

def stylize_video_on_ray(
    content: Path, styles: list[Path], output: Path | None, config: Config, *,
    overwrite: bool = False, stats: Path | None = None, callback: Callback | None = None,
    resume: bool = False, keep_frames: bool = False, model: Path | None = None,
) -> Summary:
    """`run.stylize_video` with each shot (or chunk) as a Ray task on the cluster `config.ray`; with
    the network engine (or `model`, a model file) one task trains the network first (`_NetworkDriver`).

    Every check of the local path runs first (`preflight`); then the cluster is joined while the
    video is planned, the tasks run longest first within the driver's memory budget (`schedule`),
    and the output encoded in order. `resume` submits only the tasks whose frames are not all in the
    work folder: a task stopped half-way starts again from its first frame. The run says what a
    local run says (scene cuts, a first frame that used its whole budget, a damaged file, audio).

    Raises:
        ConfigError: Ray is not installed, or a resume with other settings or inputs.
        ClusterError: the cluster cannot be reached, or a task failed for a reason retrying
            cannot fix (its cause is named; finished tasks are kept for --resume).
        Interrupted: Ctrl-C; finished tasks are kept.
    """
    # The local path's checks, then the styles the tasks share and the work folder.
    check_ray()
    start = time.perf_counter()
    config, loaded = learned.with_model(model, config, styles)  # a bad file fails first
    checked = preflight.check_video(content, styles, output, config, overwrite=overwrite, stats=stats)
    style_images = preflight.checked_style_images(config, styles, checked.output, width=checked.width,
                                                  height=checked.height)
    checkpoint = Checkpoint.for_run(checked.output, config, [content, *styles, *filter(None, [model])], device="ray")
    checkpoint.check(resume=resume, overwrite=overwrite)
    emit = callback or (lambda event: None)
    for notice in streams_notice(content, checked.info):
        emit(notice)

    # Plan and run the tasks, then encode their frames in order with the audio.
    driver = _driver(config, style_images, checkpoint, checked.output, emit, loaded)
    with checkpoint.kept_on_interrupt(f"writing {checked.output}"):
        plan, chunks, finished = driver.run(lambda planned: plan_video(content, config, callback=planned),
                                            lambda: _video_images(content, config), resume=resume,
                                            overwrite=overwrite)
        writer = _encode(checkpoint, chunks, plan, checked.output, checked.info, config)
        emit(audio_notice(writer.audio_mode, checked.info.audio_codec, checked.chosen))
        for notice in decoder_notices(content, plan.decoder_error, plan.decoder_lost, plan.n_frames):
            emit(notice)
        summary = driver.summary(plan, finished, time.perf_counter() - start)
        return outputs.finish(summary, stats, checkpoint, keep_frames=keep_frames)


def _video_images(content: Path, config: Config) -> Iterator[np.ndarray]:
    """The video's frames at the working size, uint8 (H, W, 3), its decoder closed when this is."""
    with contextlib.closing(io.read_video(content, max_side=config.working_side, max_frames=config.max_frames)) as video:
        yield from (frame.image for frame in video)


def stylize_frames_on_ray(
    folder: Path, styles: list[Path], output_dir: Path, config: Config, *,
    overwrite: bool = False, stats: Path | None = None, callback: Callback | None = None,
    resume: bool = False, keep_frames: bool = False, model: Path | None = None,
) -> Summary:
    """`run.stylize_frames` with each shot (or chunk) of the folder's sequence as a Ray task; as
    `stylize_video_on_ray`, except that every frame is read once before the cluster is joined (as
    the local path does) and that the results are written as PNGs named like the inputs, into
    `output_dir` once all are done."""
    # The local path's checks, then the styles the tasks share.
    check_ray()
    start = time.perf_counter()
    emit = callback or (lambda event: None)
    config, loaded = learned.with_model(model, config, styles)  # a bad file fails first
    checked = preflight.check_frame_folder(folder, styles, output_dir, config, stats=stats)
    checkpoint = Checkpoint.for_run(output_dir, config, [*checked.every_path, *styles, *filter(None, [model])],
                                    device="ray")
    resized = preflight.check_folder_output(checked, folder, output_dir, checkpoint, styles, config, emit,
                                            resume=resume, overwrite=overwrite)
    for notice in folder_notices(folder, checked.skipped, resized):
        emit(notice)
    height, width = next(iter(io.read_frames(checked.paths[:1], max_side=config.working_side))).shape[:2]
    style_images = preflight.checked_style_images(config, styles, output_dir, width=width, height=height)

    # Plan and run the tasks, then write their frames as PNGs.
    def frames() -> Iterator[np.ndarray]:
        yield from io.read_frames(checked.paths, max_side=config.working_side)

    driver = _driver(config, style_images, checkpoint, output_dir, emit, loaded)
    with checkpoint.kept_on_interrupt(f"writing the frames into {output_dir}"):
        plan, chunks, finished = driver.run(lambda planned: plan_frames(frames(), config, callback=planned), frames,
                                            resume=resume, overwrite=overwrite)
        write_frames(checkpoint, chunks, checked.targets)
        summary = driver.summary(plan, finished, time.perf_counter() - start)
        return outputs.finish(summary, stats, checkpoint, keep_frames=keep_frames)


def _driver(config: Config, style_images: StyleImages, checkpoint: Checkpoint, output: Path, emit: Callback,
            loaded: learned.LoadedModel | None) -> _Driver:
    if config.engine == Engine.network:
        return _NetworkDriver(config, style_images, checkpoint, output, emit, loaded)
    return _Driver(config, style_images, checkpoint, output, emit)


class _Driver:
    """The driver's work between the checks and the output: join the cluster while planning, run
    every task not finished in the work folder, store what they send back, and say what they say."""

    says_cuts = True  # a task's first frame at a cut restarts the chain: said as a local run says it

    def __init__(self, config: Config, style_images: StyleImages, checkpoint: Checkpoint, output: Path,
                 emit: Callback) -> None:
        self.config, self.style_images, self.checkpoint, self.output = config, style_images, checkpoint, output
        self.emit = emit
        self.finished: dict[int, dict[str, Any]] = {}  # by first frame: the records of each finished task
        self.records: dict[int, list[dict[str, Any]]] = {}  # by task: the records of its frames so far
        self.said: set[str] = set()  # the notices' keys said so far: each once per run, as a local run does
        self.memory: dict[str, int] = {}  # the driver's memory budget and what it held at most (--stats)

    def run(self, make_plan: Callable[[Callback], Plan], frames: Callable[[], Iterator[np.ndarray]], *,
            resume: bool, overwrite: bool) -> tuple[Plan, list[Chunk], dict[int, dict[str, Any]]]:
        """Returns the plan, its tasks and the finished tasks' records by first frame (all of them,
        unless an error was raised)."""
        with contextlib.ExitStack() as leaving:
            try:
                planned = leaving.enter_context(plan_meanwhile(make_plan, self.emit))
                ray = leaving.enter_context(connect(self.config.ray, emit=self.emit))
                options, workers = placement(ray, self.config)
                plan = planned()  # the planning pass, on the driver, while Ray starts
            except KeyboardInterrupt:
                raise Interrupted(f"interrupted before the first task was submitted; nothing was written to "
                                  f"{self.output}") from None
            try:
                chunks = self._start(plan, workers, resume=resume, overwrite=overwrite)
                self._run_tasks(ray, options, workers, plan, chunks, frames)
            except KeyboardInterrupt:
                self.stopped()
        return plan, chunks, self.finished

    def stopped(self) -> None:
        """Ctrl-C after the cluster was joined: raise Interrupted saying what is kept."""
        _stopped(self.checkpoint, self.finished, self.output)

    def chunks(self, plan: Plan) -> list[Chunk]:
        """The plan's tasks: its shots, long takes cut into chunks with seams."""
        return split_shots(plan.shots, max_chunk_frames=self.config.max_chunk_frames,
                           seam_frames=self.config.seam_frames, motion=plan.motion)

    def _start(self, plan: Plan, workers: int, *, resume: bool, overwrite: bool) -> list[Chunk]:
        """Cut the plan into tasks, open the work folder and report what a resume finds there."""
        chunks = self.chunks(plan)
        self.emit(Notice(f"planned {plan.n_frames} frames in {plan.seconds:.1f} s "
                         f"({plan.seconds / plan.n_frames * 1e3:.0f} ms/frame): {len(plan.shots)} shot(s), "
                         f"{len(chunks)} task(s) for {workers} worker(s)"))
        self.checkpoint.start(resume=resume, overwrite=overwrite)
        self.finished.update(finished_tasks(self.checkpoint, chunks))
        self.emit(RunStarted(plan.n_frames, plan.width, plan.height, f"Ray ({workers} worker(s))"))
        if self.finished:
            self.emit(Notice(f"resuming: {len(self.finished)} of {len(chunks)} task(s) already done in "
                             f"{self.checkpoint.folder}"))
        for done in self.finished.values():
            for record in done["records"]:
                self.emit(FrameDone(**record))
        return chunks

    def _run_tasks(self, ray: ModuleType, options: dict[str, Any], workers: int, plan: Plan, chunks: list[Chunk],
                   frames: Callable[[], Iterator[np.ndarray]]) -> None:
        """Submit every unfinished task, within the memory budget, and store what comes back."""
        styles_ref = ray.put(self.styles())
        task = ray.remote(run_chunk).options(num_returns="streaming", max_retries=RETRIES, retry_exceptions=False,
                                             **options)

        def submit(chunk: Chunk, images: np.ndarray, shot_first: np.ndarray | None) -> Any:
            return task.remote(self.config, styles_ref, ray.put(images), chunk.first,
                               None if chunk.first in plan.starts else shot_first)

        decoded = frames()
        try:
            self.run_chunks(ray, workers, plan, chunks, decoded, submit)
        finally:
            decoded.close()

    def styles(self) -> dict[str, Any]:
        """The style images as the tasks get them (the object store), with their digest."""
        return {"images": self.style_images, "digest": _digest(self.style_images)}

    def run_chunks(self, ray: ModuleType, workers: int, plan: Plan, chunks: list[Chunk], frames: Iterator[np.ndarray],
                 submit: Callable[[Chunk, np.ndarray, np.ndarray | None], Any]) -> None:
        """Run the unfinished ones of `chunks` through `submit`, their frames taken from `frames` (the
        video's, in order), within the memory budget (`schedule`), and store what comes back."""
        todo = [chunk for chunk in chunks if chunk.first not in self.finished]
        budget = memory_budget(ray)
        try:
            held = schedule(ray, task_frames(todo, frames, plan), submit, lambda chunk, item: self._store(plan, chunk, item),
                            self.emit, workers=workers, sizes=[_task_bytes(chunk, plan) for chunk in todo],
                            budget=budget)
        except _TaskFailed as failure:
            raise ClusterError(f"{self.output}: task for frames {failure.chunk.first + 1}-{failure.chunk.last + 1} "
                               f"(shot {failure.chunk.shot + 1}) failed: {failure.cause}; {len(self.finished)} "
                               f"finished task(s) are kept in {self.checkpoint.folder}, run the same command with "
                               "--resume to continue") from None
        self.memory = {"budget_bytes": budget, "peak_bytes": held}
        missing = [chunk for chunk in todo if chunk.first not in self.finished]
        if missing:
            raise ClusterError(f"{self.output}: frames {missing[0].first + 1}-{missing[-1].last + 1} were not stylized: "
                               f"the input gave fewer frames on its second reading than when it was planned; "
                               f"{len(self.finished)} finished task(s) are kept in {self.checkpoint.folder}")

    def _store(self, plan: Plan, chunk: Chunk, item: dict[str, Any]) -> None:
        """One item a task sent: something it said, one of its frames, or its end."""
        if "notice" in item:
            self._say(Notice(item["notice"], key=item["key"]))
        elif "image" not in item:  # the task's last item: it is done
            self.finished[chunk.first] = _store_task(self.checkpoint, chunk, self.records.pop(chunk.first, []), item)
        else:
            record = item["record"]
            if _store_frame(self.checkpoint, chunk, record["index"], item["image"]):
                if self.says_cuts and record["index"] == chunk.first and chunk.first > 0 and chunk.first in plan.starts:
                    self._say(cut_notice(chunk.first, plan.unlinked[chunk.first]))
                self.records.setdefault(chunk.first, []).append(record)
                self.emit(FrameDone(**record))

    def _say(self, notice: Notice) -> None:
        """Emit `notice` unless one with its key was said already (several tasks meet the same thing)."""
        key = notice.key or notice.text
        if key not in self.said:
            self.said.add(key)
            self.emit(notice)

    def summary(self, plan: Plan, finished: dict[int, dict[str, Any]], seconds: float) -> Summary:
        """The run's summary: every frame's record, per task where and how long it ran, and the
        driver's memory budget."""
        records = [FrameDone(**record) for first in sorted(finished) for record in finished[first]["records"]]
        tasks = [{key: value for key, value in finished[first].items() if key != "records"} for first in sorted(finished)]
        devices = sorted({task.pop("device") for task in tasks})
        return Summary(self.output, plan.n_frames, plan.width, plan.height, f"ray: {', '.join(devices)}", seconds,
                       records, {"plan": plan.seconds}, tasks, {"memory": self.memory})


class _NetworkDriver(_Driver):
    """The driver of a network engine run: one task trains the network on the whole clip (`train_task`;
    none with a model file, or when a resumed run kept the trained network), the driver puts it in
    the object store once, and each shot is painted by a task that gets it from there (`paint_chunk`).
    The trained network is kept in the work folder, beside the finished tasks, for --resume."""

    says_cuts = False  # painting restarts nothing at a cut

    def __init__(self, config: Config, style_images: StyleImages, checkpoint: Checkpoint, output: Path,
                 emit: Callback, loaded: learned.LoadedModel | None) -> None:
        super().__init__(config, style_images, checkpoint, output, emit)
        self.loaded = loaded
        self.trained: dict[str, Any] = {}  # the network trained for this run, once there is one

    def chunks(self, plan: Plan) -> list[Chunk]:
        """With `carry` or `refine` each frame is finished from the one before, as a local run
        does: one task per shot; with neither each frame is painted on its own, so a long take's
        chunks need no seam."""
        longest = plan.n_frames if learned.chained(self.config) else self.config.max_chunk_frames
        return split_shots(plan.shots, max_chunk_frames=max(1, longest), seam_frames=0)

    def _run_tasks(self, ray: ModuleType, options: dict[str, Any], workers: int, plan: Plan, chunks: list[Chunk],
                   frames: Callable[[], Iterator[np.ndarray]]) -> None:
        """Train (or take) the network, then paint every unfinished task with it."""
        self.trained = self._kept()
        if all(chunk.first in self.finished for chunk in chunks):
            return
        images = list(frames())  # every frame: training samples from all of them, as a local run's does
        if self.loaded is not None:
            network = shipped(self.loaded.network)
        elif self.trained:
            self.emit(Notice(f"resuming with the network trained by the interrupted run, kept in "
                             f"{self.checkpoint.folder}"))
            network = self.trained
        else:
            network = self.trained = self._train(ray, options, plan, images)
        network_ref, styles_ref, first_ref = ray.put(network), ray.put(self.styles()), ray.put(images[0])
        task = ray.remote(paint_chunk).options(num_returns="streaming", max_retries=RETRIES, retry_exceptions=False,
                                               **options)

        def submit(chunk: Chunk, chunk_images: np.ndarray, shot_first: np.ndarray | None) -> Any:
            cut = chunk.first > 0 and chunk.first in plan.starts
            return task.remote(self.config, network_ref, styles_ref, ray.put(chunk_images), chunk.first, cut, first_ref)

        self.run_chunks(ray, workers, plan, chunks, iter(images), submit)

    def _kept(self) -> dict[str, Any]:
        """The network a resumed run trained and kept in the work folder, or {}."""
        return {} if self.loaded is not None else self.checkpoint.load_training() or {}

    def _train(self, ray: ModuleType, options: dict[str, Any], plan: Plan, images: list[np.ndarray]) -> dict[str, Any]:
        """Train the network in one task, saying its steps as they come, and keep it in the work folder."""
        task = ray.remote(train_task).options(num_returns="streaming", max_retries=RETRIES, retry_exceptions=False,
                                              **options)
        generator = task.remote(self.config, ray.put(self.styles()), ray.put(np.stack(images)), sorted(plan.starts))
        trained: dict[str, Any] = {}
        try:
            for ref in generator:
                item = ray.get(ref)
                if "step" in item:
                    self.emit(TrainStep(**item["step"]))
                trained = item if "weights" in item else trained
        except ray.exceptions.RayError as error:
            raise ClusterError(f"{self.output}: the task training the network failed: {_cause(error)}") from None
        except BaseException:
            _cancel(ray, [generator])
            raise
        try:
            self.checkpoint.save_training(trained)
        except OSError as error:
            raise ClusterError(f"{self.checkpoint.folder}: cannot keep the trained network ({error.strerror or error})"
                               ) from None
        return trained

    def stopped(self) -> None:
        if self.trained and self.loaded is None and not self.finished:
            raise self.checkpoint.interrupted("painting the frames", "the trained network is") from None
        super().stopped()

    def summary(self, plan: Plan, finished: dict[int, dict[str, Any]], seconds: float) -> Summary:
        """`_Driver.summary`, with the training's steps and seconds (its task's), and the painting
        tasks' seconds summed as `infer`; or the model file that painted."""
        summary = super().summary(plan, finished, seconds)
        infer = sum(done["seconds"] for done in finished.values())
        if self.loaded is not None:
            return dataclasses.replace(summary, phases={"plan": plan.seconds, "infer": infer}, model=self.loaded.path)
        train = {"steps": self.trained["steps"], "seconds": self.trained["seconds"]}
        return dataclasses.replace(summary, phases={"plan": plan.seconds, "train": train["seconds"], "infer": infer},
                                   train=train)


def memory_budget(ray: ModuleType) -> int:
    """Bytes of decoded frames the driver may hold at once, waiting in it or sent to the object
    store for tasks not yet done: half the object store of the driver's node, and at most half the
    memory this machine has free now (the store allocates as it fills)."""
    import psutil  # a dependency of Ray's

    here = ray.get_runtime_context().get_node_id()
    stores = [node["Resources"].get("object_store_memory", 0) for node in ray.nodes() if node.get("NodeID") == here]
    store = int(stores[0]) if stores and stores[0] else int(ray.cluster_resources().get("object_store_memory", 0))
    return max(1, int(min(store, psutil.virtual_memory().available) * MEMORY_SHARE))


def _task_bytes(chunk: Chunk, plan: Plan) -> int:
    """What a task's frames take, decoded: uint8 (N, H, W, 3)."""
    return chunk.n_frames * plan.height * plan.width * 3


class _Stop(Exception):
    """Raised inside a planning pass that is no longer wanted."""


@contextlib.contextmanager
def plan_meanwhile(make_plan: Callable[[Callback], Plan], emit: Callback) -> Iterator[Callable[[], Plan]]:
    """Run the planning pass on a thread while the caller starts or joins Ray (seconds either way,
    mostly waiting for Ray's processes); yields a function that waits for the plan and raises what
    the pass raised. On the way out an unfinished pass stops at its next frame and is waited for,
    so no decoder outlives the run. Only the pass emits until the plan is taken."""
    stop = threading.Event()

    def checked(event: Event) -> None:
        if stop.is_set():
            raise _Stop
        emit(event)

    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="stylereel-plan") as pool:
        planning = pool.submit(make_plan, checked)
        try:
            yield planning.result
        finally:
            stop.set()


class _TaskFailed(Exception):
    def __init__(self, chunk: Chunk, cause: str) -> None:
        super().__init__(cause)
        self.chunk, self.cause = chunk, cause


def schedule(ray: ModuleType, tasks: Iterator[tuple[Chunk, np.ndarray, np.ndarray | None]],
             submit: Callable[[Chunk, np.ndarray, np.ndarray | None], Any], store: Callable[[Chunk, dict], None],
             emit: Callback, *, workers: int, sizes: list[int], budget: int) -> int:
    """Run `tasks` (in video order, decoded lazily; `sizes` their bytes, in the same order) within
    `budget` bytes, handing each item a task yields to `store` as it arrives (`run_chunk`: what it
    says, each frame, then its end). Returns the most bytes held at once.

    A task is decoded only while the bytes held (tasks waiting in the driver and tasks submitted and
    not done, whose frames sit in the object store) stay within `budget`, or when nothing is held (a
    task larger than the budget then runs alone). It is submitted as soon as a slot is free (at most
    (1 + QUEUED_PER_WORKER) * `workers` submitted and not done); while none is, decoded tasks wait,
    and the longest waiting goes first, so a long shot does not start last and straggle. Raises
    _TaskFailed for a task Ray could not finish (after RETRIES reruns for a lost worker, or at once
    for an error in the task itself); Ctrl-C cancels the submitted tasks.
    """
    waiting: list[tuple[int, int, Chunk, np.ndarray, np.ndarray | None]] = []  # heap: longest first, then earliest
    in_flight: dict[Any, Chunk] = {}  # Ray's generator of each submitted task's items
    size_of = {}  # by first frame: the bytes of each task decoded and not done
    limit, upcoming, held, peak = (1 + QUEUED_PER_WORKER) * workers, list(sizes), 0, 0
    try:
        while True:
            decoded = False
            if upcoming and (held == 0 or held + upcoming[0] <= budget) and len(waiting) < workers:
                item = next(tasks, None)
                if item is None:  # the input gave fewer frames than planned: the driver says which are missing
                    upcoming.clear()
                    continue
                chunk, frames, shot_first = item
                heapq.heappush(waiting, (-chunk.n_frames, chunk.first, chunk, frames, shot_first))
                size_of[chunk.first] = upcoming.pop(0)
                held, decoded = held + size_of[chunk.first], True
                peak = max(peak, held)
            while waiting and len(in_flight) < limit:
                _, _, chunk, frames, shot_first = heapq.heappop(waiting)
                in_flight[submit(chunk, frames, shot_first)] = chunk
            running = min(len(in_flight), workers)
            emit(TasksChanged(running, len(in_flight) - running, len(upcoming) + len(waiting), workers))
            if decoded:
                continue  # decode ahead while the budget allows
            if not in_flight:
                return peak
            [ready], _ = ray.wait(list(in_flight), num_returns=1)  # a task with an item (or its end) ready
            ended = _receive(ray, ready, in_flight, store)
            if ended is not None:
                held -= size_of.pop(ended.first)
    except BaseException:
        _cancel(ray, list(in_flight))
        raise


def _cancel(ray: ModuleType, generators: list[Any]) -> None:
    """Stop the tasks behind `generators` (their workers are killed) and wait, up to CANCEL_WAIT
    seconds, until Ray reports them ended, so no cancelled task is still running (and writing
    nothing, but using a worker) when the driver returns."""
    for generator in generators:
        with contextlib.suppress(Exception):
            ray.cancel(generator, force=True)
    with contextlib.suppress(Exception):
        ray.wait([generator.completed() for generator in generators], num_returns=len(generators),
                 timeout=CANCEL_WAIT)


def _receive(ray: ModuleType, generator: Any, in_flight: dict[Any, Chunk], store: Callable[[Chunk, dict], None]
             ) -> Chunk | None:
    """Hand every item `generator` has ready to `store`; forget the task once it has ended, and
    return its chunk then (None while it runs)."""
    chunk = in_flight[generator]
    while True:
        try:
            ref = next(generator)  # does not block: ray.wait said an item is there
        except StopIteration:
            del in_flight[generator]
            return chunk
        try:
            item = ray.get(ref)
        except ray.exceptions.RayError as error:
            del in_flight[generator]
            raise _TaskFailed(chunk, _cause(error)) from None
        store(chunk, item)
        ready, _ = ray.wait([generator], num_returns=1, timeout=0)
        if not ready:
            return None


def _cause(error: BaseException) -> str:
    """One line naming what went wrong in a task: the task's own exception, or Ray's."""
    cause = getattr(error, "cause", None)
    if isinstance(cause, StylereelError):
        return str(cause)
    if cause is not None:
        return f"{type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''}".rstrip(": ")
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")


def task_frames(chunks: list[Chunk], frames: Iterable[np.ndarray], plan: Plan
                ) -> Iterator[tuple[Chunk, np.ndarray, np.ndarray]]:
    """Each of `chunks` (in video order) with its frames, tail included, uint8 (N, H, W, 3), and the
    first frame of its shot, as soon as the decoder has passed them. A frame may belong to two
    chunks: the tail of one, the next one's own."""
    pending = sorted(chunks, key=lambda chunk: chunk.first)
    open_: list[tuple[Chunk, list[np.ndarray]]] = []
    shot_first = None
    for index, frame in enumerate(frames):
        shot_first = frame if index in plan.starts else shot_first
        while pending and pending[0].first <= index:
            open_.append((pending.pop(0), []))
        for chunk, images in open_:
            images.append(frame)
        for chunk, images in [item for item in open_ if index >= item[0].last + item[0].tail]:
            open_.remove((chunk, images))
            yield chunk, np.stack(images), shot_first  # (N, H, W, 3)
        if not pending and not open_:
            return


def _digest(images: StyleImages) -> str:
    import hashlib

    digest = hashlib.sha256()
    for image in [*images.full, *(image for rung in images.rungs.values() for image in rung or [])]:
        digest.update(str(image.shape).encode())
        digest.update(image.tobytes())
    return digest.hexdigest()


def tail_path(checkpoint: Checkpoint, index: int) -> Path:
    """Where, in the work folder, the tail of a chunk keeps frame `index` (a PNG of the next chunk's
    start, to cross-fade from)."""
    return checkpoint.folder / f"{index:06d}.tail.png"


def _task_path(checkpoint: Checkpoint, chunk: Chunk) -> Path:
    return checkpoint.folder / f"task-{chunk.first:06d}-{chunk.last:06d}-{chunk.tail}.json"


def _store_frame(checkpoint: Checkpoint, chunk: Chunk, index: int, image: np.ndarray) -> bool:
    """Write frame `index` of a running task (PNG, lossless): one of its own frames, or of its tail.
    Whether it is one of its own."""
    own = index <= chunk.last
    try:
        io.write_image(checkpoint.frame_path(index) if own else tail_path(checkpoint, index), image)
    except OSError as error:
        raise ClusterError(f"{checkpoint.folder}: cannot write finished frames ({error.strerror or error})") from None
    return own


def _store_task(checkpoint: Checkpoint, chunk: Chunk, records: list[dict[str, Any]], info: dict[str, Any]) -> dict[str, Any]:
    """Write a finished task's record, after all its frames: a task counts as done only once
    everything it made is on disk."""
    done = {"shot": chunk.shot, "first": chunk.first, "last": chunk.last, "tail": chunk.tail,
            "frames": chunk.n_frames, "node": info["node"], "seconds": round(info["seconds"], 3),
            "retries": info["retries"], "device": info["device"], "records": records}
    try:
        temp = _task_path(checkpoint, chunk).with_suffix(".tmp")
        temp.write_text(json.dumps(done))
        os.replace(temp, _task_path(checkpoint, chunk))
    except OSError as error:
        raise ClusterError(f"{checkpoint.folder}: cannot write finished frames ({error.strerror or error})") from None
    return done


def finished_tasks(checkpoint: Checkpoint, chunks: list[Chunk]) -> dict[int, dict[str, Any]]:
    """The tasks of this plan already done in the work folder (a resumed run), by first frame: each
    task's record as `_store_task` wrote it (where and how long it ran, and its frames' records)."""
    done = {}
    for chunk in chunks:
        path = _task_path(checkpoint, chunk)
        if path.exists():
            done[chunk.first] = json.loads(path.read_text())
    return done


def _stopped(checkpoint: Checkpoint, finished: dict[int, dict[str, Any]], output: Path) -> None:
    """Ctrl-C: keep what is finished and say how to go on, as the local path does."""
    frames = sum(len(done["records"]) for done in finished.values())
    if not finished and any(checkpoint.folder.glob("task-*.json")):  # a resume stopped before reading them
        raise Interrupted(f"interrupted; the finished tasks are kept in {checkpoint.folder}, run the same command "
                          "with --resume to continue") from None
    if not finished:
        checkpoint.remove()
        raise Interrupted(f"interrupted before the first task was finished; nothing was written to {output}") from None
    raise Interrupted(f"interrupted after {len(finished)} task(s) ({frames} frame(s)); they are kept in "
                      f"{checkpoint.folder}, run the same command with --resume to continue") from None


def _encode(checkpoint: Checkpoint, chunks: list[Chunk], plan: Plan, output: Path, info: io.VideoInfo,
            config: Config) -> io.VideoWriter:
    """Encode the finished frames in order with their timestamps and the audio. Over a seam, frame
    `last + k` of a chunk with tail T is (1 - k / (T + 1)) of its tail plus k / (T + 1) of the next
    chunk's own result: a linear cross-fade from one chain into the other."""
    fades = _fades(chunks)
    with io.VideoWriter(output, width=plan.width, height=plan.height, time_base=plan.time_base,
                        rate=info.average_rate, crf=config.crf, audio_from=info.path) as writer:
        for index in range(plan.n_frames):
            writer.write(final_frame(checkpoint, index, fades.get(index)), plan.pts[index])
    return writer


def write_frames(checkpoint: Checkpoint, chunks: list[Chunk], targets: list[Path]) -> None:
    """Write every frame, cross-faded over seams as `_encode` does, as a PNG at its target (each
    written whole, `io.write_image`).

    Raises:
        OutputError: a frame cannot be written; the work folder is kept.
    """
    fades = _fades(chunks)
    try:
        targets[0].parent.mkdir(exist_ok=True)
        for index, target in enumerate(targets):
            io.write_image(target, final_frame(checkpoint, index, fades.get(index)))
    except OSError as error:
        raise OutputError(f"{targets[0].parent}: cannot write the finished frames there "
                          f"({error.strerror or error}); they are kept in {checkpoint.folder}") from None


def _fades(chunks: list[Chunk]) -> dict[int, float]:
    """Over each seam, the share of the new chunk in frame `last + k` of a chunk with tail T: k / (T + 1)."""
    return {chunk.last + k: k / (chunk.tail + 1) for chunk in chunks for k in range(1, chunk.tail + 1)}


def final_frame(checkpoint: Checkpoint, index: int, fade: float | None) -> np.ndarray:
    """Frame `index` as the output shows it, uint8 (H, W, 3): its task's result, cross-faded from the
    previous chunk's tail where `fade` (the share of the new chunk) is given."""
    image = io.read_image(checkpoint.frame_path(index))
    if fade is None:
        return image
    tail = io.read_image(tail_path(checkpoint, index)).astype(np.float32)
    return np.clip(np.rint((1 - fade) * tail + fade * image.astype(np.float32)), 0, 255).astype(np.uint8)
