"""Each engine's estimated time, and the line a long `video` or `frames` run says before it starts."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import shot_frames
from stylereel.cli.main import app
from stylereel.pipeline import estimates, io, run
from stylereel.pipeline.config import Config, Engine
from stylereel.pipeline.estimates import Timings, duration, long_run_notice, network_estimate, optimize_estimate
from typer.testing import CliRunner

# About the 2-core CPU of docs/speed.md at 512x288: an iteration, a training step, a painted frame.
CPU = Timings(iteration=1.0, train_step=2.0, paint=0.12)


def _both(config: Config, n_frames: int, timings: Timings = CPU):
    sizes = {"width": 512, "height": 288, "n_frames": n_frames, "timings": timings, "device": "cpu"}
    return optimize_estimate(config, **sizes), network_estimate(config, **sizes)


def test_the_network_estimate_is_training_plus_painting_plus_refining():
    _, network = _both(Config(train_iterations=1000, train_crop=400), 300)
    assert network.seconds == pytest.approx(1000 * 2.0 + 300 * 0.12)
    assert not network.upper_bound and "x 1000 steps" in network.rests_on and "400x288 crops" in network.rests_on
    assert "painted (its flow included: --carry)" in network.rests_on
    assert "flow included: --carry" not in _both(Config(carry=0.0), 300)[1].rests_on
    _, refined = _both(Config(train_iterations=1000, refine=3), 300)
    assert refined.seconds == pytest.approx(1000 * 2.0 + 300 * 0.12 + 300 * 3 * 1.0)
    assert refined.upper_bound and "at most 3 optimiser iterations per frame" in refined.rests_on


def test_the_optimiser_estimate_is_its_budgets_times_an_iteration():
    config = Config(coarse_to_fine=False, first_iterations=20, iterations=5, passes=2)
    optimiser, _ = _both(config, 8)
    assert optimiser.iterations == 20 + 7 * 5 + 8 * 5 and optimiser.seconds == pytest.approx(optimiser.iterations)
    assert optimiser.upper_bound and "20 on the first frame" in optimiser.rests_on


def test_a_long_clip_with_the_optimiser_names_the_faster_network():
    optimiser, network = _both(Config(), 300)
    assert network.seconds < optimiser.seconds
    text = long_run_notice(optimiser, network).text
    assert text.startswith("estimated time for 300 frame(s) at 512x288 on cpu with --engine optimize: at most ")
    assert f"--engine network would take about {duration(network.seconds)} ({Config().train_iterations} training steps at 2.00 s" in text


def test_a_short_clip_with_the_network_says_the_optimiser_is_faster():
    optimiser, network = _both(Config(engine="network"), 5)
    assert optimiser.seconds < network.seconds
    text = long_run_notice(network, optimiser).text
    assert f"with --engine network: about {duration(network.seconds)}" in text
    assert f"on a clip this short --engine optimize is faster: at most {duration(optimiser.seconds)}" in text


def test_the_slower_engine_is_not_offered():
    optimiser, network = _both(Config(), 5)
    assert "--engine network" not in long_run_notice(optimiser, network).text
    optimiser, network = _both(Config(), 300)
    assert "--engine optimize" not in long_run_notice(network, optimiser).text


def test_a_short_run_says_nothing():
    fast = Timings(iteration=0.01, train_step=0.02, paint=0.001)  # a GPU, say
    optimiser, network = _both(Config(), 20, fast)
    assert optimiser.seconds <= estimates.SAY_ABOVE and long_run_notice(optimiser, network) is None
    assert network.seconds <= estimates.SAY_ABOVE and long_run_notice(network, optimiser) is None


def test_duration_reads_like_a_clock():
    assert [duration(s) for s in (42.4, 187, 7500)] == ["42 s", "3 min 07 s", "2 h 05 min"]


@pytest.mark.parametrize("compile", [False, True])
def test_the_painting_is_timed_as_the_run_paints(monkeypatch, compile):
    painted_with = []

    def train(session, frames, cuts, *, steps, emit):
        for step in range(steps):
            emit(SimpleNamespace(seconds=float(step)))

    def paint(network, frames, device, *, bf16, compiled=False):
        painted_with.append(compiled)
        return iter(frames)

    monkeypatch.setattr(estimates, "train_network", train)
    monkeypatch.setattr(estimates, "paint", paint)
    session = SimpleNamespace(config=Config(compile=compile, carry=0.0), device=torch.device("cpu"))
    train_step, _ = estimates.time_network(session, shot_frames((2,)), repeat=2)
    assert train_step == 1.0 and painted_with == [compile, compile]  # the untimed batch compiles, the timed one runs


def _no_timing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(estimates, "time_iteration", lambda *a, **k: pytest.fail("timed an iteration"))
    monkeypatch.setattr(estimates, "time_network", lambda *a, **k: pytest.fail("timed the network"))


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """4 frames of 48x32 PNGs in a folder."""
    folder = tmp_path / "frames"
    folder.mkdir()
    for index, frame in enumerate(shot_frames((4,))):
        io.write_image(folder / f"{index:03d}.png", frame)
    return folder


TINY_RUN = ["--max-side", "32", "--first-iterations", "2", "--iterations", "2", "--no-coarse-to-fine",
            "--device", "cpu", "--train-iterations", "2"]


@pytest.mark.parametrize("engine", ["optimize", "network"])
def test_a_tiny_run_times_nothing_and_says_nothing(tmp_path, folder, style, monkeypatch, engine):
    _no_timing(monkeypatch)
    result = CliRunner().invoke(app, ["frames", str(folder), "-s", str(style), "-o", str(tmp_path / "out"),
                                      "--engine", engine, *TINY_RUN])
    assert result.exit_code == 0, result.output
    assert "estimated time" not in result.output


@pytest.mark.parametrize("engine", ["optimize", "network"])
def test_a_run_over_the_threshold_says_its_time_before_it_starts(tmp_path, folder, style, monkeypatch, engine):
    monkeypatch.setattr(estimates, "SAY_ABOVE", 0.0)
    result = CliRunner().invoke(app, ["frames", str(folder), "-s", str(style), "-o", str(tmp_path / "out"),
                                      "--engine", engine, *TINY_RUN])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    said = [number for number, line in enumerate(lines) if line.startswith("estimated time for 4 frame(s) at 32x")]
    started = [number for number, line in enumerate(lines) if line.startswith("stylizing at")]
    assert len(said) == 1 and said[0] < started[0], result.output
    assert f"on cpu with --engine {engine}: " in lines[said[0]]


def test_the_timing_leaves_the_result_as_it_was(tmp_path, folder, style, monkeypatch):
    """The timing trains a network of its own: the run's network starts from the same random state."""
    config = Config(max_side=32, device="cpu", engine=Engine.network, train_iterations=3, train_crop=32,
                    network_width=4)
    run.stylize_frames(folder, [style], tmp_path / "plain", config)
    monkeypatch.setattr(estimates, "SAY_ABOVE", 0.0)
    said = []
    run.stylize_frames(folder, [style], tmp_path / "timed", replace(config, engine=Engine.network),
                       callback=lambda event: said.append(getattr(event, "text", "")))
    assert any(text.startswith("estimated time") for text in said)
    for path in sorted((tmp_path / "plain").iterdir()):
        assert np.array_equal(io.read_image(path), io.read_image(tmp_path / "timed" / path.name))
