"""Planning (shots, chunks), the `shots` command, and `--ray` refused cleanly where Ray is missing."""

import contextlib
import json
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_shots_clip, shot_frames
from stylereel.cli.main import app
from stylereel.pipeline import cluster, color, io, ray_connect
from stylereel.pipeline.config import Config
from stylereel.pipeline.errors import ConfigError, Interrupted
from stylereel.pipeline.shots import Chunk, Plan, Shot, find_cuts, plan_frames, plan_video, scan, split_shots
from typer.testing import CliRunner


def _invoke(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_cuts_are_where_the_shots_change():
    assert find_cuts(Config(), shot_frames((3, 4, 2))) == [0, 3, 7]


def test_a_shot_held_still_has_no_cut():
    frame = shot_frames((1,))[0]
    assert find_cuts(Config(), [frame] * 4) == [0]


def test_cut_threshold_1_finds_no_cut():
    assert find_cuts(Config(cut_threshold=1.0), shot_frames((3, 4, 2))) == [0]


def test_motion_is_zero_where_a_shot_starts_and_in_a_still_shot():
    frames = shot_frames((3, 4))
    still = [frames[0]] * 3
    starts, motion, _ = scan(Config(), frames + still)
    assert starts == [0, 3, 7]
    assert len(motion) == 10 and motion[0] == motion[3] == motion[7] == 0.0
    assert motion[8] == pytest.approx(0.0, abs=1e-9) and motion[9] == pytest.approx(0.0, abs=1e-9)  # the same frame again
    assert all(value > 0 for value in motion[1:3] + motion[4:7])  # a sub-pixel-filtered pan leaves a residual


def test_plan_gives_frames_and_times_of_each_shot(tmp_path):
    clip = make_shots_clip(tmp_path / "shots.mkv", (3, 4, 2))
    plan = plan_video(clip.path, Config(max_side=48))
    assert [(shot.first, shot.last, shot.n_frames) for shot in plan.shots] == [(0, 2, 3), (3, 6, 4), (7, 8, 2)]
    assert [shot.start for shot in plan.shots] == pytest.approx([0, 3 / 24, 7 / 24], abs=1e-3)
    assert [shot.end for shot in plan.shots] == pytest.approx([2 / 24, 6 / 24, 8 / 24], abs=1e-3)
    assert plan.n_frames == 9 and (plan.width, plan.height) == (48, 32) and plan.seconds > 0


def test_plan_of_an_image_sequence_counts_frames_as_its_times():
    frames = shot_frames((3, 4, 2))
    plan = plan_frames(iter(frames), Config())
    assert [(shot.first, shot.last) for shot in plan.shots] == [(0, 2), (3, 6), (7, 8)]
    assert plan.pts == list(range(9)) and [shot.start for shot in plan.shots] == [0, 3, 7]
    assert (plan.width, plan.height) == (48, 32) and len(plan.motion) == 9


def test_chunks_cover_every_frame_once_with_tails_inside_the_shot():
    shots = [Shot(0, 9, 0, 0), Shot(10, 40, 0, 0), Shot(41, 41, 0, 0)]
    chunks = split_shots(shots, max_chunk_frames=8, seam_frames=3)
    owned = [index for chunk in chunks for index in range(chunk.first, chunk.last + 1)]
    assert owned == list(range(42))
    assert all(chunk.last - chunk.first + 1 <= 8 for chunk in chunks)
    assert [chunk.shot for chunk in chunks] == [0, 0, 1, 1, 1, 1, 2]
    for chunk, after in zip(chunks, chunks[1:]):
        # a tail reaches into the next chunk of the same shot, never across a cut
        assert chunk.tail == (min(3, after.last - after.first + 1) if after.shot == chunk.shot else 0)
    assert chunks[-1].tail == 0


def test_seams_move_to_the_calmest_stretch_within_reach():
    shot = Shot(0, 95, 0, 0)  # 96 frames in chunks of at most 40: 3 chunks, even split at 32 and 64
    motion = [1.0] * 96
    motion[36:40] = [0.1] * 4  # a calm stretch 4 frames after the first even boundary
    motion[64:68] = [0.1] * 4
    chunks = split_shots([shot], max_chunk_frames=40, seam_frames=3, motion=motion)
    assert [(chunk.first, chunk.last, chunk.tail) for chunk in chunks] == [(0, 35, 3), (36, 63, 3), (64, 95, 0)]
    # the cross-fade after each boundary b touches pairs b .. b+3, all inside the calm stretch
    even = split_shots([shot], max_chunk_frames=40, seam_frames=3)
    assert [chunk.first for chunk in even] == [0, 32, 64]
    # out of reach (40 // 8 = 5 frames) a calm stretch is not chased
    far = [1.0] * 96
    far[45:49] = [0.1] * 4
    assert [c.first for c in split_shots([shot], max_chunk_frames=40, seam_frames=3, motion=far)][1] in range(27, 38)


def test_moved_seams_keep_every_chunk_within_the_limit():
    rng = np.random.default_rng(0)
    shots = [Shot(0, 9, 0, 0), Shot(10, 130, 0, 0), Shot(131, 200, 0, 0)]
    for _ in range(20):
        motion = list(rng.random(201))
        chunks = split_shots(shots, max_chunk_frames=24, seam_frames=4, motion=motion)
        owned = [index for chunk in chunks for index in range(chunk.first, chunk.last + 1)]
        assert owned == list(range(201))
        assert all(1 <= chunk.last - chunk.first + 1 <= 24 for chunk in chunks)
        assert len(chunks) == len(split_shots(shots, max_chunk_frames=24, seam_frames=4))


def test_short_shots_are_not_chunked():
    chunks = split_shots([Shot(0, 4, 0, 0), Shot(5, 12, 0, 0)], max_chunk_frames=8, seam_frames=2)
    assert [(chunk.first, chunk.last, chunk.tail) for chunk in chunks] == [(0, 4, 0), (5, 12, 0)]


@pytest.mark.parametrize("values, words", [
    ({"ray": "nowhere"}, "ray must be auto, local or HOST:PORT"),
    ({"ray": "host:99999"}, "ray must be"),
    ({"max_chunk_frames": 0}, "max_chunk_frames must be positive"),
    ({"seam_frames": 8, "max_chunk_frames": 8}, "seam_frames (8) must be below max_chunk_frames (8)"),
    ({"ray_cpus": -1}, "ray_cpus must not be negative"),
])
def test_bad_scale_out_settings(values, words):
    with pytest.raises(ConfigError, match=None) as error:
        Config(**values)
    assert words in str(error.value)


def test_a_task_holds_the_local_runs_threads_on_one_machine_and_one_cpu_on_a_cluster(monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 6)
    assert ray_connect.task_cpus(Config(ray="local")) == 6
    assert ray_connect.task_cpus(Config(ray="auto")) == 1
    assert ray_connect.task_cpus(Config(ray="10.0.0.2:6379")) == 1
    assert ray_connect.task_cpus(Config(ray="local", ray_cpus=3)) == 3


def test_the_planning_pass_runs_while_the_caller_waits_and_hands_over_its_plan_or_error(tmp_path):
    clip = make_shots_clip(tmp_path / "shots.mkv", (3, 4))
    config = Config(max_side=48)
    events = []
    with cluster.plan_meanwhile(lambda emit: plan_video(clip.path, config, callback=emit), events.append) as planned:
        plan = planned()
    assert [(shot.first, shot.last) for shot in plan.shots] == [(0, 2), (3, 6)]
    assert len(events) == 7  # one FramesChecked per frame, through the caller's callback
    with pytest.raises(ConfigError, match="broken"):
        with cluster.plan_meanwhile(lambda emit: (_ for _ in ()).throw(ConfigError("broken")), events.append) as planned:
            planned()


def test_leaving_early_stops_the_planning_pass_at_its_next_frame():
    seen = []

    def endless(emit):
        while True:
            emit(len(seen))
            seen.append(len(seen))
            time.sleep(0.01)

    with pytest.raises(RuntimeError, match="joining failed"):
        with cluster.plan_meanwhile(endless, lambda event: None):
            time.sleep(0.05)
            raise RuntimeError("joining failed")  # as when Ray cannot start
    stopped_at = len(seen)
    time.sleep(0.05)
    assert 0 < stopped_at == len(seen)  # the pass had run, and had ended when the context was left


def _clip_and_style(tmp_path: Path):
    """A 2-frame clip of one shot, and a flat grey style image."""
    style = tmp_path / "style.png"
    io.write_image(style, np.full((32, 32, 3), 128, np.uint8))
    return make_shots_clip(tmp_path / "shots.mkv", (2,)), style


def test_ctrl_c_while_ray_starts_says_so_and_writes_nothing(tmp_path, monkeypatch):
    clip, style = _clip_and_style(tmp_path)

    @contextlib.contextmanager
    def interrupted_while_starting(address, **options):
        raise KeyboardInterrupt
        yield

    monkeypatch.setattr(cluster, "check_ray", lambda: None)  # Ray itself is not needed here
    monkeypatch.setattr(cluster, "connect", interrupted_while_starting)
    output = tmp_path / "out.mp4"
    with pytest.raises(Interrupted, match="interrupted before the first task was submitted; nothing was written to"):
        cluster.stylize_video_on_ray(clip.path, [style], output, Config(max_side=32, ray="local"))
    assert not output.exists() and not Path(f"{output}.parts").exists()


def test_shots_command_lists_shots_and_the_time_it_took(tmp_path):
    clip = make_shots_clip(tmp_path / "shots.mkv", (3, 4, 2))
    result = _invoke("shots", clip.path, "--max-side", 48, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [(s["first"], s["last"], s["n_frames"]) for s in data["shots"]] == [(0, 2, 3), (3, 6, 4), (7, 8, 2)]
    assert data["n_frames"] == 9 and data["seconds"] > 0
    text = _invoke("shots", clip.path, "--max-side", 48)
    assert text.exit_code == 0 and "3 shot(s), 9 frames at 48x32; planned in" in text.output


def test_shots_command_on_a_missing_file(tmp_path):
    result = _invoke("shots", tmp_path / "none.mp4")
    assert result.exit_code == 2 and "none.mp4" in result.output and "Traceback" not in result.output


def test_ray_option_without_ray_installed_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    clip = make_shots_clip(tmp_path / "shots.mkv", (2,))
    style = tmp_path / "style.png"
    io.write_image(style, np.full((32, 32, 3), 128, np.uint8))
    output = tmp_path / "out.mp4"
    result = _invoke("video", clip.path, "-s", style, "-o", output, "--ray", "local", "--max-side", 32)
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        'error: --ray needs Ray, which is not installed here; install it with: pip install "stylereel[ray]"']
    assert not output.exists() and not Path(str(output) + ".parts").exists()


def test_the_planner_cuts_on_what_the_chain_sees():
    # A colourful frame, then its own lightness in grey: every pixel changes colour, none lightness.
    rng = np.random.default_rng(3)
    colourful = np.kron(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8), np.ones((6, 6, 1), np.uint8))  # (36, 48, 3)
    grey = io.to_array(color.luminance(io.to_tensor(colourful)))
    frames = [colourful, colourful, grey, grey]
    assert find_cuts(Config(), frames) == [0, 2]
    assert find_cuts(Config(preserve_colors="luminance"), frames) == [0]  # a luminance chain carries on there


