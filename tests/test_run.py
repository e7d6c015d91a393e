"""End-to-end runs of the library on tiny generated media (real VGG weights, a few iterations)."""

import json
from dataclasses import replace
from importlib.metadata import version
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from conftest import blob_frames, make_image, make_video
from stylereel.pipeline import __version__, io, outputs, run, sequence
from stylereel.pipeline.config import Config, Init
from stylereel.pipeline.errors import InputError, OutputError
from stylereel.pipeline.model import load_vgg19
from stylereel.pipeline.optimize import Targets, content_targets, frame_losses, style_grams

# settle off: these tests count the iterations of later frames; tests/test_temporal.py covers settle.
TINY = replace(Config(), max_side=32, first_iterations=4, iterations=2, device="cpu", settle=False)



def _decode(path: Path) -> tuple[list[np.ndarray], list[float], list[str]]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [(f.to_ndarray(format="rgb24"), float(f.pts * f.time_base)) for f in container.decode(stream)]
        kinds = [s.type for s in container.streams]
    return [f for f, _ in frames], [t for _, t in frames], kinds


def test_video_keeps_frames_size_timing_and_audio_and_lowers_style_loss(tmp_path, style):
    clip = make_video(tmp_path / "clip.mp4", size=(64, 48), n_frames=4)
    output = tmp_path / "out.mp4"
    events = []
    # 48 px, not 32: at 32x24 conv5_1 sees 2x1 positions and 15 L-BFGS iterations barely move the style loss.
    config = replace(TINY, max_side=48, first_iterations=15, coarse_to_fine=False)
    summary = run.stylize_video(clip.path, [style], output, config, stats=tmp_path / "stats.json", callback=events.append)
    frames, times, kinds = _decode(output)
    assert summary.n_frames == len(frames) == 4
    assert frames[0].shape == (36, 48, 3)
    assert times == pytest.approx([float(p * clip.time_base) for p in clip.pts], abs=1e-4)
    assert kinds == ["video", "audio"]
    assert any(isinstance(e, run.Notice) and "copied" in e.text for e in events)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp files left
    # The output's style loss (all five layers, the default weights) is well below the content's.
    model = load_vgg19()
    style_image = io.to_tensor(io.read_image(style, max_side=48))
    grams = style_grams(model, [style_image], (), config)
    content = io.to_tensor(next(iter(io.read_video(clip.path, max_side=48))).image)
    only_style = replace(config, content_weight=0.0, tv_weight=0.0)
    loss = lambda image: frame_losses(model, image, Targets(content_targets(model, image, config), grams), only_style)["style"].item()
    assert loss(io.to_tensor(frames[0])) < 0.7 * loss(content)  # 0.41 measured; any real drop passes
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["n_frames"] == 4 and stats["device"] == "cpu" and (stats["width"], stats["height"]) == (48, 36)
    assert [f["iterations"] for f in stats["frames"]] == [15, 2, 2, 2]
    assert {"index", "seconds", "losses"} <= set(stats["frames"][0]) and "style" in stats["frames"][0]["losses"]


def test_variable_frame_rate_timestamps_survive(tmp_path, style):
    clip = make_video(tmp_path / "vfr.mkv", pts=[0, 40, 50, 130], time_base=Fraction(1, 1000), rate=None,
                      with_audio=False)
    output = tmp_path / "vfr.mp4"
    run.stylize_video(clip.path, [style], output, TINY)
    _, times, kinds = _decode(output)
    assert times == pytest.approx([0.0, 0.04, 0.05, 0.13], abs=1e-3)
    assert kinds == ["video"]


def _record_inits(monkeypatch) -> list:
    """Wrap sequence.stylize_frame to keep (init, result) of every call."""
    calls = []
    original = sequence.stylize_frame

    def spy(model, init, targets, **kwargs):
        result = original(model, init, targets, **kwargs)
        calls.append((init.clone(), result, targets))
        return result

    monkeypatch.setattr(sequence, "stylize_frame", spy)
    return calls


