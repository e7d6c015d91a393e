"""The command line: a real run, and every bad input giving one line, exit 2 and no output."""

import hashlib
import json
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import make_audio, make_image, make_video
from stylereel.cli.main import app
from stylereel.pipeline import io
from typer.testing import CliRunner

FAST = ["--max-side", "32", "--first-iterations", "3", "--iterations", "2", "--device", "cpu"]


@pytest.fixture
def style(tmp_path: Path) -> Path:
    path = tmp_path / "style.png"
    rng = np.random.default_rng(0)
    io.write_image(path, (rng.random((40, 40, 3)) * 255).astype(np.uint8))
    return path


def _invoke(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args])


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_video_command_end_to_end(tmp_path, style):
    clip = make_video(tmp_path / "clip.mp4", n_frames=3)
    before = _digest(tmp_path)
    result = _invoke("video", clip.path, "-s", style, *FAST, "--stats", tmp_path / "stats.json")
    assert result.exit_code == 0, result.output
    output = tmp_path / "clip.stylized.mp4"  # the default name, beside the input
    with av.open(str(output)) as container:
        frames = [(f.width, f.height, float(f.pts * f.time_base)) for f in container.decode(video=0)]
        kinds = [s.type for s in container.streams]
    assert [(w, h) for w, h, _ in frames] == [(32, 22)] * 3  # 48x32 fitted to 32, even sizes
    assert [t for *_, t in frames] == pytest.approx([float(p * clip.time_base) for p in clip.pts], abs=1e-4)
    assert kinds == ["video", "audio"]
    assert "done" in result.output and "3 frame(s)" in result.output and "audio: aac" in result.output
    after = _digest(tmp_path)
    assert {name: after[name] for name in before} == before  # inputs unchanged


def test_quiet_prints_nothing(tmp_path, style):
    content = tmp_path / "content.png"
    make_image(content)
    result = _invoke("image", content, "-s", style, "-o", tmp_path / "out.png", *FAST, "--quiet")
    assert result.exit_code == 0 and result.output == ""


def test_config_preset_and_flags(tmp_path, style):
    content = tmp_path / "content.png"
    make_image(content)
    preset = tmp_path / "p.toml"
    preset.write_text("max_side = 24\nfirst_iterations = 2\n")
    result = _invoke("image", content, "-s", style, "-o", tmp_path / "out.png", "-c", preset, "--max-side", "32")
    assert result.exit_code == 0, result.output
    assert io.read_image(tmp_path / "out.png").shape == (24, 32, 3)  # the flag beat the preset


def _bad_inputs(tmp_path: Path, style: Path) -> dict[str, tuple[list, str]]:
    """name -> (arguments, words the error line must contain)."""
    (tmp_path / "notes.mp4").write_text("this is not a video\n")
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "noise.mov").write_bytes(np.random.default_rng(0).bytes(4096))
    make_audio(tmp_path / "song.m4a")
    clip = make_video(tmp_path / "ok.mp4", n_frames=2).path
    (tmp_path / "broken.png").write_text("not an image")
    (tmp_path / "taken.mp4").write_bytes(b"precious")
    return {
        "missing input": (["video", tmp_path / "nope.mp4", "-s", style], "nope.mp4: no such file"),
        "text file": (["video", tmp_path / "notes.mp4", "-s", style], "notes.mp4: not a video"),
        "empty file": (["video", tmp_path / "empty.mp4", "-s", style], "empty.mp4"),
        "random bytes": (["video", tmp_path / "noise.mov", "-s", style], "noise.mov"),
        "audio only": (["video", tmp_path / "song.m4a", "-s", style], "song.m4a: no video stream"),
        "bad style": (["video", clip, "-s", tmp_path / "broken.png", "-o", tmp_path / "o1.mp4"], "broken.png"),
        "missing style": (["video", clip, "-s", tmp_path / "gone.png", "-o", tmp_path / "o2.mp4"], "gone.png"),
        "no out folder": (["video", clip, "-s", style, "-o", tmp_path / "no" / "o.mp4"], "does not exist"),
        "existing output": (["video", clip, "-s", style, "-o", tmp_path / "taken.mp4"], "already exists"),
        "unsupported suffix": (["video", clip, "-s", style, "-o", tmp_path / "out.avi"], "out.avi: cannot write '.avi' videos"),
        "blend mismatch": (["video", clip, "-s", style, "--style-blend", "1", "--style-blend", "2",
                            "-o", tmp_path / "o3.mp4"], "--style-blend has 2 weights for 1 style image"),
        "bad config": (["video", clip, "-s", style, "-c", tmp_path / "notes.mp4"], "notes.mp4"),
        "empty folder": (["frames", tmp_path / "nothing", "-s", style, "-o", tmp_path / "f"], "nothing"),
        "bad image": (["image", tmp_path / "broken.png", "-s", style, "-o", tmp_path / "o.png"], "broken.png"),
    }


