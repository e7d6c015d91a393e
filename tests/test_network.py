"""The network engine (`--engine network`): the network, its model files, training and a whole run."""

import copy
import json
from dataclasses import replace

import av
import numpy as np
import pytest
import torch
from conftest import make_shots_clip, shot_frames, write_bad_model
from stylereel.cli.main import app
from stylereel.pipeline import flow, io, run, sequence, train
from stylereel.pipeline.config import Config
from stylereel.pipeline.errors import InputError
from stylereel.pipeline.evaluate import evaluate_video
from stylereel.pipeline.losses import temporal_loss
from stylereel.pipeline.network import TransformNet, load_network, save_network
from stylereel.pipeline.optimize import Targets, content_targets, frame_losses
from stylereel.pipeline.sequence import prepare_session
from typer.testing import CliRunner

TINY = Config(max_side=32, device="cpu", engine="network", train_iterations=12, train_crop=32, network_width=4)


@pytest.mark.parametrize("size", [(32, 32), (27, 33), (17, 50)])
def test_any_frame_size_comes_out_at_its_own_size_in_zero_one(size):
    torch.manual_seed(0)
    image = torch.rand(2, 3, *size)
    with torch.no_grad():
        painted = TransformNet(width=4, n_residual=1)(image)
    assert painted.shape == image.shape and 0 <= float(painted.min()) and float(painted.max()) <= 1


def test_no_training_pair_crosses_a_cut():
    assert train.training_pairs(7, [0, 3, 5]) == [0, 1, 3, 5]
    assert train.training_pairs(1, [0]) == []


def _loss_on(network, session, frames) -> float:
    """The losses the network is trained on, over every frame (no temporal term), without training."""
    contents = torch.cat([io.to_tensor(frame) for frame in frames])
    with torch.no_grad():
        targets = Targets(content_targets(session.model, contents, session.config), session.grams)
        return float(frame_losses(session.model, network(contents), targets, session.config)["total"])


@pytest.mark.parametrize("size, whole_frame_style", [((32, 32), False), ((64, 40), True)])
def test_a_tiny_network_learns_a_4_frame_clip(style, size, whole_frame_style):
    frames = shot_frames((4,), size)  # 32-px crops: the whole frame, or with whole-frame style a part
    config = replace(TINY, max_side=max(size), train_iterations=40, train_whole_frame_style=whole_frame_style)
    session = prepare_session(config, [style], size=size[::-1])
    torch.manual_seed(0)
    untrained = TransformNet(width=4)
    before = _loss_on(untrained, session, frames)
    steps = []
    trained = train.train_network(session, frames, [0], steps=40, emit=steps.append, network=copy.deepcopy(untrained))
    assert [step.step for step in steps] == list(range(1, 41)) and steps[-1].total == 40
    assert _loss_on(trained, session, frames) < 0.5 * before


def test_whole_frame_style_samples_the_first_whole_frame_only_where_a_crop_is_smaller():
    frames = shot_frames((2,), (64, 40))
    whole = replace(TINY, train_whole_frame_style=True)
    generator = torch.Generator().manual_seed(0)
    sample = train.sample_pair(whole, frames, 0, generator)
    assert sample.contents.shape == (2, 3, 32, 32) and sample.whole.shape == (1, 3, 40, 64)
    assert torch.equal(sample.whole, io.to_tensor(frames[0]))
    assert not torch.equal(sample.whole, io.to_tensor(frames[1]))  # the pair's frames differ
    assert train.sample_pair(replace(whole, train_whole_frame_style=False), frames, 0, generator).whole is None  # off
    assert train.sample_pair(replace(whole, train_crop=64), frames, 0, generator).whole is None  # the crop is all


