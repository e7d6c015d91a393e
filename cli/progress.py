"""Rich rendering of the library's progress events; the only place that draws them."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from stylereel.pipeline.bench import TEXTBOOK, NetworkTiming, SizeResult
from stylereel.pipeline.estimates import duration
from stylereel.pipeline.evaluate import Evaluation
from stylereel.pipeline.learned import TrainSummary
from stylereel.pipeline.events import CellDone, PreviewStarted, TasksChanged, TrainStep
from stylereel.pipeline.optimize import IterationDone
from stylereel.pipeline.preview import PreviewSummary
from stylereel.pipeline.run import Event, FrameDone, FramesChecked, FrameStarted, Notice, RunStarted, Summary
from stylereel.pipeline.shots import Plan


class ProgressView:
    """A frames bar (done/total, frames/min, elapsed, ETA) and an iterations bar with the current loss.

    Use as a context manager and pass `handle` to the library as its callback. The bars appear
    when the run starts, so an error found before that prints its line alone.
    """

    def __init__(self, *, quiet: bool, console: Console | None = None) -> None:
        self.quiet = quiet
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console or Console(stderr=True),
            disable=quiet,
            transient=False,
        )
        self.frames_task = None
        self.iterations_task = None
        self.check_task = None  # frames decoded by the check before the run (`frames`), shown while it runs
        self.started = False
        self.tasks = ""  # a Ray run's tasks: running, queued, waiting, and its workers

    def __enter__(self) -> ProgressView:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.check_task is not None and self.frames_task is None:
            # The check failed: its bar goes, so the error stays the only line. In a terminal the
            # bar was visible while it ran.
            self.progress.remove_task(self.check_task)
            self.progress.live.transient = True
        if self.started:
            self.progress.stop()

    def handle(self, event: Event) -> None:
        if self.quiet:
            return
        if isinstance(event, Notice):
            self.progress.console.print(event.text, markup=False, highlight=False)
        elif isinstance(event, FramesChecked):
            if self.check_task is None:
                self.progress.start()
                self.started = True
                self.check_task = self.progress.add_task("checking frames", total=event.total, detail="")
            self.progress.update(self.check_task, completed=event.done)
        elif isinstance(event, RunStarted):
            if self.check_task is not None:
                self.progress.remove_task(self.check_task)  # the check is done: only the run's bars stay
            self.progress.start()
            self.started = True
            doing = "training" if event.n_frames == 0 else "stylizing"  # 0: a run that trains and paints nothing
            self.progress.console.print(f"{doing} at {event.width}x{event.height} on {event.device}")
            self.frames_task = self.progress.add_task("frames", total=event.n_frames, detail="",
                                                      visible=event.n_frames != 0)
            self.iterations_task = self.progress.add_task("iterations", total=None, detail="")
        elif isinstance(event, FrameStarted):
            self.progress.reset(self.iterations_task, total=event.n_iters, detail=f"frame {event.index + 1}")
        elif isinstance(event, IterationDone):
            detail = None if event.loss is None else f"loss {event.loss:.4g}"
            self.progress.update(self.iterations_task, completed=event.iteration, **({"detail": detail} if detail else {}))
        elif isinstance(event, FrameDone):
            self.progress.update(self.frames_task, advance=1, detail=_fpm(self.progress, self.frames_task) + self.tasks)
        elif isinstance(event, TrainStep):
            if event.step == 1:
                self.progress.reset(self.iterations_task, total=event.total, detail="training")
            self.progress.update(self.iterations_task, completed=event.step, detail=f"training, loss {event.loss:.4g}")
        elif isinstance(event, TasksChanged):
            self.tasks = (f" | tasks: {event.running} running, {event.queued} queued, {event.waiting} waiting; "
                          f"{event.workers} worker(s)")
            self.progress.update(self.frames_task, detail=_fpm(self.progress, self.frames_task) + self.tasks)
            self.progress.update(self.iterations_task, visible=False)  # the iterations run on the workers


class PreviewView:
    """A cells bar (done/total, elapsed, ETA) and an iterations bar for the cell being stylized."""

    def __init__(self, *, quiet: bool, console: Console | None = None) -> None:
        self.quiet = quiet
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(), TimeRemainingColumn(),
            console=console or Console(stderr=True), disable=quiet, transient=False,
        )
        self.cells_task = None
        self.iterations_task = None

    def __enter__(self) -> PreviewView:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.cells_task is not None:
            self.progress.stop()

    def handle(self, event: Event) -> None:
        if self.quiet:
            return
        if isinstance(event, Notice):
            self.progress.console.print(event.text, markup=False, highlight=False)
        elif isinstance(event, PreviewStarted):
            self.progress.start()
            self.progress.console.print(f"preview cells at {event.width}x{event.height}")
            self.cells_task = self.progress.add_task("cells", total=event.n_cells, detail="")
            self.iterations_task = self.progress.add_task("iterations", total=None, detail="")
        elif isinstance(event, FrameStarted):
            self.progress.reset(self.iterations_task, total=event.n_iters, detail="")
        elif isinstance(event, IterationDone):
            detail = None if event.loss is None else f"loss {event.loss:.4g}"
            self.progress.update(self.iterations_task, completed=event.iteration, **({"detail": detail} if detail else {}))
        elif isinstance(event, CellDone):
            self.progress.update(self.cells_task, completed=event.done)


def print_estimate(console: Console, summary: PreviewSummary) -> None:
    """Where the sheet went, how long it took, and the full run's estimated time by each engine."""
    estimate = summary.estimate
    console.print(f"[bold green]done[/]: {summary.n_cells} cells ({summary.rows} x {summary.columns}) in "
                  f"{summary.seconds:.1f} s -> {escape(str(summary.output))}", soft_wrap=True)
    frames = f"{estimate.n_frames} frame(s)" if estimate.n_frames > 1 else "the image"
    console.print(f"estimate for the full run ({frames} at {estimate.width}x{estimate.height} on {estimate.device}, "
                  f"the settings given): at most {duration(estimate.seconds)}. It rests on: {escape(estimate.rests_on)}.",
                  soft_wrap=True, highlight=False)
    if summary.network is not None:
        network = summary.network
        bound = "at most" if network.upper_bound else "about"
        console.print(f"with --engine network: {bound} {duration(network.seconds)}. It rests on: "
                      f"{escape(network.rests_on)}.", soft_wrap=True, highlight=False)