def test_each_chunk_comes_with_its_shots_first_frame():
    frames = [np.full((4, 4, 3), index, np.uint8) for index in range(7)]
    plan = Plan([Shot(0, 4, 0.0, 4.0), Shot(5, 6, 5.0, 6.0)], list(range(7)), Fraction(1), 4, 4, 0.0)
    chunks = [Chunk(0, 0, 2, 1), Chunk(0, 3, 4), Chunk(1, 5, 6)]
    got = [(chunk, images[:, 0, 0, 0].tolist(), int(first[0, 0, 0])) for chunk, images, first
           in cluster.task_frames(chunks, iter(frames), plan)]
    assert got == [(chunks[0], [0, 1, 2, 3], 0), (chunks[1], [3, 4], 0), (chunks[2], [5, 6], 5)]


class _FakeRay:
    """Enough of Ray for `cluster.schedule`: each submitted task's generator yields its items at once."""

    class exceptions:
        RayError = RuntimeError

    @staticmethod
    def wait(generators, num_returns=1, timeout=None):
        return generators[:num_returns], generators[num_returns:]

    @staticmethod
    def get(ref):
        return ref

    @staticmethod
    def cancel(generator, force=False):
        pass


@pytest.mark.parametrize("budget, peak", [(250, 200), (50, 100), (10**9, 300)])  # 300: the count caps too
def test_the_driver_holds_at_most_its_memory_budget_and_starts_the_first_task_at_once(budget, peak):
    chunks = [Chunk(0, 4 * k, 4 * k + 3) for k in range(4)]
    pulled, submitted, stored = [], [], []

    def tasks():
        for chunk in chunks:
            pulled.append(chunk.first)
            yield chunk, np.zeros((4, 1, 1, 3), np.uint8), None

    def submit(chunk, frames, shot_first):
        submitted.append((chunk.first, len(pulled)))
        return iter([{"record": chunk.first, "image": 0}, {"end": chunk.first}])

    held = cluster.schedule(_FakeRay, tasks(), submit, lambda chunk, item: stored.append(item), lambda event: None,
                            workers=1, sizes=[100] * 4, budget=budget)
    assert held == peak  # one task of 100 bytes runs alone even where the budget is smaller
    assert submitted[0] == (0, 1)  # the first task went out before the second was decoded
    assert sorted(first for first, _ in submitted) == [0, 4, 8, 12]
    assert [item["end"] for item in stored if "end" in item] == sorted(first for first, _ in submitted)