def test_every_bad_input_gives_one_line_exit_2_and_no_output(tmp_path, style):
    (tmp_path / "nothing").mkdir()
    cases = _bad_inputs(tmp_path, style)
    before = _digest(tmp_path)
    for name, (args, words) in cases.items():
        result = _invoke(*args, *FAST)
        lines = result.output.strip().splitlines()
        assert result.exit_code == 2, (name, result.output)
        assert len(lines) == 1 and words in lines[0] and lines[0].startswith("error:"), (name, result.output)
        assert "Traceback" not in result.output
    assert _digest(tmp_path) == before  # nothing written, nothing changed, no partial output
    assert not (tmp_path / "f").exists()


def test_webm_output_is_vp9_with_opus_audio_and_says_so(tmp_path, style):
    clip = make_video(tmp_path / "clip.mp4", n_frames=2)
    result = _invoke("video", clip.path, "-s", style, *FAST, "-o", tmp_path / "out.webm")
    assert result.exit_code == 0, result.output
    with av.open(str(tmp_path / "out.webm")) as container:
        codecs = [stream.codec_context.name for stream in container.streams]
        times = [float(frame.pts * frame.time_base) for frame in container.decode(video=0)]
    assert codecs == ["vp9", "opus"]
    assert times == pytest.approx([float(p * clip.time_base) for p in clip.pts], abs=1e-3)
    assert "audio: aac cannot be stored in WebM, transcoded to Opus" in result.output


@pytest.mark.parametrize("value", ["big", "8", "1.5"])
def test_a_bad_max_side_is_one_line(tmp_path, style, value):
    content = tmp_path / "in.png"
    make_image(content)
    result = _invoke("image", content, "-s", style, "-o", tmp_path / "out.png", "--max-side", value)
    assert result.exit_code == 2 and result.output.count("\n") == 1, result.output
    assert result.output.startswith("error:") and "max" in result.output and value in result.output
    assert not (tmp_path / "out.png").exists()


def test_debug_shows_the_exception(tmp_path, style):
    result = _invoke("--debug", "video", tmp_path / "nope.mp4", "-s", style)
    assert result.exit_code != 0 and result.exception is not None
    assert "nope.mp4" in str(result.exception)


def test_unknown_choice_is_a_usage_error(tmp_path, style):
    result = _invoke("video", tmp_path / "x.mp4", "-s", style, "--optimizer", "sgd")
    assert result.exit_code == 2 and "sgd" in result.output


def test_speed_flags_reach_the_run(tmp_path, style):
    content = tmp_path / "content.png"
    make_image(content, size=(64, 48))
    stats = tmp_path / "stats.json"
    result = _invoke("image", content, "-s", style, "-o", tmp_path / "out.png", "--device", "cpu", "--max-side", "64",
                     "--iterations", "30", "--stop-tolerance", "1", "--no-coarse-to-fine",
                     "--precision", "fp32", "--stats", stats)
    assert result.exit_code == 0, result.output
    assert json.loads(stats.read_text())["frames"][0]["iterations"] == 15  # stopped at the first check
    coarse = _invoke("image", content, "-s", style, "-o", tmp_path / "coarse.png", "--device", "cpu",
                     "--max-side", "64", "--iterations", "3", "--stop-tolerance", "0", "--coarse-to-fine", "--stats", stats, "--overwrite")
    assert coarse.exit_code == 0, coarse.output
    assert json.loads(stats.read_text())["frames"][0]["iterations"] == 3 + 3  # coarse pass, then full size


def test_an_error_before_the_run_starts_is_exactly_one_line(tmp_path, style):
    result = _invoke("video", tmp_path / "missing.mp4", "-s", style, *FAST)
    assert result.exit_code == 2
    assert result.output == f"error: {tmp_path / 'missing.mp4'}: no such file\n"


