"""`--ray`: shots as Ray tasks on a cluster of this machine (traffic stays on 127.0.0.1).

Each test starts its own Ray (a few seconds) and shuts it down; they are skipped where Ray is not
installed (`pip install -e ".[test]"` installs it).
"""

import contextlib
import json
import os
import signal
from dataclasses import replace
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from conftest import make_shots_clip, make_video, shot_frames
from stylereel.cli.main import app
from stylereel.pipeline import cluster, io, ray_connect, run
from stylereel.pipeline.config import Config
from stylereel.pipeline.errors import ClusterError, Interrupted
from stylereel.pipeline.events import FrameDone, Notice, TasksChanged
from typer.testing import CliRunner

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install -e '.[test]' or '.[ray]')")

TINY = Config(max_side=32, first_iterations=4, iterations=2, device="cpu", settle=False)
SHOTS = (3, 4, 2)  # frames per shot of the test clip



def _frames(parts: Path, n: int) -> list[np.ndarray]:
    return [io.read_image(parts / f"{index:06d}.png") for index in range(n)]


@contextlib.contextmanager
def _one_thread():
    """Run torch on one thread, as each Ray task here does (it holds one CPU and `cluster` sets
    torch's threads to that). Same settings on another thread count need not give the same bits:
    on an AMX Xeon, 1 and 2 threads rounded differently and the chain carried it forward."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _local(clip: Path, style: Path, tmp_path: Path, config: Config = TINY) -> list[np.ndarray]:
    """The frames of a local run of the same settings on one thread (its work folder, lossless)."""
    output = tmp_path / "local.mp4"
    with _one_thread():
        run.stylize_video(clip, [style], output, config, keep_frames=True)
    return _frames(Path(f"{output}.parts"), sum(SHOTS))


def _kill_in_second_frame(marker: str):
    """A worker start-up hook: the first task that reaches the optimisation of its second frame
    kills its own process (once: the marker file says it happened), as a crashed worker would."""
    def hook() -> None:
        from stylereel.pipeline import sequence

        original, calls = sequence.stylize_frame, []

        def stylize_frame(*args, **kwargs):
            calls.append(1)
            if len(calls) == 3 and not os.path.exists(marker):  # frame 1 ran coarse and fine: now frame 2
                Path(marker).write_text(str(os.getpid()))
                os.kill(os.getpid(), signal.SIGKILL)
            return original(*args, **kwargs)

        sequence.stylize_frame = stylize_frame
    return hook


def test_two_nodes_give_the_local_frames_even_when_a_worker_is_killed(tmp_path, style, monkeypatch):
    from ray.cluster_utils import Cluster

    # A driver joining HOST:PORT has Ray swap 127.0.0.1 for the machine's outward address, where a
    # cluster bound to 127.0.0.1 does not listen: keep the address as it is, so nothing leaves lo.
    monkeypatch.setattr(ray._private.services, "resolve_ip_for_localhost", lambda host: host)

    clip = make_shots_clip(tmp_path / "shots.mkv", SHOTS)
    expected = _local(clip.path, style, tmp_path)
    marker = tmp_path / "killed"
    node = {"num_cpus": 1, "node_ip_address": "127.0.0.1"}
    nodes = Cluster(initialize_head=True, head_node_args=node | {"include_dashboard": False})
    try:
        nodes.add_node(**node)
        nodes.wait_for_nodes()
        ray.init(address=nodes.address, _node_ip_address="127.0.0.1", log_to_driver=False,
                 runtime_env={"worker_process_setup_hook": _kill_in_second_frame(str(marker))})
        output = tmp_path / "ray.mp4"
        summary = run.stylize_video(clip.path, [style], output, replace(TINY, ray=nodes.address), keep_frames=True)
    finally:
        ray.shutdown()
        nodes.shutdown()
    assert marker.exists()  # a worker really died in the middle of a task ...
    assert max(task["retries"] for task in summary.tasks) >= 1  # ... and Ray ran that task again
    assert [(task["first"], task["last"]) for task in summary.tasks] == [(0, 2), (3, 6), (7, 8)]
    assert len({task["node"] for task in summary.tasks}) == 2  # both nodes stylized shots
    produced = _frames(Path(f"{output}.parts"), sum(SHOTS))
    assert all(np.array_equal(a, b) for a, b in zip(produced, expected))  # cuts restart the chain anyway
    assert [record.index for record in summary.frames] == list(range(sum(SHOTS)))
    with av.open(str(output)) as container:
        times = [float(frame.pts * frame.time_base) for frame in container.decode(video=0)]
        kinds = [stream.type for stream in container.streams]
    assert times == pytest.approx([index / 24 for index in range(sum(SHOTS))], abs=1e-3)
    assert kinds == ["video", "audio"]


def _fail_once(armed: str):
    """A worker start-up hook: while the file `armed` exists, the next optimisation deletes it and
    fails as a task does when retrying cannot help (out of memory)."""
    def hook() -> None:
        from stylereel.pipeline import sequence
        from stylereel.pipeline.errors import DeviceError

        original = sequence.stylize_frame

        def stylize_frame(*args, **kwargs):
            try:
                os.remove(armed)
            except FileNotFoundError:
                return original(*args, **kwargs)
            raise DeviceError("out of memory on cpu device (test)")

        sequence.stylize_frame = stylize_frame
    return hook


def _interrupt_after_a_task(parts: Path):
    """A callback that presses Ctrl-C at the first frame after a task was finished in `parts`."""
    def interrupt(event):
        if isinstance(event, FrameDone) and any(parts.glob("task-*.json")):
            raise KeyboardInterrupt

    return interrupt


def test_interrupt_failure_and_resume_keep_finished_shots(tmp_path, style):
    clip = make_shots_clip(tmp_path / "shots.mkv", SHOTS)
    expected = _local(clip.path, style, tmp_path)
    armed = tmp_path / "armed"
    output = tmp_path / "ray.mp4"
    config = replace(TINY, ray="local")
    parts = Path(f"{output}.parts")

    interrupt = _interrupt_after_a_task(parts)
    ray_connect.init_local(ray, num_cpus=1, runtime_env={"worker_process_setup_hook": _fail_once(str(armed))},
                           log_to_driver=False)
    try:
        with pytest.raises(Interrupted, match=r"after 1 task\(s\) \([234] frame\(s\)\).*--resume"):
            run.stylize_video(clip.path, [style], output, config, callback=interrupt)
        assert len(list(parts.glob("task-*.json"))) == 1
        assert not output.exists()
        _resume_is_refused_when_settings_or_inputs_change(clip.path, style, output)
        armed.touch()
        with pytest.raises(ClusterError, match=r"frames \d-\d \(shot \d\) failed: out of memory .*1 finished task"):
            run.stylize_video(clip.path, [style], output, config, resume=True)
        assert not armed.exists() and len(list(parts.glob("task-*.json"))) == 1
        kept = len(json.loads(next(parts.glob("task-*.json")).read_text())["records"])
        events, done_at = [], []  # each event, and how many tasks were finished when it came

        def watch(event):
            events.append(event)
            done_at.append(len(list(parts.glob("task-*.json"))))

        summary = run.stylize_video(clip.path, [style], output, config, resume=True, callback=watch,
                                    keep_frames=True)
    finally:
        ray.shutdown()
    # Frames count as they come, not when their task ends: more frames came while one task was
    # finished than that task has.
    counted = [isinstance(event, FrameDone) and done == 1 for event, done in zip(events, done_at)]
    assert sum(counted) > kept
    first = next(event for event in events if isinstance(event, TasksChanged))
    assert first.running + first.queued + first.waiting == 2  # only the unfinished shots were submitted
    assert any(isinstance(event, Notice) and "1 of 3 task(s) already done" in event.text for event in events)
    assert summary.n_frames == sum(SHOTS)
    produced = _frames(parts, sum(SHOTS))
    assert all(np.array_equal(a, b) for a, b in zip(produced, expected))


def _resume_is_refused_when_settings_or_inputs_change(clip: Path, style: Path, output: Path) -> None:
    """A Ray work folder holding one finished task: resuming with another setting, another input
    file or without --ray is one error line naming what differs, exit 2, the folder untouched."""
    parts = Path(f"{output}.parts")
    before = sorted(path.name for path in parts.iterdir())
    command = ["video", clip, "-s", style, "-o", output, "--resume", "--max-side", 32, "--first-iterations", 4,
               "--iterations", 2, "--device", "cpu", "--no-settle"]
    attempts = {
        "style_weight differ": [*command, "--ray", "local", "--style-weight", 1],
        "max_side differ": [*command, "--ray", "local", "--max-side", 40],
        "was left by --ray": command,
    }
    saved = clip.read_bytes(), clip.stat()
    for expected, arguments in attempts.items():
        result = CliRunner().invoke(app, [str(argument) for argument in arguments])
        assert result.exit_code == 2 and expected in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1, result.output
    clip.write_bytes(saved[0][:-1] + bytes([saved[0][-1] ^ 1]))  # another file under the same name
    result = CliRunner().invoke(app, [str(argument) for argument in [*command, "--ray", "local"]])
    assert result.exit_code == 2 and f"input file {clip} differ" in result.output, result.output
    clip.write_bytes(saved[0])
    os.utime(clip, ns=(saved[1].st_atime_ns, saved[1].st_mtime_ns))  # the same file again
    assert not output.exists() and sorted(path.name for path in parts.iterdir()) == before


def test_cli_ray_local_with_chunked_shots(tmp_path, style):
    clip = make_shots_clip(tmp_path / "shots.mkv", (7,))
    preset = tmp_path / "chunks.toml"
    preset.write_text("max_chunk_frames = 3\nseam_frames = 1\nray_cpus = 1\n")
    output = tmp_path / "out.mp4"
    result = CliRunner().invoke(app, [str(a) for a in (
        "video", clip.path, "-s", style, "-o", output, "-c", preset, "--ray", "local", "--max-side", 32,
        "--first-iterations", 3, "--iterations", 2, "--device", "cpu", "--stats", tmp_path / "stats.json")])
    assert not ray.is_initialized()  # the private instance is gone after the run
    assert result.exit_code == 0, result.output
    assert "1 shot(s), 3 task(s)" in result.output and "7 frame(s)" in result.output
    stats = (tmp_path / "stats.json").read_text()
    tasks = json.loads(stats)["tasks"]
    assert [(task["first"], task["last"], task["tail"]) for task in tasks] == [(0, 1, 1), (2, 4, 1), (5, 6, 0)]
    with av.open(str(output)) as container:
        assert len(list(container.decode(video=0))) == 7


def _ray_children() -> dict[int, str]:
    """This process's live descendants started by Ray (pid -> command line), zombies left out."""
    found: dict[int, str] = {}
    for entry in sorted(Path("/proc").iterdir(), key=lambda entry: int(entry.name) if entry.name.isdigit() else 0):
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_text().replace("\0", " ")
        except (OSError, IndexError, ValueError):
            continue
        if stat[0] != "Z" and (int(stat[1]) == os.getpid() or int(stat[1]) in found):
            found[int(entry.name)] = command
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to list Ray's processes")
def test_leaving_a_private_ray_stops_every_process_it_started():
    with ray_connect.connect("local"):
        started = _ray_children()
    assert any("monitor.py" in command for command in started.values())  # killed first, on its own
    assert any("raylet" in command for command in started.values())
    assert not set(started) & set(_ray_children())