def test_second_frame_starts_from_the_first_result(tmp_path, style, monkeypatch):
    calls = _record_inits(monkeypatch)
    folder = tmp_path / "frames"
    folder.mkdir()
    for index, array in enumerate(make_video(tmp_path / "c.mkv", codec="ffv1", with_audio=False, n_frames=3).frames):
        io.write_image(folder / f"{index}.png", array)
    run.stylize_frames(folder, [style], tmp_path / "out", replace(TINY, init=Init.prev, temporal_weight=0.0))
    assert len(calls) == 3
    assert torch.equal(calls[1][0], calls[0][1].image)
    assert torch.equal(calls[2][0], calls[1][1].image)
    assert calls[1][2].warped is None  # temporal weight 0: no temporal target


def test_prev_warped_start_and_temporal_target_come_from_the_flow(tmp_path, style, monkeypatch):
    calls = _record_inits(monkeypatch)
    clip = make_video(tmp_path / "c.mkv", codec="ffv1", with_audio=False, n_frames=2, size=(64, 48))
    run.stylize_video(clip.path, [style], tmp_path / "o.mp4", TINY)
    init, _, targets = calls[1]
    assert torch.equal(init, targets.warped)
    assert targets.mask.shape == (1, 1, 24, 32)
    assert not torch.equal(init, calls[0][1].image)  # the blob moved, so the warp changed something


def test_scene_cut_restarts_from_the_content(tmp_path, style, monkeypatch):
    calls = _record_inits(monkeypatch)
    folder = tmp_path / "cut"
    folder.mkdir()
    rng = np.random.default_rng(0)
    smooth = np.repeat(np.linspace(0, 255, 32, dtype=np.uint8)[None, :, None], 24, 0).repeat(3, 2)
    io.write_image(folder / "1.png", smooth)
    io.write_image(folder / "2.png", smooth)
    io.write_image(folder / "3.png", (rng.random((24, 32, 3)) * 255).astype(np.uint8))
    events = []
    summary = run.stylize_frames(folder, [style], tmp_path / "out", TINY, callback=events.append)
    assert [f.scene_cut for f in summary.frames] == [False, False, True]
    assert [f.iterations for f in summary.frames] == [4, 2, 4]
    assert calls[2][2].warped is None
    assert any(isinstance(e, run.Notice) and "scene cut" in e.text for e in events)


def test_frames_in_natural_order_named_like_inputs(tmp_path, style):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("10.png", "2.jpg", "1.png"):
        make_image(folder / name, size=(32, 24))
    (folder / "notes.txt").write_text("not a frame")
    events = []
    run.stylize_frames(folder, [style], tmp_path / "out", TINY, callback=events.append)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["1.png", "10.png", "2.png"]
    assert any(isinstance(e, run.Notice) and "notes.txt" in e.text for e in events)


def test_image_and_several_styles(tmp_path, style):
    content = tmp_path / "content.png"
    make_image(content, size=(40, 30))
    second = tmp_path / "second.jpg"
    make_image(second, size=(40, 40))
    output = tmp_path / "out.jpg"
    summary = run.stylize_image(content, [style, second], output, replace(TINY, style_blend=(2.0, 1.0)))
    assert summary.n_frames == 1
    assert io.read_image(output).shape == (24, 32, 3)


def test_existing_output_is_refused_before_any_work(tmp_path, style, monkeypatch):
    monkeypatch.setattr(run, "prepare_session", lambda *a, **k: pytest.fail("work started"))
    content = tmp_path / "content.png"
    make_image(content)
    output = tmp_path / "out.png"
    output.write_bytes(b"keep me")
    with pytest.raises(OutputError, match="out.png: already exists"):
        run.stylize_image(content, [style], output, TINY)
    assert output.read_bytes() == b"keep me"
    with pytest.raises(OutputError, match="output folder does not exist"):
        run.stylize_image(content, [style], tmp_path / "missing" / "out.png", TINY)
    with pytest.raises(OutputError, match="is also an input"):
        run.stylize_image(content, [style], content, TINY, overwrite=True)


