"""Interrupted runs keep their finished frames and resume to the same result."""

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import av
import numpy as np
import pytest
import torch
from conftest import interrupt_on_call, make_video
from stylereel.cli.main import sigterm_as_interrupt
from stylereel.pipeline import io, outputs, passes, run, sequence
from stylereel.pipeline.config import Config
from stylereel.pipeline.errors import ConfigError, DeviceError, Interrupted, OutputError

TINY = replace(Config(), max_side=32, first_iterations=3, iterations=2, device="cpu")


@pytest.fixture
def style(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "style.png"
    io.write_image(path, (rng.random((32, 32, 3)) * 255).astype(np.uint8))
    return path


@pytest.fixture
def folder(tmp_path):
    """Four lossless frames of the moving blob as PNGs."""
    frames = make_video(tmp_path / "src.mkv", codec="ffv1", with_audio=False, n_frames=4).frames
    path = tmp_path / "frames"
    path.mkdir()
    for index, frame in enumerate(frames):
        io.write_image(path / f"{index + 1}.png", frame)
    return path



def test_interrupted_frames_run_resumes_to_the_same_frames(tmp_path, style, folder, monkeypatch):
    run.stylize_frames(folder, [style], tmp_path / "whole", TINY)
    interrupt_on_call(monkeypatch, 3)
    with pytest.raises(Interrupted, match=r"after 2 frame\(s\).*--resume"):
        run.stylize_frames(folder, [style], tmp_path / "parts", TINY)
    assert (tmp_path / "parts.parts" / "state.pt").exists()
    # Finished frames wait in the work folder; nothing is under the output's name until all are done.
    assert not (tmp_path / "parts").exists()
    assert sorted(p.name for p in (tmp_path / "parts.parts").glob("*.png")) == ["000000.png", "000001.png"]
    monkeypatch.undo()
    with pytest.raises(OutputError, match="--resume"):
        run.stylize_frames(folder, [style], tmp_path / "parts", TINY)
    with pytest.raises(ConfigError, match="iterations differ"):
        run.stylize_frames(folder, [style], tmp_path / "parts", replace(TINY, iterations=5), resume=True)
    summary = run.stylize_frames(folder, [style], tmp_path / "parts", TINY, resume=True)
    assert [f.index for f in summary.frames] == [0, 1, 2, 3]
    for name in ("1.png", "2.png", "3.png", "4.png"):  # the chain continued exactly where it stopped
        assert np.array_equal(io.read_image(tmp_path / "parts" / name), io.read_image(tmp_path / "whole" / name))
    assert not (tmp_path / "parts.parts").exists()


def test_resume_continues_the_random_state(tmp_path, style, folder, monkeypatch):
    config = replace(TINY, init="random", temporal_weight=0.0)
    run.stylize_frames(folder, [style], tmp_path / "whole", config)
    interrupt_on_call(monkeypatch, 3)
    with pytest.raises(Interrupted):
        run.stylize_frames(folder, [style], tmp_path / "parts", config)
    monkeypatch.undo()
    run.stylize_frames(folder, [style], tmp_path / "parts", config, resume=True)
    for name in ("3.png", "4.png"):  # frames after the resume drew the same noise
        assert np.array_equal(io.read_image(tmp_path / "parts" / name), io.read_image(tmp_path / "whole" / name))


def _video_interrupted_after_three(tmp_path, style, monkeypatch):
    """A 4-frame clip with audio, and the output of a run of it stopped after 3 frames."""
    clip = make_video(tmp_path / "clip.mp4", n_frames=4)
    output = tmp_path / "out.mp4"
    interrupt_on_call(monkeypatch, 4)
    with pytest.raises(Interrupted, match=r"after 3 frame\(s\)"):
        run.stylize_video(clip.path, [style], output, TINY)
    return clip, output


def test_interrupted_video_resumes_complete_ordered_and_with_audio(tmp_path, style, monkeypatch):
    clip, output = _video_interrupted_after_three(tmp_path, style, monkeypatch)
    assert not output.exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert sorted(p.name for p in (tmp_path / "out.mp4.parts").glob("*.png")) == [f"{i:06d}.png" for i in range(3)]
    monkeypatch.undo()
    events = []
    run.stylize_video(clip.path, [style], output, TINY, resume=True, keep_frames=True, callback=events.append)
    assert any(isinstance(e, run.Notice) and "resuming after frame 3" in e.text for e in events)
    with av.open(str(output)) as container:
        times = [float(f.pts * f.time_base) for f in container.decode(video=0)]
        kinds = [s.type for s in container.streams]
    assert times == pytest.approx([float(p * clip.time_base) for p in clip.pts], abs=1e-4)
    assert kinds == ["video", "audio"]
    assert (tmp_path / "out.mp4.parts").exists()  # --keep-frames


def test_interrupt_before_any_frame_leaves_nothing(tmp_path, style, folder, monkeypatch):
    interrupt_on_call(monkeypatch, 1)
    with pytest.raises(Interrupted, match="nothing was written"):
        run.stylize_frames(folder, [style], tmp_path / "out", TINY)
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.parts").exists()


def test_overwrite_discards_a_checkpoint(tmp_path, style, folder, monkeypatch):
    interrupt_on_call(monkeypatch, 2)
    with pytest.raises(Interrupted):
        run.stylize_frames(folder, [style], tmp_path / "out", TINY)
    monkeypatch.undo()
    summary = run.stylize_frames(folder, [style], tmp_path / "out", TINY, overwrite=True)
    assert summary.n_frames == 4 and not (tmp_path / "out.parts").exists()


def test_sigterm_becomes_a_keyboard_interrupt_and_the_previous_handler_comes_back():
    def mine(signum, frame):
        raise AssertionError("the previous handler ran inside the block")

    previous = signal.signal(signal.SIGTERM, mine)
    try:
        with pytest.raises(KeyboardInterrupt):
            with sigterm_as_interrupt():
                assert signal.getsignal(signal.SIGTERM) is not mine
                os.kill(os.getpid(), signal.SIGTERM)
        assert signal.getsignal(signal.SIGTERM) is mine  # restored, not left as the interrupting one
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupted_after_two(tmp_path, style, folder, monkeypatch, config=TINY):
    interrupt_on_call(monkeypatch, 3)
    with pytest.raises(Interrupted, match=r"after 2 frame\(s\)"):
        run.stylize_frames(folder, [style], tmp_path / "out", config)
    monkeypatch.undo()


def test_frames_resume_accepts_a_changed_max_frames(tmp_path, style, folder, monkeypatch):
    _interrupted_after_two(tmp_path, style, folder, monkeypatch, replace(TINY, max_frames=3))
    summary = run.stylize_frames(folder, [style], tmp_path / "out", replace(TINY, max_frames=4), resume=True)
    assert [f.index for f in summary.frames] == [0, 1, 2, 3]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["1.png", "2.png", "3.png", "4.png"]


def test_resume_is_refused_after_an_input_file_changed(tmp_path, style, folder, monkeypatch):
    _interrupted_after_two(tmp_path, style, folder, monkeypatch)
    frame = folder / "3.png"
    io.write_image(frame, 255 - io.read_image(frame))
    with pytest.raises(ConfigError, match=r"input file .*3\.png differ"):
        run.stylize_frames(folder, [style], tmp_path / "out", TINY, resume=True)
    assert not (tmp_path / "out").exists() and (tmp_path / "out.parts" / "state.pt").exists()


def test_the_device_used_is_recorded_and_a_resume_elsewhere_is_said_not_refused(tmp_path, style, folder, monkeypatch):
    _interrupted_after_two(tmp_path, style, folder, monkeypatch)
    settings_path = tmp_path / "out.parts" / "settings.json"
    settings = json.loads(settings_path.read_text())
    assert settings["device"] == "cpu"  # what ran, not "auto"
    settings_path.write_text(json.dumps(settings | {"device": "cuda"}))  # as if it had run on a GPU
    events = []
    summary = run.stylize_frames(folder, [style], tmp_path / "out", replace(TINY, device="auto"), resume=True,
                                 callback=events.append)
    assert summary.n_frames == 4
    assert any(isinstance(e, run.Notice) and "used the cuda device" in e.text and "uses cpu" in e.text for e in events)


def test_out_of_memory_names_the_size_and_a_smaller_max_side(tmp_path, style, folder, monkeypatch):
    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(sequence, "stylize_frame", out_of_memory)
    with pytest.raises(DeviceError, match=r"at 32x21; try a smaller --max-side, e.g. --max-side 21"):
        run.stylize_frames(folder, [style], tmp_path / "out", TINY)
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.parts").exists()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_real_signal_keeps_the_frames_and_resume_finishes(tmp_path, style, signum):
    clip = make_video(tmp_path / "clip.mp4", n_frames=6)
    output = tmp_path / "out.mp4"
    command = [sys.executable, "-m", "stylereel.cli", "video", str(clip.path), "-s", str(style), "-o", str(output),
               "--max-side", "32", "--first-iterations", "2", "--iterations", "40", "--no-settle", "--device", "cpu",
               "--quiet"]  # no settle: later frames run all their iterations, so the signal lands mid-run
    # A shell that runs pytest in the background starts it with SIGINT ignored, and a child inherits
    # that: give the child the default disposition, so Python installs its Ctrl-C handler.
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    state = tmp_path / "out.mp4.parts" / "state.pt"
    deadline = time.monotonic() + 300  # a loaded machine takes long to import torch
    while not state.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signum)
    message, _ = process.communicate(timeout=60)
    assert process.returncode == 130, message
    assert message.startswith("interrupted:") and "--resume" in message and "Traceback" not in message
    assert not output.exists()
    finished = subprocess.run([*command, "--resume"], capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr
    with av.open(str(output)) as container:
        assert len([f for f in container.decode(video=0)]) == 6


def _decoded_times(path) -> list[float]:
    with av.open(str(path)) as container:
        return [float(frame.pts * frame.time_base) for frame in container.decode(video=0)]


def test_video_resume_with_a_lower_max_frames_ends_within_the_frames_done(tmp_path, style, monkeypatch):
    clip, output = _video_interrupted_after_three(tmp_path, style, monkeypatch)
    monkeypatch.undo()
    summary = run.stylize_video(clip.path, [style], output, replace(TINY, max_frames=2), resume=True)
    assert [record.index for record in summary.frames] == [0, 1] and summary.n_frames == 2
    assert _decoded_times(output) == pytest.approx([float(p * clip.time_base) for p in clip.pts[:2]], abs=1e-4)


def test_video_resume_with_a_higher_max_frames_gives_the_uninterrupted_frames(tmp_path, style, monkeypatch):
    clip = make_video(tmp_path / "clip.mkv", codec="ffv1", with_audio=False, n_frames=4)
    run.stylize_video(clip.path, [style], tmp_path / "whole.mkv", TINY, keep_frames=True)
    output = tmp_path / "out.mkv"
    interrupt_on_call(monkeypatch, 3)
    with pytest.raises(Interrupted, match=r"after 2 frame\(s\)"):
        run.stylize_video(clip.path, [style], output, replace(TINY, max_frames=3))
    monkeypatch.undo()
    summary = run.stylize_video(clip.path, [style], output, TINY, resume=True, keep_frames=True)
    assert summary.n_frames == 4 and len(_decoded_times(output)) == 4
    for index in range(4):
        name = f"{index:06d}.png"
        assert np.array_equal(io.read_image(tmp_path / "out.mkv.parts" / name),
                              io.read_image(tmp_path / "whole.mkv.parts" / name))


@pytest.mark.parametrize("max_frames", [2, None])
def test_two_pass_resume_with_another_max_frames_is_refused_by_name(tmp_path, style, monkeypatch, max_frames):
    clip = make_video(tmp_path / "clip.mkv", codec="ffv1", with_audio=False, n_frames=4)
    output = tmp_path / "out.mkv"
    config = replace(TINY, passes=2, max_frames=3)
    def interrupt(*args, **kwargs):  # the second pass's first frame, after the first pass was saved
        raise KeyboardInterrupt

    monkeypatch.setattr(passes, "stylize_frame", interrupt)
    with pytest.raises(Interrupted, match="pass 1 of a multi-pass run"):
        run.stylize_video(clip.path, [style], output, config)
    monkeypatch.undo()
    with pytest.raises(ConfigError, match=r"max_frames differ"):
        run.stylize_video(clip.path, [style], output, replace(config, max_frames=max_frames), resume=True)
    assert not output.exists()
    summary = run.stylize_video(clip.path, [style], output, config, resume=True)
    assert summary.n_frames == 3 and len(_decoded_times(output)) == 3


def test_sigint_while_collecting_the_frames_is_one_line_exit_130_and_keeps_the_work_folder(tmp_path, style, folder,
                                                                                            monkeypatch):
    from stylereel.cli.main import app
    from typer.testing import CliRunner

    collect = outputs.collect_frames

    def interrupted(checkpoint, targets, *, keep):  # one frame moved into place, then Ctrl-C
        collect(checkpoint, targets[:1], keep=keep)
        os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(outputs, "collect_frames", interrupted)
    output = tmp_path / "out"
    arguments = ["frames", folder, "-s", style, "-o", output, "--max-side", 32, "--first-iterations", 3,
                 "--iterations", 2, "--device", "cpu", "-q"]
    result = CliRunner().invoke(app, [str(argument) for argument in arguments])
    assert result.exit_code == 130, result.output
    assert result.output.strip().splitlines() == [
        f"interrupted: interrupted while moving the finished frames into {output}; the finished frames are kept "
        f"in {output}.parts, run the same command with --resume to finish"]
    assert (tmp_path / "out.parts" / "state.pt").exists()
    monkeypatch.undo()
    result = CliRunner().invoke(app, [str(argument) for argument in [*arguments, "--resume"]])
    assert result.exit_code == 0, result.output
    assert sorted(path.name for path in output.iterdir()) == ["1.png", "2.png", "3.png", "4.png"]