def _said(events: list) -> dict[str, list[str]]:
    """A run's notices: the scene cuts it named, and the keyed ones (said once per run)."""
    notices = [event for event in events if isinstance(event, Notice)]
    return {"cuts": sorted(notice.text for notice in notices if "scene cut" in notice.text),
            "keys": sorted(notice.key for notice in notices if notice.key)}


def test_luminance_mode_gives_the_local_frames_and_says_what_a_local_run_says(tmp_path, style):
    # The task keeps the footage's colours as a local run does (the chain sees each frame's luminance),
    # and the driver says what the local run says: its scene cuts, a first frame out of budget (once).
    clip = make_shots_clip(tmp_path / "shots.mkv", SHOTS)
    config = replace(TINY, preserve_colors="luminance")
    local_events, ray_events = [], []
    with _one_thread():
        run.stylize_video(clip.path, [style], tmp_path / "local.mp4", config, keep_frames=True,
                          callback=local_events.append)
    expected = _frames(tmp_path / "local.mp4.parts", sum(SHOTS))
    output = tmp_path / "ray.mp4"
    ray_connect.init_local(ray, num_cpus=1, log_to_driver=False)
    try:
        run.stylize_video(clip.path, [style], output, replace(config, ray="local"), keep_frames=True,
                          stats=tmp_path / "stats.json", callback=ray_events.append)
    finally:
        ray.shutdown()
    produced = _frames(Path(f"{output}.parts"), sum(SHOTS))
    assert all(np.array_equal(a, b) for a, b in zip(produced, expected))
    assert _said(ray_events) == _said(local_events)
    said = _said(local_events)
    assert [text.split(":")[0] for text in said["cuts"]] == ["frame 4", "frame 8"]
    assert said["keys"] == ["first frame capped"]
    memory = json.loads((tmp_path / "stats.json").read_text())["ray"]["memory"]
    assert 0 < memory["peak_bytes"] <= max(memory["budget_bytes"], 4 * 48 * 32 * 3)