def test_unreadable_style_names_the_file(tmp_path, style):
    content = tmp_path / "content.png"
    make_image(content)
    bad = tmp_path / "bad.png"
    bad.write_text("hello")
    with pytest.raises(InputError, match="bad.png"):
        run.stylize_image(content, [bad], tmp_path / "out.png", TINY)
    assert not (tmp_path / "out.png").exists()


def test_select_device_auto_falls_back_to_cpu():
    expected = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    assert run.select_device("auto").type == expected
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="no such device"):
            run.select_device("cuda")


def test_same_seed_gives_the_same_video_bytes(tmp_path, style):
    clip = make_video(tmp_path / "clip.mp4", n_frames=2, with_audio=False)
    first, second = tmp_path / "a.mp4", tmp_path / "b.mp4"
    run.stylize_video(clip.path, [style], first, TINY)
    run.stylize_video(clip.path, [style], second, TINY)
    assert first.read_bytes() == second.read_bytes()


def test_first_frame_of_a_shot_goes_coarse_to_fine(tmp_path, style, monkeypatch):
    calls = _record_inits(monkeypatch)
    clip = make_video(tmp_path / "c.mkv", codec="ffv1", with_audio=False, n_frames=2, size=(64, 48))
    config = replace(TINY, max_side=64, stop_tolerance=0.0, coarse_to_fine=True)
    summary = run.stylize_video(clip.path, [style], tmp_path / "o.mp4", config)
    assert [init.shape[-2:] for init, _, _ in calls] == [(24, 32), (48, 64), (48, 64)]
    upsampled = torch.nn.functional.interpolate(calls[0][1].image, size=(48, 64), mode="bilinear", align_corners=False)
    assert torch.equal(calls[1][0], upsampled)  # the coarse result starts the full-size pass
    assert [frame.iterations for frame in summary.frames] == [4 + 4, 2]
    plain = run.stylize_video(clip.path, [style], tmp_path / "p.mp4", replace(config, coarse_to_fine=False))
    assert [frame.iterations for frame in plain.frames] == [4, 2]


def test_ladder_climbs_each_rung_from_the_one_below_with_grams_once_per_rung(tmp_path, style, monkeypatch):
    calls = _record_inits(monkeypatch)
    grams_calls = []
    original_grams = sequence.style_grams

    def count_grams(model, styles, blend, config):
        grams_calls.append(tuple(styles[0].shape[-2:]))
        return original_grams(model, styles, blend, config)

    monkeypatch.setattr(sequence, "style_grams", count_grams)
    clip = make_video(tmp_path / "c.mkv", codec="ffv1", with_audio=False, n_frames=2, size=(128, 96))
    # coarse_side 32: 128 px climbs 32, 64, 128; cut_threshold 0 makes frame 2 start a shot too.
    config = replace(TINY, max_side=128, coarse_side=32, stop_tolerance=0.0, first_iterations=3, rung_iterations=2,
                     cut_threshold=0.0)
    summary = run.stylize_video(clip.path, [style], tmp_path / "o.mp4", config)
    rungs = [(24, 32), (48, 64), (96, 128)]
    assert [init.shape[-2:] for init, _, _ in calls] == rungs * 2
    for below, above in zip(calls[:2], calls[1:3]):
        upsampled = torch.nn.functional.interpolate(below[1].image, size=above[0].shape[-2:], mode="bilinear",
                                                    align_corners=False)
        assert torch.equal(above[0], upsampled)  # each rung starts from the result of the one below
    assert [frame.scene_cut for frame in summary.frames] == [False, True]
    assert [frame.iterations for frame in summary.frames] == [3 + 2 + 2] * 2  # rungs above the first: rung_iterations
    # One set of Grams per rung for the whole run, each from the style scaled like the rung's frame.
    assert len(grams_calls) == 3 and len({shape for shape in grams_calls}) == 3
    assert calls[0][2].grams is not calls[2][2].grams and calls[0][2].grams is calls[3][2].grams


