"""The network engine's work folder: interrupted training and painting resume to the uninterrupted result."""

import io as stdio
from dataclasses import replace

import av
import numpy as np
import pytest
import torch
from conftest import make_shots_clip, shot_frames
from stylereel.cli.main import app
from stylereel.pipeline import io, learned, run, train
from stylereel.pipeline.checkpoint import Checkpoint
from stylereel.pipeline.config import Config
from stylereel.pipeline.errors import ConfigError, Interrupted, OutputError
from stylereel.pipeline.events import FrameDone, TrainStep
from stylereel.pipeline.network import load_network
from stylereel.pipeline.sequence import prepare_session
from typer.testing import CliRunner

TINY = Config(max_side=32, device="cpu", engine="network", train_iterations=8, train_crop=32, network_width=4)


def _stop_at(kind, number):
    """A progress callback that raises KeyboardInterrupt, as Ctrl-C would, at training step `number`
    (`TrainStep`) or after frame `number` is finished (`FrameDone`, 1-based)."""
    def callback(event):
        if isinstance(event, kind) and (event.step if kind is TrainStep else event.index + 1) == number:
            raise KeyboardInterrupt
    return callback


def _frames_of(path):
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


@pytest.fixture
def clip(tmp_path):
    return make_shots_clip(tmp_path / "shots.mkv", (3, 3)).path


def test_training_stopped_at_a_step_resumes_to_the_same_weights(style):
    frames = shot_frames((4,), (32, 32))
    session = prepare_session(TINY, [style], size=(32, 32))
    whole = train.train_network(session, frames, [0], steps=6, emit=lambda event: None)
    saved = []
    session = prepare_session(TINY, [style], size=(32, 32))  # seeds the network's initial weights again
    with pytest.raises(KeyboardInterrupt):
        train.train_network(session, frames, [0], steps=6, emit=_stop_at(TrainStep, 3), save=saved.append)
    assert [state.step for state in saved] == [3]  # at Ctrl-C; the clock's saves come every minute
    state = train.TrainState(**_copied(vars(saved[0])))
    resumed = train.train_network(session, frames, [0], steps=6, emit=lambda event: None, resume=state)
    weights, at_stop = whole.state_dict(), _copied(saved[0].network)
    assert all(torch.equal(weights[name], value) for name, value in resumed.state_dict().items())
    assert any(not torch.equal(weights[name], value) for name, value in at_stop.items())  # it went on from step 3