def test_cli_frames_with_ray_gives_the_local_frames_under_the_input_names(tmp_path, style):
    folder = tmp_path / "in"
    folder.mkdir()
    for index, frame in enumerate(shot_frames(SHOTS)):
        io.write_image(folder / f"shot_{index + 1}.png", frame)
    # Both at the defaults: `--ray local` tasks hold as many CPUs as torch uses here (`ray_cpus` 0),
    # so they run on as many threads as this local run and compute the same frames.
    local = run.stylize_frames(folder, [style], tmp_path / "local", TINY)
    assert local.n_frames == sum(SHOTS)
    output = tmp_path / "out"
    result = CliRunner().invoke(app, [str(a) for a in (
        "frames", folder, "-s", style, "-o", output, "--ray", "local", "--max-side", 32, "--first-iterations", 4,
        "--iterations", 2, "--device", "cpu", "--no-settle")])
    assert not ray.is_initialized()
    assert result.exit_code == 0, result.output
    assert "3 shot(s), 3 task(s)" in result.output
    names = [f"shot_{index + 1}.png" for index in range(sum(SHOTS))]
    assert sorted(path.name for path in output.iterdir()) == sorted(names)
    for name in names:
        assert np.array_equal(io.read_image(output / name), io.read_image(tmp_path / "local" / name))
    assert not Path(f"{output}.parts").exists()