def test_max_side_source_keeps_the_inputs_size(tmp_path, style):
    clip = make_video(tmp_path / "clip.mp4", size=(96, 64), n_frames=2)
    config = replace(TINY, max_side="source", first_iterations=2)
    summary = run.stylize_video(clip.path, [style], tmp_path / "out.mp4", config)
    frames, _, kinds = _decode(tmp_path / "out.mp4")
    assert (summary.width, summary.height) == (96, 64) and [f.shape for f in frames] == [(64, 96, 3)] * 2
    assert kinds == ["video", "audio"]


def test_stats_report_iterations_run_and_time_per_stage(tmp_path, style):
    folder = tmp_path / "still"
    folder.mkdir()
    for index in range(3):  # a still shot: later frames start where the first ended
        make_image(folder / f"{index}.png", size=(32, 24))
    stats = tmp_path / "stats.json"
    config = replace(TINY, first_iterations=20, iterations=40, stop_tolerance=0.5)
    run.stylize_frames(folder, [style], tmp_path / "out", config, stats=stats)
    data = json.loads(stats.read_text())
    iterations = [frame["iterations"] for frame in data["frames"]]
    assert all(15 <= n < 40 for n in iterations[1:]), iterations  # stopped early, at a reading
    assert set(data["phase_seconds"]) == {"decode", "flow", "optimize", "encode", "checkpoint"}
    assert data["phase_seconds"]["optimize"] > 0 and data["frames"][1]["flow_seconds"] > 0
    assert data["version"] == __version__


def test_stats_name_the_installed_version_of_stylereel(tmp_path):
    path = tmp_path / "stats.json"
    outputs.write_stats(path, run.Summary(tmp_path / "out.mp4", 0, 32, 24, "cpu", 1.0))
    data = json.loads(path.read_text())
    assert data["version"] == __version__ == version("stylereel")
    assert list(data)[:2] == ["version", "output"]  # first, so a reader can tell which stylereel wrote the rest


# --- everything checkable without the model is checked before it loads ------------------------------


def _folder(path: Path, frames: list[np.ndarray]) -> Path:
    path.mkdir()
    for index, frame in enumerate(frames):
        io.write_image(path / f"{index + 1}.png", frame)
    return path


