"""Model files (`stylereel train`, `--model`): train once on several inputs, paint later without
training, and refuse a file that is damaged, foreign, of another version or trained for other
settings in one line, before any work. The library checks of `load_network` are in test_network.py."""

import hashlib
import json

import av
import pytest
from conftest import make_image, make_shots_clip, write_bad_model
from stylereel.cli.main import app
from stylereel.pipeline import io, learned, run
from stylereel.pipeline.config import Config
from stylereel.pipeline.events import TrainStep
from stylereel.pipeline.network import load_network
from typer.testing import CliRunner

TINY = ("--max-side", 32, "--device", "cpu")


def _invoke(*args):
    return CliRunner().invoke(app, [str(arg) for arg in args])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A model trained by `stylereel train` on two tiny clips (3 + 3 frames, 4 frames), its style,
    and the command's result."""
    folder = tmp_path_factory.mktemp("trained")
    style = folder / "style.png"
    make_image(style, size=(48, 48))
    first = make_shots_clip(folder / "a.mkv", (3, 3), size=(32, 32)).path
    second = make_shots_clip(folder / "b.mkv", (4,), size=(32, 32)).path
    model = folder / "model.safetensors"
    result = _invoke("train", first, second, "-s", style, "-o", model, "--train-iterations", 3, *TINY)
    return model, style, result


def test_train_on_two_clips_writes_a_model_that_records_what_it_learned(trained):
    model, style, result = trained
    assert result.exit_code == 0, result.output
    assert "trained 3 steps on 10 frame(s) (3 shot(s) of 2 input(s))" in result.output
    network, recorded = load_network(model)
    assert recorded["styles"] == [hashlib.sha256(style.read_bytes()).hexdigest()]
    assert recorded["max_side"] == 32 and recorded["preserve_colors"] == "none"
    assert network.width == recorded["network_width"]


def test_each_input_starts_a_shot_of_its_own(tmp_path, style):
    clip = make_shots_clip(tmp_path / "a.mkv", (3,), size=(32, 32)).path  # its end flows back into its start
    config = Config(max_side=32, device="cpu", train_iterations=1, train_crop=32, network_width=4)
    summary = learned.train_model([clip, clip], [style], tmp_path / "model.safetensors", config)
    assert (summary.n_frames, summary.n_shots) == (6, 2)


def test_video_with_a_model_paints_without_training_keeping_count_and_timestamps(trained, tmp_path):
    model, _, _ = trained
    clip = make_shots_clip(tmp_path / "c.mkv", (2, 3), size=(32, 32))
    output, stats, events = tmp_path / "out.mp4", tmp_path / "stats.json", []
    summary = run.stylize_video(clip.path, [], output, Config(max_side=32, device="cpu"), stats=stats, model=model,
                                callback=events.append)
    assert not any(isinstance(event, TrainStep) for event in events)
    assert set(summary.phases) == {"infer"} and not summary.train
    with av.open(str(output)) as container:
        times = [float(frame.pts * frame.time_base) for frame in container.decode(video=0)]
    assert times == pytest.approx([index / 24 for index in range(5)], abs=1e-3)
    recorded = json.loads(stats.read_text())
    assert recorded["model"] == str(model) and "train" not in recorded and set(recorded["phase_seconds"]) == {"infer"}


def test_image_and_frames_with_a_model_come_out_at_their_size(trained, tmp_path):
    model, style, _ = trained
    make_image(tmp_path / "photo.png", size=(40, 28))
    result = _invoke("image", tmp_path / "photo.png", "--model", model, "-s", style, "-o", tmp_path / "out.png",
                     "--max-side", "source", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert io.read_image(tmp_path / "out.png").shape == (28, 40, 3)
    (tmp_path / "in").mkdir()
    for index in range(2):
        make_image(tmp_path / "in" / f"{index}.png", size=(36, 20))
    result = _invoke("frames", tmp_path / "in", "--model", model, "-o", tmp_path / "out", *TINY)
    assert result.exit_code == 0, result.output
    assert [io.read_image(tmp_path / "out" / f"{index}.png").shape for index in range(2)] == [(18, 32, 3)] * 2


@pytest.mark.parametrize("change, words", [
    ("another style", "other style images than other.png"),
    ("another style weight", "style_weight was 0.0001, this run asks 0.001"),
])
def test_a_model_trained_for_other_settings_is_refused_in_one_line(trained, tmp_path, change, words):
    model, style, _ = trained
    clip = make_shots_clip(tmp_path / "c.mkv", (2,), size=(32, 32)).path
    if change == "another style":
        make_image(tmp_path / "other.png", size=(48, 40))
        flags = ("-s", tmp_path / "other.png")
    else:
        flags = ("-s", style, "--style-weight", 1e-3)
    result = _invoke("video", clip, "--model", model, *flags, "-o", tmp_path / "out.mp4", *TINY)
    assert result.exit_code == 2
    assert result.output.startswith(f"error: {model}: trained for other settings") and words in result.output
    assert result.output.count("\n") == 1
    assert not (tmp_path / "out.mp4").exists()


@pytest.mark.parametrize("kind, words", [
    ("cut short", "not a model file"),
    ("foreign", "not a stylereel model"),
    ("another version", "architecture version 99"),
])
def test_a_bad_model_file_is_one_line_and_nothing_is_written(tmp_path, kind, words):
    model = write_bad_model(tmp_path / "model.safetensors", kind)
    clip = make_shots_clip(tmp_path / "c.mkv", (2,), size=(32, 32)).path
    before = clip.read_bytes()
    for command in (("video", clip), ("image", tmp_path / "photo.png")):
        make_image(tmp_path / "photo.png")
        output = tmp_path / ("out.mp4" if command[0] == "video" else "out.png")
        result = _invoke(*command, "--model", model, "-o", output, *TINY)
        assert result.exit_code == 2
        assert result.output.startswith(f"error: {model}: ") and words in result.output
        assert result.output.count("\n") == 1
        assert not output.exists()
    assert clip.read_bytes() == before


def test_train_refuses_an_existing_output_without_overwrite(tmp_path, style):
    clip = make_shots_clip(tmp_path / "a.mkv", (2,), size=(32, 32)).path
    model = tmp_path / "model.safetensors"
    model.write_bytes(b"keep")
    result = _invoke("train", clip, "-s", style, "-o", model, *TINY)
    assert result.exit_code == 2
    assert result.output == f"error: {model}: already exists (use --overwrite to replace it)\n"
    assert model.read_bytes() == b"keep"


def test_a_run_needs_a_style_or_a_model(tmp_path):
    make_image(tmp_path / "photo.png")
    result = _invoke("image", tmp_path / "photo.png", "-o", tmp_path / "out.png")
    assert result.exit_code == 2
    assert result.output == "error: give a style image (-s/--style), or a model file to paint with (--model)\n"