def test_with_whole_frame_style_the_style_term_is_the_first_whole_frames_weighed_by_its_area(style):
    frames = shot_frames((2,), (64, 40))
    config = replace(TINY, max_side=64, train_whole_frame_style=True, train_temporal_weight=0.0)
    session = prepare_session(config, [style], size=(40, 64))
    sample = train.sample_pair(config, frames, 0, torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    network = TransformNet(width=4, n_residual=1)
    with torch.no_grad():
        loss = float(train.pair_loss(session, network, sample))
        crop, whole = ({name: float(value) for name, value in frame_losses(
            session.model, network(images), Targets(content_targets(session.model, images, config), session.grams),
            config).items()} for images in (sample.contents, sample.whole))
    assert loss == pytest.approx(crop["total"] - crop["style"] + (40 * 64) / (32 * 32) * whole["style"], rel=1e-5)


def test_the_temporal_term_is_zero_when_the_outputs_equal_their_warped_predecessors():
    still = shot_frames((1,), (32, 32))[0]
    generator = torch.Generator().manual_seed(0)
    sample = train.sample_pair(TINY, [still, still], 0, generator)
    contents, (backward, mask) = sample.contents, sample.link
    network = TransformNet(width=4, n_residual=1).eval()
    with torch.no_grad():
        outputs = network(contents)  # the same frame twice: the same output twice
        assert float(mask.mean()) > 0.9  # a still pair is linked almost everywhere
        assert float(temporal_loss(outputs[1:], flow.warp(outputs[:1], backward), mask)) == pytest.approx(0, abs=1e-10)
        shifted = outputs[1:].roll(3, dims=-1)  # and not zero when they differ
        assert float(temporal_loss(shifted, flow.warp(outputs[:1], backward), mask)) > 1e-4


def test_a_saved_model_loads_to_identical_outputs(tmp_path):
    torch.manual_seed(1)
    network = TransformNet(width=4, n_residual=2).eval()
    save_network(tmp_path / "model.safetensors", network, {"style_weight": 1e-4})
    loaded, trained_for = load_network(tmp_path / "model.safetensors")
    image = torch.rand(1, 3, 24, 40)
    with torch.no_grad():
        assert torch.equal(loaded(image), network(image))
    assert trained_for == {"style_weight": 1e-4}
    assert [path.name for path in tmp_path.iterdir()] == ["model.safetensors"]  # no temporary file left


@pytest.mark.parametrize("kind, words", [
    ("missing", "no such model file"),
    ("not safetensors", "not a model file"),
    ("foreign", "not a stylereel model"),
    ("another architecture", "holds a 'esrgan' network"),
    ("another version", "architecture version 99"),
    ("damaged tensors", "do not fit the network"),
])
def test_a_bad_model_file_is_one_clear_error_naming_it(tmp_path, kind, words):
    path = tmp_path / "model.safetensors"
    if kind != "missing":
        write_bad_model(path, kind)
    with pytest.raises(InputError, match=words) as caught:
        load_network(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_a_network_run_keeps_frame_count_timestamps_and_audio(tmp_path, style):
    clip = make_shots_clip(tmp_path / "shots.mkv", (3, 4))
    output, stats = tmp_path / "out.mp4", tmp_path / "stats.json"
    result = CliRunner().invoke(app, [str(a) for a in (
        "video", clip.path, "-s", style, "-o", output, "--engine", "network", "--train-iterations", 6,
        "--max-side", 32, "--device", "cpu", "--stats", stats)])
    assert result.exit_code == 0, result.output
    with av.open(str(output)) as container:
        times = [float(frame.pts * frame.time_base) for frame in container.decode(video=0)]
        kinds = [stream.type for stream in container.streams]
    assert times == pytest.approx([index / 24 for index in range(7)], abs=1e-3)
    assert kinds == ["video", "audio"]
    recorded = json.loads(stats.read_text())
    assert recorded["train"]["steps"] == 6 and set(recorded["phase_seconds"]) == {"train", "infer"}
    assert [frame["scene_cut"] for frame in recorded["frames"]] == [False, False, False, True, False, False, False]


def test_a_frame_folder_of_odd_sized_frames_comes_out_at_their_size(tmp_path, style):
    folder = tmp_path / "in"
    folder.mkdir()
    for index, frame in enumerate(shot_frames((3,), (33, 27))):
        io.write_image(folder / f"{index}.png", frame)
    summary = run.stylize_frames(folder, [style], tmp_path / "out", replace(TINY, max_side="source"))
    assert summary.n_frames == 3
    assert [io.read_image(tmp_path / "out" / f"{index}.png").shape for index in range(3)] == [(27, 33, 3)] * 3


def test_what_the_network_engine_cannot_do_yet_is_one_line_before_any_work(tmp_path, style):
    clip = make_shots_clip(tmp_path / "shots.mkv", (2,))
    result = CliRunner().invoke(app, [str(a) for a in (
        "video", clip.path, "-s", style, "-o", tmp_path / "out.mp4", "--engine", "network", "--passes", 2)])
    assert result.exit_code == 2
    assert result.output.strip() == "error: --passes applies to --engine optimize only"
    assert not (tmp_path / "out.mp4").exists()


def test_refine_runs_at_most_n_optimiser_iterations_on_each_painted_frame(tmp_path, style):
    clip = make_shots_clip(tmp_path / "shots.mkv", (2, 2))
    events = []
    summary = run.stylize_video(clip.path, [style], tmp_path / "out.mp4", replace(TINY, refine=3, train_iterations=4),
                                callback=events.append)
    assert [record.iterations for record in summary.frames] == [3, 3, 3, 3]  # a few iterations always improve a start
    assert sum(type(event).__name__ == "IterationDone" for event in events) >= 12


def test_a_refined_frame_starts_with_the_step_length_the_frame_before_ended_with(tmp_path, style, monkeypatch):
    from stylereel.pipeline import learned

    stylize_frame, calls = learned.stylize_frame, []

    def recorded(*args, step_length=None, **kwargs):
        result = stylize_frame(*args, step_length=step_length, **kwargs)
        calls.append((step_length, result.step_length))
        return result

    monkeypatch.setattr(learned, "stylize_frame", recorded)
    clip = make_shots_clip(tmp_path / "shots.mkv", (2, 3))
    run.stylize_video(clip.path, [style], tmp_path / "out.mp4", replace(TINY, refine=3, train_iterations=4))
    given = [step_length for step_length, _ in calls]
    assert given[0] is None and given[2] is None  # each shot's first frame starts afresh
    for before, now in ((0, 1), (2, 3), (3, 4)):  # a later frame starts where the one before ended
        assert torch.equal(given[now], calls[before][1])
        assert float(given[now]) > 0  # three iterations on a frame keep a curvature pair


def test_refining_weighs_the_content_by_its_scale(tmp_path, style):
    clip = make_shots_clip(tmp_path / "shots.mkv", (3,))
    content = {}
    for refine, scale in ((0, 1.0), (3, 1.0), (3, 1000.0)):  # the same network and starts: only the weights differ
        config = replace(TINY, refine=refine, train_iterations=4, refine_content_scale=scale, crf=0)
        run.stylize_video(clip.path, [style], tmp_path / f"{refine}-{scale}.mkv", config)
        content[refine, scale] = evaluate_video(clip.path, tmp_path / f"{refine}-{scale}.mkv", [style], config).content_loss
    # this style's loss dwarfs the content's: the plain weights give the content up, a heavy scale wins it back
    assert content[3, 1000.0] < 0.5 * min(content[0, 1.0], content[3, 1.0])


def test_the_step_size_decays_from_adams_to_near_zero_along_a_half_cosine():
    rates = [train.learning_rate(step, 100) for step in range(100)]
    assert rates[0] == train.LEARNING_RATE and rates[50] == pytest.approx(train.LEARNING_RATE / 2)
    assert all(a > b for a, b in zip(rates, rates[1:])) and rates[-1] < 0.001 * train.LEARNING_RATE


def test_carried_blends_the_warped_frame_before_in_only_where_the_flow_explains_the_pixel():
    painted, warped = torch.zeros(1, 3, 4, 4), torch.ones(1, 3, 4, 4)
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., :2] = 1.0
    kept = painted.clone(), warped.clone(), mask.clone()
    blended = train.carried(painted, warped, mask, share=0.25)
    assert torch.equal(blended[..., :2], torch.full((1, 3, 4, 2), 0.25))
    assert torch.equal(blended[..., 2:], torch.zeros(1, 3, 4, 2))
    assert all(torch.equal(a, b) for a, b in zip((painted, warped, mask), kept))  # inputs untouched


def test_carry_steadies_the_painted_frames_and_carries_nothing_into_a_shot(tmp_path, style):
    from stylereel.pipeline.evaluate import warp_error

    clip = make_shots_clip(tmp_path / "shots.mkv", (4, 4))
    outputs = {}
    for share in (0.0, 0.6):
        path = tmp_path / f"carry{share}.mkv"
        run.stylize_video(clip.path, [style], path, replace(TINY, carry=share, crf=0, max_side="source"))
        outputs[share] = [frame.image for frame in io.read_video(path, max_side=None)]
    alone, carried = outputs[0.0], outputs[0.6]
    assert [np.array_equal(a, b) for a, b in zip(alone, carried)] == [True, False, False, False] * 2  # shot starts alike
    for shot in (slice(0, 4), slice(4, 8)):
        assert warp_error(carried[shot], clip.frames[shot]) < 0.8 * warp_error(alone[shot], clip.frames[shot])


def test_bf16_painting_stays_within_a_few_levels_of_fp32():
    torch.manual_seed(0)
    network = TransformNet(width=4, n_residual=1).eval()
    frames = shot_frames((2,), (48, 32))
    fp32 = list(train.paint(network, frames, torch.device("cpu")))
    bf16 = list(train.paint(network, frames, torch.device("cpu"), bf16=True))
    assert all(np.abs(a.astype(int) - b.astype(int)).max() <= 4 for a, b in zip(fp32, bf16))
    assert any(not np.array_equal(a, b) for a, b in zip(fp32, bf16))  # it really ran in bf16


@pytest.mark.parametrize("precision, bf16_units, trains_bf16", [
    ("auto", True, True), ("auto", False, False), ("fp32", True, False), ("bf16", False, True)])
def test_training_runs_the_vgg_in_bf16_on_a_cpu_with_bf16_units_and_then_as_the_run_set_it(
        style, monkeypatch, precision, bf16_units, trains_bf16):
    monkeypatch.setattr(sequence, "cpu_has_bf16", lambda: bf16_units)
    session = prepare_session(replace(TINY, precision=precision), [style], size=(32, 32))
    set_by_the_run = session.model.bf16
    assert set_by_the_run == (precision == "bf16")  # the optimiser (and `refine`) stays fp32 on the CPU by default
    seen, forward = [], session.model.forward  # the precision of each VGG pass training makes

    def recording(image, layers):
        seen.append(session.model.bf16)
        return forward(image, layers)

    monkeypatch.setattr(session.model, "forward", recording)
    train.train_network(session, shot_frames((2,), (32, 32)), [0], steps=2, emit=lambda event: None)
    assert seen and set(seen) == {trains_bf16}
    assert session.model.bf16 == set_by_the_run


def test_compiled_painting_pads_the_last_batch_and_matches_eager_painting():
    torch.manual_seed(0)
    network = TransformNet(width=4, n_residual=1).eval()
    frames = shot_frames((train.BATCH + 1,), (48, 32))  # a whole batch, then one frame
    eager = list(train.paint(network, frames, torch.device("cpu")))
    compiled = list(train.paint(network, frames, torch.device("cpu"), compiled=True))
    assert len(compiled) == len(frames)
    assert all(np.abs(a.astype(int) - b.astype(int)).max() <= 1 for a, b in zip(eager, compiled))

