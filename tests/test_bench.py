"""The speed benchmark: what it times, FLOPs it counts by hand, and the command."""

import pytest
import torch
from conftest import make_video
from stylereel.cli.main import app
from stylereel.pipeline import bench, io
from stylereel.pipeline.config import Config
from stylereel.pipeline.model import LAYERS, VGG19
from typer.testing import CliRunner

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return VGG19(last_layer="conv5_1")  # random weights: cost does not depend on them


def _conv_flops(width: int, height: int) -> float:
    """Forward FLOPs of the 13 convolutions up to conv5_1: 2 x 9 x C_in x C_out per output pixel."""
    total, side = 0.0, (height, width)
    for name, _, c_in, c_out in LAYERS[:13]:
        if name.endswith("_1") and name != "conv1_1":
            side = (side[0] // 2, side[1] // 2)
        total += 2 * 9 * c_in * c_out * side[0] * side[1]
    return total


def test_floor_counts_each_convolution_forward_and_back_to_its_input(model):
    image = torch.rand(1, 3, 32, 48)
    flops, seconds = bench.conv_floor(model, image, bench.Variant("fp32"), repeat=1, warmup=0)
    assert flops == 2 * _conv_flops(48, 32)  # the input gradient of a conv costs what its forward does
    assert seconds > 0
    rounded = bench.Variant("bf16", bf16=True, channels_last=True)  # as on CUDA
    assert bench.conv_floor(model, image, rounded, repeat=1, warmup=0)[0] == flops


def test_times_every_loop_and_the_textbook_does_more_work(model):
    result = bench.bench_iterations(model, Config(), [bench.Variant("stylereel")], width=32, height=32,
                                    device=CPU, repeat=1, warmup=0)
    names = [loop.name for loop in result.loops]
    assert names == ["stylereel", bench.TEXTBOOK, bench.TEXTBOOK_FROZEN]
    ours, textbook, frozen = (result.loop(name) for name in names)
    assert all(loop.seconds > 0 for loop in result.loops) and result.floor_seconds > 0
    # Convolutions forward and back to the input, plus the Gram products.
    assert 2 * _conv_flops(32, 32) < ours.flops < 2.1 * _conv_flops(32, 32)
    assert ours.flops < frozen.flops  # the textbook differentiates F F^T with two products, not one
    assert textbook.flops > 1.4 * frozen.flops  # weight gradients and the layers after conv5_1
    assert result.width == 32 and result.conv_gflops_per_second > 0


def test_variants_follow_the_device():
    assert [v.name for v in bench.variants_for(CPU, compile=False)] == ["stylereel"]
    on_cuda = bench.variants_for(torch.device("cuda"), compile=True)
    assert [(v.name, v.bf16) for v in on_cuda] == [
        ("stylereel, bf16", True), ("stylereel, fp32", False), ("stylereel, bf16, compiled", True)]


def test_bench_command_prints_loops_and_stages(tmp_path):
    clip = make_video(tmp_path / "clip.mp4", n_frames=2)
    style = tmp_path / "style.png"
    torch.manual_seed(0)
    io.write_image(style, (torch.rand(40, 40, 3) * 255).byte().numpy())
    preset = tmp_path / "tiny.toml"
    preset.write_text("max_side = 32\nfirst_iterations = 2\niterations = 2\n")
    result = CliRunner().invoke(app, ["bench", "--size", "32", "--repeat", "1", "--no-compile", "--clip",
                                      str(clip.path), "-s", str(style), "--frames", "2", "-c", str(preset),
                                      "--device", "cpu"])
    assert result.exit_code == 0, result.output
    for words in ("one iteration at 32x32", "textbook, frozen", "x floor", "end to end: 2 frame(s)",
                  "decode", "optimize", "encode", "network engine at 32x18: painting", "a training step"):
        assert words in " ".join(result.output.split())


def test_a_size_too_small_for_vgg_is_one_line_before_any_timing(monkeypatch):
    monkeypatch.setattr(bench, "load_model", lambda *a, **k: pytest.fail("the model was loaded"))
    result = CliRunner().invoke(app, ["bench", "--size", "8", "--frames", "0", "--device", "cpu"])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert result.output == "error: --size 8: too small, VGG-19 needs at least 16 px on a side\n"