def test_ray_says_what_a_local_run_says_of_the_input_file(tmp_path, style):
    # Two video streams, then a file cut short: the same notices as a local run gives (test_inputs).
    from test_inputs import FAST, PAL, damage, two_stream_video

    two = two_stream_video(tmp_path / "two.mkv")
    damaged = damage(make_video(tmp_path / "clip.mkv", n_frames=8, rate=PAL, with_audio=False, codec="ffv1").path,
                     "cut in packet 5")
    for source, words in ((two, "two.mkv: has 2 video streams; using the first"),
                          (damaged, f"warning: {damaged}: the video ends before its declared length; frames: 4 stylized, 4 lost")):
        outputs = {}
        for how in ("local", "ray"):
            output = tmp_path / f"{source.stem}.{how}.mp4"
            extra = ["--ray", "local"] if how == "ray" else []
            result = CliRunner().invoke(app, [str(a) for a in ("video", source, "-s", style, "-o", output, *FAST, *extra)])
            assert result.exit_code == 0, result.output
            outputs[how] = " ".join(result.output.split())  # as printed, unwrapped
        assert outputs["ray"].count(words) == outputs["local"].count(words) == 1, outputs


NET = Config(max_side=32, device="cpu", engine="network", train_iterations=6, train_crop=32, network_width=4)


def _count_training(log: str):
    """A worker start-up hook: every network a worker trains adds a line to the file `log`."""
    def hook() -> None:
        from stylereel.pipeline import cluster

        original = cluster.train_network

        def train_network(*args, **kwargs):
            with open(log, "a") as file:
                file.write("trained\n")
            return original(*args, **kwargs)

        cluster.train_network = train_network
    return hook