def _texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Smooth colour texture (blurred noise, 20..220) that optical flow can track."""
    import cv2
    noise = np.random.default_rng(seed).random((h, w, 3)).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), 1.5)
    smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min())
    return (smooth * 200 + 20).astype(np.uint8)


@pytest.fixture
def no_model(monkeypatch):
    """Fail the test if a run gets as far as loading the model."""
    monkeypatch.setattr(sequence, "load_model", lambda *a, **k: pytest.fail("the model was loaded"))


@pytest.mark.parametrize("command", ["video", "frames", "image"])
@pytest.mark.parametrize("where", ["a folder", "in a missing folder"])
def test_stats_that_cannot_be_written_is_refused_before_any_work(tmp_path, style, no_model, monkeypatch, command, where):
    monkeypatch.setattr(run, "prepare_session", lambda *a, **k: pytest.fail("work started"))
    stats = {"a folder": tmp_path / "stats", "in a missing folder": tmp_path / "missing" / "stats.json"}[where]
    if where == "a folder":
        stats.mkdir()
    words = "is a folder" if where == "a folder" else "output folder does not exist"
    if command == "video":
        content, output, entry = make_video(tmp_path / "clip.mp4", n_frames=2).path, tmp_path / "out.mp4", run.stylize_video
    elif command == "frames":
        content, output, entry = _folder(tmp_path / "in", blob_frames((32, 24), 2)), tmp_path / "out", run.stylize_frames
    else:
        content, output, entry = tmp_path / "in.png", tmp_path / "out.png", run.stylize_image
        make_image(content)
    with pytest.raises(OutputError, match=words):
        entry(content, [style], output, TINY, stats=stats)
    assert not output.exists() and not Path(str(output) + ".parts").exists()


def test_unknown_image_suffix_is_refused_before_any_work(tmp_path, style, no_model):
    content = tmp_path / "in.png"
    make_image(content)
    with pytest.raises(OutputError, match=r"out.xyz: unknown image suffix \('.xyz'\)"):
        run.stylize_image(content, [style], tmp_path / "out.xyz", TINY)
    assert not (tmp_path / "out.xyz").exists()


@pytest.mark.parametrize("how", ["narrow style", "small --style-scale"])
def test_style_too_small_for_vgg_at_its_size_is_refused_before_the_model(tmp_path, no_model, how):
    content = tmp_path / "in.png"
    make_image(content, size=(48, 32))
    style = tmp_path / "style.png"
    if how == "narrow style":  # 60x10 at --max-side 48: 48x8
        io.write_image(style, _texture(10, 60))
        config = replace(TINY, max_side=48)
    else:  # 64x24 with the style's long side half the content's (16 px): 16x6
        io.write_image(style, _texture(24, 64))
        config = replace(TINY, style_scale=0.5)
    with pytest.raises(InputError, match=r"style.png: .*VGG-19 needs at least 16 px on the short side"):
        run.stylize_image(content, [style], tmp_path / "out.png", config)
    folder = _folder(tmp_path / "frames", [io.read_image(content)] * 2)
    with pytest.raises(InputError, match="style.png"):
        run.stylize_frames(folder, [style], tmp_path / "out", config)
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.parts").exists()


def test_a_damaged_frame_fails_the_folder_before_the_first_optimisation(tmp_path, style, no_model):
    folder = _folder(tmp_path / "in", blob_frames((32, 24), 5))
    damaged = folder / "3.png"
    damaged.write_bytes(damaged.read_bytes()[:60])  # truncated
    events = []
    with pytest.raises(InputError, match="3.png"):
        run.stylize_frames(folder, [style], tmp_path / "out", TINY, callback=events.append)
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.parts").exists()
    assert [e.done for e in events if isinstance(e, run.FramesChecked)] == [1, 2]  # progress while checking


def test_frames_collect_in_the_work_folder_and_move_in_when_complete(tmp_path, style, monkeypatch):
    folder = _folder(tmp_path / "in", blob_frames((32, 24), 3))
    seen = []
    original = sequence.stylize_frame

    def spy(*args, **kwargs):  # what is under the output's name while frames are being stylized
        seen.append((tmp_path / "out").exists())
        return original(*args, **kwargs)

    monkeypatch.setattr(sequence, "stylize_frame", spy)
    run.stylize_frames(folder, [style], tmp_path / "out", replace(TINY, coarse_to_fine=False))
    assert seen == [False, False, False]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["1.png", "2.png", "3.png"]
    assert not (tmp_path / "out.parts").exists()
    monkeypatch.undo()
    # --stats may go into the output folder the run creates.
    run.stylize_frames(folder, [style], tmp_path / "new", replace(TINY, max_frames=1), stats=tmp_path / "new" / "s.json")
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == ["1.png", "s.json"]
    run.stylize_frames(folder, [style], tmp_path / "kept", replace(TINY, max_frames=1), keep_frames=True)
    assert [p.name for p in (tmp_path / "kept").iterdir()] == ["1.png"]
    assert (tmp_path / "kept.parts" / "000000.png").read_bytes() == (tmp_path / "kept" / "1.png").read_bytes()


def test_stats_write_failure_is_one_error_and_leaves_no_work_folder(tmp_path, style, monkeypatch):
    import errno
    import os

    folder = _folder(tmp_path / "in", blob_frames((32, 24), 2))
    stats = tmp_path / "stats.json"
    real_replace = os.replace

    def full_disk(source, target):
        if Path(target) == stats:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OutputError, match=r"stats.json: cannot write \(No space left on device\)"):
        run.stylize_frames(folder, [style], tmp_path / "out", TINY, stats=stats)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["1.png", "2.png"]  # the output is complete
    assert not (tmp_path / "out.parts").exists() and not stats.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_cuda_runs_choose_deterministic_convolutions(monkeypatch):
    class Stub:  # stands in for the VGG, so the CUDA set-up runs on a machine without CUDA
        def to(self, device):
            return self

        def set_execution(self, **kwargs):
            return self

    monkeypatch.setattr(sequence, "load_vgg19", lambda **kwargs: Stub())
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", True)
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", False)
    sequence.load_model(TINY, torch.device("cuda"))
    assert torch.backends.cudnn.benchmark is False and torch.backends.cudnn.deterministic is True


# --- behaviours the README and docs/ document, each in a real run ----------------------------------------------


def test_init_random_depends_on_the_seed(tmp_path, style):
    folder = _folder(tmp_path / "in", [_texture(24, 32)] * 2)
    config = replace(TINY, init=Init.random, temporal_weight=0.0, coarse_to_fine=False)
    second = {}
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        run.stylize_frames(folder, [style], tmp_path / name, replace(config, seed=seed))
        second[name] = io.read_image(tmp_path / name / "2.png")
    assert np.array_equal(second["a"], second["b"])  # same seed, same noise, same frame
    assert np.abs(second["a"].astype(int) - second["c"]).mean() > 1  # another seed, other noise


def test_prev_warped_start_lands_where_the_content_moved(tmp_path, style, monkeypatch):
    calls = _record_inits(monkeypatch)
    wide, shift = _texture(32, 56), 4
    frames = [np.ascontiguousarray(wide[:, 8 - shift * t: 56 - shift * t]) for t in range(2)]  # moves right
    run.stylize_frames(_folder(tmp_path / "in", frames), [style], tmp_path / "out",
                       replace(TINY, max_side=48, coarse_to_fine=False))
    previous, init = calls[0][1].image, calls[1][0]
    inner = (slice(None), slice(None), slice(6, -6))
    right = (init[..., shift + 8: -8] - previous[..., 8: -8 - shift])[inner].abs().mean()  # init(x) = prev(x - 4)
    left = (init[..., 8: -8 - shift] - previous[..., shift + 8: -8])[inner].abs().mean()  # init(x) = prev(x + 4)
    assert right < 0.3 * left, (right, left)


def test_init_content_starts_each_later_frame_from_its_content(tmp_path, style, monkeypatch):
    calls = _record_inits(monkeypatch)
    frames = blob_frames((32, 24), 2)
    run.stylize_frames(_folder(tmp_path / "in", frames), [style], tmp_path / "out",
                       replace(TINY, init=Init.content, coarse_to_fine=False))
    assert torch.equal(calls[1][0], io.to_tensor(frames[1]))
    assert calls[1][2].warped is not None  # the temporal target is kept
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["1.png", "2.png"]


def test_flow_none_computes_no_flow_and_trusts_every_unchanged_pixel(tmp_path, style, monkeypatch):
    calls = _record_inits(monkeypatch)
    monkeypatch.setattr(sequence.flow, "optical_flow", lambda *a, **k: pytest.fail("flow was computed"))
    run.stylize_frames(_folder(tmp_path / "in", blob_frames((32, 24), 2)), [style], tmp_path / "out",
                       replace(TINY, flow="none", coarse_to_fine=False))
    _, _, targets = calls[1]
    torch.testing.assert_close(calls[1][0], calls[0][1].image)  # zero flow: the previous result as it is
    frames = blob_frames((32, 24), 2)
    changed = torch.from_numpy(np.abs(frames[1].astype(int) - frames[0]).max(-1) > 0.1 * 255)  # the photometric check
    assert torch.equal(targets.mask[0, 0], (~changed).float())


def test_cut_threshold_1_disables_scene_cuts(tmp_path, style):
    rng = np.random.default_rng(0)
    smooth = np.repeat(np.linspace(0, 255, 32, dtype=np.uint8)[None, :, None], 24, 0).repeat(3, 2)
    frames = [smooth, smooth, (rng.random((24, 32, 3)) * 255).astype(np.uint8)]
    summary = run.stylize_frames(_folder(tmp_path / "in", frames), [style], tmp_path / "out",
                                 replace(TINY, cut_threshold=1.0))
    assert [f.scene_cut for f in summary.frames] == [False, False, False]
    assert [f.iterations for f in summary.frames] == [4, 2, 2]


def test_prefetch_0_runs_in_line_and_gives_the_same_frames(tmp_path, style, monkeypatch):
    import threading

    folder = _folder(tmp_path / "in", blob_frames((32, 24), 3))
    original, threads = sequence.stylize_frame, []

    def spy(*args, **kwargs):  # which threads run while a frame is optimised
        threads.append(any(t.name == "stylereel-prefetch" for t in threading.enumerate()))
        return original(*args, **kwargs)

    monkeypatch.setattr(sequence, "stylize_frame", spy)
    run.stylize_frames(folder, [style], tmp_path / "ahead", replace(TINY, prefetch=2))
    assert any(threads)
    threads.clear()
    run.stylize_frames(folder, [style], tmp_path / "inline", replace(TINY, prefetch=0))
    assert threads and not any(threads)
    for name in ("1.png", "2.png", "3.png"):
        assert np.array_equal(io.read_image(tmp_path / "ahead" / name), io.read_image(tmp_path / "inline" / name))


def test_style_scale_sets_the_size_the_style_is_used_at(tmp_path, style, monkeypatch):
    read = []
    original = io.read_image

    def spy(path, *, max_side=None):
        image = original(path, max_side=max_side)
        if path == style:
            read.append(image.shape[:2])
        return image

    monkeypatch.setattr(io, "read_image", spy)
    content = tmp_path / "in.png"
    make_image(content, size=(48, 32))
    run.stylize_image(content, [style], tmp_path / "out.png", replace(TINY, style_scale=2.0, max_side=64))
    # Content at 64 px: the style's long side is 128 px, and 64 px for the ladder's 32 px rung (the style is 48x48).
    assert read == [(128, 128), (64, 64)]


def _capped_notices(events: list) -> list[str]:
    return [e.text for e in events if isinstance(e, run.Notice) and "whole budget" in e.text]


def test_a_first_frame_that_ran_its_whole_budget_is_said_once_when_later_frames_follow(tmp_path, style):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("1.png", "2.png", "3.png"):
        make_image(folder / name, size=(32, 24))
    capped, settled, single = [], [], []
    run.stylize_frames(folder, [style], tmp_path / "a", TINY, callback=capped.append)  # 4 iterations, tolerance 1e-3
    loose = replace(TINY, first_iterations=60, stop_tolerance=0.5)  # stops after its first window
    summary = run.stylize_frames(folder, [style], tmp_path / "b", loose, callback=settled.append)
    run.stylize_image(folder / "1.png", [style], tmp_path / "c.png", TINY, callback=single.append)
    notices = _capped_notices(capped)
    assert len(notices) == 1 and "frame 1:" in notices[0] and "--first-iterations 4" in notices[0]
    assert summary.frames[0].iterations < 60 and _capped_notices(settled) == []
    assert _capped_notices(single) == []  # no later frame to drift