def _copied(value):
    """`value` through torch.save and torch.load(weights_only=True), as the work folder keeps it."""
    buffer = stdio.BytesIO()
    torch.save(value, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def test_an_interrupted_training_resumes_to_the_uninterrupted_video(tmp_path, style, clip):
    run.stylize_video(clip, [style], tmp_path / "whole.mkv", TINY)
    output = tmp_path / "out.mkv"
    with pytest.raises(Interrupted) as caught:
        run.stylize_video(clip, [style], output, TINY, callback=_stop_at(TrainStep, 5))
    work = Checkpoint.beside(output)
    assert str(caught.value) == (f"interrupted while training the network; the training up to step 5 of 8 is kept "
                                 f"in {work}, run the same command with --resume to finish")
    assert sorted(path.name for path in work.iterdir()) == ["settings.json", "training.pt"] and not output.exists()
    with pytest.raises(OutputError, match="--resume"):
        run.stylize_video(clip, [style], output, TINY)
    events = []
    summary = run.stylize_video(clip, [style], output, TINY, resume=True, callback=events.append)
    assert [event.step for event in events if isinstance(event, TrainStep)] == [6, 7, 8]
    assert summary.n_frames == 6 and not work.exists()
    whole, resumed = _frames_of(tmp_path / "whole.mkv"), _frames_of(output)
    assert len(resumed) == 6 and all(np.array_equal(a, b) for a, b in zip(whole, resumed))


@pytest.mark.parametrize("changed", [{"train_iterations": 9}, {"style_weight": 2e-4}, {"max_frames": 5}])
def test_a_resume_with_other_settings_is_refused_before_any_work(tmp_path, style, clip, changed):
    output = tmp_path / "out.mkv"
    with pytest.raises(Interrupted):
        run.stylize_video(clip, [style], output, TINY, callback=_stop_at(TrainStep, 2))
    events = []
    with pytest.raises(ConfigError, match=f"cannot resume with other settings \\({next(iter(changed))} differ\\)"):
        run.stylize_video(clip, [style], output, replace(TINY, **changed), resume=True, callback=events.append)
    assert events == [] and Checkpoint.beside(output).exists()


def test_ctrl_c_before_the_first_training_step_keeps_nothing(tmp_path, style, clip):
    output = tmp_path / "out.mkv"
    with pytest.raises(Interrupted, match="^interrupted while training the network; nothing was kept$"):
        run.stylize_video(clip, [style], output, TINY, callback=_at_run_start)
    assert not Checkpoint.beside(output).exists() and not output.exists()


def _at_run_start(event):
    if type(event).__name__ == "RunStarted":
        raise KeyboardInterrupt


def test_painting_stopped_after_training_paints_again_from_the_kept_network(tmp_path, style):
    folder = tmp_path / "in"
    folder.mkdir()
    for index, frame in enumerate(shot_frames((5,), (32, 32))):
        io.write_image(folder / f"{index}.png", frame)
    run.stylize_frames(folder, [style], tmp_path / "whole", TINY)
    output = tmp_path / "out"
    with pytest.raises(Interrupted, match=r"while painting the frames; the trained network is kept in .*--resume"):
        run.stylize_frames(folder, [style], output, TINY, callback=_stop_at(FrameDone, 2))
    events = []
    run.stylize_frames(folder, [style], output, TINY, resume=True, callback=events.append)
    assert not any(isinstance(event, TrainStep) for event in events)  # the network was kept whole
    for index in range(5):
        assert np.array_equal(io.read_image(output / f"{index}.png"), io.read_image(tmp_path / "whole" / f"{index}.png"))
    assert not Checkpoint.beside(output).exists()


def test_refined_frames_are_kept_and_a_resume_continues_after_them(tmp_path, style, clip):
    config = replace(TINY, refine=2, train_iterations=3)
    run.stylize_video(clip, [style], tmp_path / "whole.mkv", config)
    output = tmp_path / "out.mkv"
    with pytest.raises(Interrupted, match=r"the trained network and 4 finished frame\(s\) are kept"):
        run.stylize_video(clip, [style], output, config, callback=_stop_at(FrameDone, 4))
    work = Checkpoint.beside(output)
    assert sorted(path.name for path in work.glob("*.png")) == [f"{index:06d}.png" for index in range(4)]
    events = []
    summary = run.stylize_video(clip, [style], output, config, resume=True, callback=events.append)
    started = [event.index for event in events if type(event).__name__ == "FrameStarted"]
    assert started == [4, 5]  # only the frames after the kept ones are refined again
    assert [record.iterations for record in summary.frames] == [2] * 6
    whole, resumed = _frames_of(tmp_path / "whole.mkv"), _frames_of(output)
    assert len(resumed) == 6 and all(np.array_equal(a, b) for a, b in zip(whole, resumed))
    assert not work.exists()


def test_a_model_run_cannot_resume(tmp_path, style, clip):
    with pytest.raises(ConfigError, match="--resume is not available with --model"):
        run.stylize_video(clip, [style], tmp_path / "out.mkv", TINY, model=tmp_path / "model.safetensors",
                          resume=True)


def test_an_interrupted_train_command_resumes_to_the_uninterrupted_model(tmp_path, style, clip):
    learned.train_model([clip], [style], tmp_path / "whole.safetensors", TINY)
    output = tmp_path / "out.safetensors"
    with pytest.raises(Interrupted) as caught:
        learned.train_model([clip], [style], output, TINY, callback=_stop_at(TrainStep, 5))
    work = Checkpoint.beside(output)
    assert str(caught.value) == (f"interrupted while training the network; the training up to step 5 of 8 is kept "
                                 f"in {work}, run the same command with --resume to finish")
    assert sorted(path.name for path in work.iterdir()) == ["settings.json", "training.pt"] and not output.exists()
    with pytest.raises(OutputError, match="--resume"):
        learned.train_model([clip], [style], output, TINY)
    with pytest.raises(ConfigError, match="train_iterations"):
        learned.train_model([clip], [style], output, replace(TINY, train_iterations=9), resume=True)
    events = []
    summary = learned.train_model([clip], [style], output, TINY, resume=True, callback=events.append)
    assert [event.step for event in events if isinstance(event, TrainStep)] == [6, 7, 8]
    assert summary.steps == 8 and output.exists() and not work.exists()
    whole, resumed = load_network(tmp_path / "whole.safetensors")[0].state_dict(), load_network(output)[0].state_dict()
    assert whole.keys() == resumed.keys() and all(torch.equal(whole[name], resumed[name]) for name in whole)


def test_the_train_command_names_the_left_work_and_resumes_it(tmp_path, style, clip):
    output = tmp_path / "out.safetensors"
    with pytest.raises(Interrupted):
        learned.train_model([clip], [style], output, TINY, callback=_stop_at(TrainStep, 3))
    command = ["train", str(clip), "-s", str(style), "-o", str(output), "--max-side", "32", "--device", "cpu",
               "--train-iterations", "8", "-c", str(_config_file(tmp_path))]
    refused = CliRunner().invoke(app, command)
    assert refused.exit_code == 2 and "--resume" in refused.output and "Traceback" not in refused.output
    finished = CliRunner().invoke(app, [*command, "--resume"])
    assert finished.exit_code == 0, finished.output
    assert output.exists() and not Checkpoint.beside(output).exists()


def _config_file(tmp_path):
    """TINY's network settings as a config file, for the command line."""
    path = tmp_path / "tiny.toml"
    path.write_text("train_crop = 32\nnetwork_width = 4\n")
    return path