def _decoded(path: Path) -> tuple[list[np.ndarray], list[float], list[str]]:
    """A video's frames, their times in seconds, and its streams' kinds."""
    with av.open(str(path)) as container:
        decoded = [(frame.to_ndarray(format="rgb24"), float(frame.pts * frame.time_base))
                   for frame in container.decode(video=0)]
        kinds = [stream.type for stream in container.streams]
    return [image for image, _ in decoded], [time for _, time in decoded], kinds


def test_network_engine_trains_once_and_paints_the_local_frames(tmp_path, style):
    # The network engine on Ray: one training task, then a painting task per shot (with --refine:
    # each frame refined after the one before, so whole shots), the same frames as a local run
    # (lossless FFV1 both); Ctrl-C keeps the trained network and a finished shot, and --resume
    # trains nothing. Then a model file's run (frames, CLI) trains nothing and paints as locally.
    clip = make_shots_clip(tmp_path / "shots.mkv", (3, 4))
    config = replace(NET, refine=2)
    with _one_thread():
        run.stylize_video(clip.path, [style], tmp_path / "local.mkv", config)
    expected = _decoded(tmp_path / "local.mkv")
    output, log = tmp_path / "ray.mkv", tmp_path / "trainings.log"
    parts = Path(f"{output}.parts")

    interrupt = _interrupt_after_a_task(parts)
    ray_connect.init_local(ray, num_cpus=1, runtime_env={"worker_process_setup_hook": _count_training(str(log))},
                           log_to_driver=False)
    try:
        with pytest.raises(Interrupted, match=r"after 1 task\(s\)"):
            run.stylize_video(clip.path, [style], output, replace(config, ray="local"), callback=interrupt)
        assert log.read_text().count("trained") == 1 and (parts / "training.pt").exists()
        events = []
        run.stylize_video(clip.path, [style], output, replace(config, ray="local"), resume=True,
                          stats=tmp_path / "stats.json", callback=events.append)
        assert log.read_text().count("trained") == 1  # the kept network painted the rest
        model_frames = _cli_model_frames_with_ray(tmp_path, style)
        assert log.read_text().count("trained") == 1
    finally:
        ray.shutdown()
    produced = _decoded(output)
    assert len(produced[0]) == 7 and all(np.array_equal(a, b) for a, b in zip(produced[0], expected[0]))
    assert produced[1] == pytest.approx([index / 24 for index in range(7)], abs=1e-3) and produced[1] == expected[1]
    assert produced[2] == ["video", "audio"]
    assert any(isinstance(event, Notice) and "resuming with the network trained" in event.text for event in events)
    recorded = json.loads((tmp_path / "stats.json").read_text())
    assert recorded["train"]["steps"] == 6 and set(recorded["phase_seconds"]) == {"plan", "train", "infer"}
    assert [frame["scene_cut"] for frame in recorded["frames"]] == [False] * 3 + [True] + [False] * 3
    assert [frame["iterations"] for frame in recorded["frames"]] == [2] * 7
    assert [(task["first"], task["last"]) for task in recorded["tasks"]] == [(0, 2), (3, 6)]
    assert all(np.array_equal(a, b) for a, b in model_frames)


def _cli_model_frames_with_ray(tmp_path: Path, style: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """`frames --model FILE --ray local` (in the Ray this process has joined) against the same
    model's local run: each output frame with the local one, under the input's names."""
    from stylereel.pipeline import learned
    from stylereel.pipeline.network import TransformNet, save_network

    folder, model = tmp_path / "in", tmp_path / "model.safetensors"
    folder.mkdir()
    for index, frame in enumerate(shot_frames((3, 4))):
        io.write_image(folder / f"f{index}.png", frame)
    torch.manual_seed(0)
    save_network(model, TransformNet(width=4), learned.trained_for(NET, [style]))
    with _one_thread():
        run.stylize_frames(folder, [style], tmp_path / "local", NET, model=model)
    result = CliRunner().invoke(app, [str(a) for a in (
        "frames", folder, "-o", tmp_path / "out", "--model", model, "--ray", "local", "--max-side", 32,
        "--device", "cpu")])
    assert result.exit_code == 0, result.output
    names = [f"f{index}.png" for index in range(7)]
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == names
    return [(io.read_image(tmp_path / "out" / name), io.read_image(tmp_path / "local" / name)) for name in names]