@pytest.mark.parametrize("args, words", [
    (["image", "--iterations", "0"], "first_iterations must be positive, got 0"),
    (["image", "--first-iterations", "-3"], "first_iterations must be positive, got -3"),
    (["video", "--iterations", "0"], "iterations must be positive, got 0"),
    (["frames", "--first-iterations", "0"], "first_iterations must be positive, got 0"),
])
def test_zero_or_negative_iteration_counts_are_one_line(tmp_path, style, args, words):
    command, *options = args
    content = {"image": tmp_path / "in.png", "video": tmp_path / "in.mp4", "frames": tmp_path / "in"}[command]
    if command == "image":
        make_image(content)
    elif command == "video":
        make_video(content, n_frames=2)
    else:
        content.mkdir()
        make_image(content / "1.png")
    output = tmp_path / ("out.png" if command == "image" else "out")
    result = _invoke(command, content, "-s", style, "-o", output, "--max-side", "32", "--device", "cpu", *options)
    assert result.exit_code == 2 and result.output.strip().count("\n") == 0, result.output
    assert result.output.startswith("error:") and words in result.output
    assert not output.exists()


@pytest.mark.parametrize("case", ["unknown suffix", "stats is a folder", "stats in a missing folder"])
def test_output_and_stats_problems_are_one_line_before_any_work(tmp_path, style, case, monkeypatch):
    from stylereel.pipeline import sequence

    monkeypatch.setattr(sequence, "load_model", lambda *a, **k: pytest.fail("the model was loaded"))
    content = tmp_path / "in.png"
    make_image(content)
    (tmp_path / "stats").mkdir()
    output, stats, words = {
        "unknown suffix": (tmp_path / "out.xyz", [], "out.xyz: unknown image suffix"),
        "stats is a folder": (tmp_path / "out.png", ["--stats", tmp_path / "stats"], "is a folder"),
        "stats in a missing folder": (tmp_path / "out.png", ["--stats", tmp_path / "no" / "s.json"], "does not exist"),
    }[case]
    result = _invoke("image", content, "-s", style, "-o", output, *FAST, *stats)
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert result.output.count("\n") == 1 and words in result.output
    assert not output.exists()


def _torchvision_weights(path: Path) -> Path:
    """A torchvision-format vgg19 state dict with seeded random weights (not the bundled model)."""
    import torch
    from stylereel.pipeline.model import TORCHVISION_CONV_INDICES, VGG19

    torch.manual_seed(0)
    state = {}
    for index, conv in zip(TORCHVISION_CONV_INDICES, VGG19(last_layer="conv5_4").convs):
        state[f"features.{index}.weight"], state[f"features.{index}.bias"] = conv.weight, conv.bias
    torch.save(state, path)
    return path


def test_weights_pooling_and_crf_change_a_real_run(tmp_path, style):
    content = tmp_path / "in.png"
    make_image(content, size=(48, 32))
    max_pooling = tmp_path / "max.toml"
    max_pooling.write_text('pooling = "max"\n')
    weights = _torchvision_weights(tmp_path / "vgg19.pth")
    images = {}
    for name, extra in {"default": [], "weights": ["--weights", weights], "max": ["-c", max_pooling]}.items():
        result = _invoke("image", content, "-s", style, "-o", tmp_path / f"{name}.png", *FAST, "--quiet", *extra)
        assert result.exit_code == 0, result.output
        images[name] = io.read_image(tmp_path / f"{name}.png").astype(int)
    assert np.abs(images["weights"] - images["default"]).mean() > 1  # another network, another result
    assert np.abs(images["max"] - images["default"]).mean() > 0.1
    clip = make_video(tmp_path / "clip.mp4", n_frames=2, with_audio=False)
    sizes = {}
    for crf in (0, 40):
        output = tmp_path / f"crf{crf}.mp4"
        result = _invoke("video", clip.path, "-s", style, "-o", output, *FAST, "--quiet", "--crf", crf,
                         "--max-frames", 1)
        assert result.exit_code == 0, result.output
        sizes[crf] = output.stat().st_size
    assert sizes[40] < sizes[0]


def test_version_prints_the_installed_packages_version():
    from importlib.metadata import version

    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"stylereel {version('stylereel')}\n"