def _fpm(progress: Progress, task_id: int) -> str:
    task = next(task for task in progress.tasks if task.id == task_id)
    if not task.elapsed:
        return ""
    return f"{(task.completed + 1) / task.elapsed * 60:.1f} frames/min"


def print_summary(console: Console, summary: Summary) -> None:
    per_frame = summary.seconds / max(summary.n_frames, 1)
    console.print(
        f"[bold green]done[/]: {summary.n_frames} frame(s) at {summary.width}x{summary.height} on "
        f"{summary.device} in {summary.seconds:.1f} s ({per_frame:.2f} s/frame) -> {escape(str(summary.output))}",
        soft_wrap=True,
    )
    infer = summary.phases.get("infer", 0.0) / max(summary.n_frames, 1) * 1e3
    if summary.train:
        console.print(f"network: trained {summary.train['steps']} steps in {summary.train['seconds']:.1f} s, "
                      f"painted at {infer:.0f} ms/frame", soft_wrap=True)
    elif summary.model is not None:
        console.print(f"network: {escape(str(summary.model))}, painted at {infer:.0f} ms/frame", soft_wrap=True)


def print_training(console: Console, summary: TrainSummary) -> None:
    """What `stylereel train` did, in one line."""
    console.print(f"[bold green]done[/]: trained {summary.steps} steps on {summary.n_frames} frame(s) "
                  f"({summary.n_shots} shot(s) of {summary.n_inputs} input(s)) at {summary.width}x{summary.height} on "
                  f"{summary.device} in {summary.seconds:.1f} s -> {escape(str(summary.output))}", soft_wrap=True)