def test_over_a_seam_the_output_fades_from_the_tail_into_the_next_chunk(tmp_path):
    # Chunk 0-2 also stylized frames 3 and 4 (its tail, here white); chunk 3-6's own frames are black.
    from stylereel.pipeline.checkpoint import Checkpoint

    checkpoint = Checkpoint(tmp_path / "parts", {}, keep_images=True)
    checkpoint.folder.mkdir()
    for index in range(7):
        io.write_image(checkpoint.frame_path(index), np.full((8, 8, 3), 0, np.uint8))
    for index in (3, 4):
        io.write_image(cluster.tail_path(checkpoint, index), np.full((8, 8, 3), 255, np.uint8))
    targets = [tmp_path / "out" / f"{index}.png" for index in range(7)]
    cluster.write_frames(checkpoint, [Chunk(0, 0, 2, 2), Chunk(0, 3, 6)], targets)
    # Frame last + k is (1 - k / 3) of the tail and k / 3 of the new chunk: 255 * 2/3, 255 * 1/3, then the chunk's own.
    assert [int(io.read_image(target)[0, 0, 0]) for target in targets] == [0, 0, 0, 170, 85, 0, 0]


def test_ctrl_c_between_planning_and_the_first_task_is_one_interrupted_line_via_the_cli(tmp_path, monkeypatch):
    clip, style = _clip_and_style(tmp_path)

    @contextlib.contextmanager
    def connected(address, **options):
        yield object()

    def interrupted(*args):  # Ctrl-C while the work folder is read for finished tasks
        raise KeyboardInterrupt

    monkeypatch.setattr(cluster, "check_ray", lambda: None)  # Ray itself is not needed here
    monkeypatch.setattr(cluster, "connect", connected)
    monkeypatch.setattr(cluster, "placement", lambda ray, config: ({"num_cpus": 1}, 1))
    monkeypatch.setattr(cluster, "finished_tasks", interrupted)
    output = tmp_path / "out.mp4"
    result = _invoke("video", clip.path, "-s", style, "-o", output, "--max-side", 32, "--ray", "local", "-q")
    assert result.exit_code == 130, result.output
    assert result.output.strip().splitlines() == [
        f"interrupted: interrupted before the first task was finished; nothing was written to {output}"]
    assert not output.exists() and not Path(f"{output}.parts").exists()