def print_shots(console: Console, plan: Plan) -> None:
    """A plan's shots, one line each, then how long the planning pass took."""
    console.print(f"{'shot':>5} {'first':>7} {'last':>7} {'start s':>9} {'end s':>9} {'frames':>7}")
    for number, shot in enumerate(plan.shots, start=1):
        console.print(f"{number:>5} {shot.first:>7} {shot.last:>7} {shot.start:>9.3f} {shot.end:>9.3f} {shot.n_frames:>7}")
    console.print(f"{len(plan.shots)} shot(s), {plan.n_frames} frames at {plan.width}x{plan.height}; planned in "
                  f"{plan.seconds:.2f} s ({plan.seconds / max(plan.n_frames, 1) * 1e3:.1f} ms/frame)")


def print_evaluation(console: Console, result: Evaluation) -> None:
    """The evaluation as a short aligned report."""
    ratio = result.warp_error / result.content_warp_error if result.content_warp_error else float("inf")
    pairs = "consecutive frames" if result.stride == 1 else f"frames t and t-{result.stride}"
    console.print(f"frames compared      {result.n_frames} at {result.width}x{result.height} ({pairs})")
    console.print(f"warp error           {result.warp_error:.6f}  ({ratio:.2f}x the content's)")
    console.print(f"content warp error   {result.content_warp_error:.6f}  (the flow's own floor)")
    if result.style_loss is not None:
        console.print(f"mean style loss      {result.style_loss:.6g}")
        console.print(f"mean content loss    {result.content_loss:.6g}")


def print_bench(console: Console, result: SizeResult, peak_tflops: float | None) -> None:
    """One table per size: each loop's seconds, FLOPs and rate, against the floor and the textbook."""
    table = Table(title=f"one iteration at {result.width}x{result.height}: floor {result.floor_seconds:.3f} s "
                        f"(convolutions alone sustain {result.conv_gflops_per_second:.0f} GFLOP/s)")
    for column in ("loop", "s/iteration", "GFLOP", "GFLOP/s", "x floor", "textbook / this"):
        table.add_column(column, justify="left" if column == "loop" else "right", no_wrap=column == "loop")
    if peak_tflops:
        table.add_column("share of peak", justify="right")
    textbook = result.loop(TEXTBOOK).seconds
    for loop in result.loops:
        row = [loop.name, f"{loop.seconds:.3f}", f"{loop.flops / 1e9:.1f}", f"{loop.gflops_per_second:.0f}",
               f"{loop.seconds / result.floor_seconds:.2f}", f"{textbook / loop.seconds:.2f}"]
        if peak_tflops:
            row.append(f"{loop.gflops_per_second / (peak_tflops * 1e3):.1%}")
        table.add_row(*row)
    console.print(table)


def print_network(console: Console, timing: NetworkTiming) -> None:
    """The network engine's painting and training-step times at one size."""
    console.print(f"network engine at {timing.width}x{timing.height}: painting {timing.paint_seconds * 1e3:.1f} ms/frame "
                  f"({1 / timing.paint_seconds:.0f} frames/s; channels_last {timing.paint_channels_last_seconds * 1e3:.1f} "
                  f"ms, bf16 {timing.paint_bf16_seconds * 1e3:.1f} ms{_compiled(timing)}), a training step "
                  f"{timing.train_step_seconds:.2f} s")


def _compiled(timing: NetworkTiming) -> str:
    if timing.paint_compiled_seconds is None:
        return ""
    return (f"; compiled {timing.paint_compiled_seconds * 1e3:.1f} ms, compiled bf16 "
            f"{timing.paint_compiled_bf16_seconds * 1e3:.1f} ms")


def print_phases(console: Console, summary: Summary) -> None:
    """Seconds per frame of a whole run, by stage."""
    n = max(summary.n_frames, 1)
    iterations = sum(frame.iterations for frame in summary.frames)
    console.print(f"end to end: {summary.n_frames} frame(s) at {summary.width}x{summary.height} on "
                  f"{summary.device}, {iterations} iterations, {summary.seconds / n:.2f} s/frame")
    for name, seconds in summary.phases.items():
        console.print(f"  {name:<11} {seconds / n:8.3f} s/frame  {seconds / summary.seconds:6.1%}")
