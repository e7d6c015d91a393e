"""The network engine's image-transformation network, and its model files.

A feed-forward network in the shape of Johnson, Alahi and Fei-Fei 2016 ("Perceptual Losses for
Real-Time Style Transfer"), narrower: a 9x9 convolution, two stride-2 convolutions down, residual
blocks, then nearest-neighbour upsampling and a convolution per step up instead of transposed
convolutions, which leave a checkerboard (Odena et al. 2016). Instance normalisation (Ulyanov et
al. 2016) and reflection padding throughout. Trained per clip by `train.train_network`.

A model file is safetensors (tensors only, never pickle: loading runs no code) with the network's
shape and what it was trained for as JSON metadata (`MODEL_KEY`).

Convention: images are (B, 3, H, W) RGB in [0, 1]; any H and W (padded inside, cropped back).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .errors import InputError, OutputError

ARCHITECTURE = "stylereel-transform"  # what a model file must say it holds
VERSION = 1  # bumped whenever the layers change; a file of another version is refused
MODEL_KEY = "stylereel"  # the safetensors metadata key holding the JSON description
STRIDE = 4  # two stride-2 convolutions: sides are padded to a multiple of this


class TransformNet(nn.Module):
    """Content frame in, stylized frame out, (B, 3, H, W) [0, 1] both; `width` channels at full
    resolution, 4 x `width` after the two downsamplings, `n_residual` residual blocks there."""

    def __init__(self, *, width: int = 16, n_residual: int = 5) -> None:
        super().__init__()
        self.width, self.n_residual = width, n_residual
        self.down = nn.Sequential(
            _conv(3, width, 9), _conv(width, 2 * width, 3, stride=2), _conv(2 * width, 4 * width, 3, stride=2),
        )
        self.residual = nn.Sequential(*(_Residual(4 * width) for _ in range(n_residual)))
        self.up = nn.Sequential(_up(4 * width, 2 * width), _up(2 * width, width))
        self.out = nn.Sequential(nn.ReflectionPad2d(4), nn.Conv2d(width, 3, 9))

    def forward(self, frame: Tensor) -> Tensor:
        h, w = frame.shape[-2:]
        padded = F.pad(frame, (0, -w % STRIDE, 0, -h % STRIDE), mode="replicate")  # (B, 3, H', W')
        x = self.residual(self.down(padded))  # (B, 4 width, H'/4, W'/4)
        return torch.sigmoid(self.out(self.up(x)))[..., :h, :w]  # (B, 3, H, W)


class _Residual(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv(channels, channels, 3), _conv(channels, channels, 3, relu=False))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


def _conv(c_in: int, c_out: int, kernel: int, *, stride: int = 1, relu: bool = True) -> nn.Sequential:
    layers = [nn.ReflectionPad2d(kernel // 2), nn.Conv2d(c_in, c_out, kernel, stride),
              nn.InstanceNorm2d(c_out, affine=True)]
    return nn.Sequential(*layers, nn.ReLU()) if relu else nn.Sequential(*layers)


def _up(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), _conv(c_in, c_out, 3))


def save_network(path: Path, network: TransformNet, trained_for: dict[str, Any]) -> None:
    """Write `network` and what it was `trained_for` (JSON-ready values) to `path`, whole or not at
    all. Raises OutputError naming the file."""
    from safetensors.torch import save_file

    description = {"architecture": ARCHITECTURE, "version": VERSION, "width": network.width,
                   "n_residual": network.n_residual, "trained_for": trained_for}
    tensors = {name: value.detach().cpu().contiguous() for name, value in network.state_dict().items()}
    temp = path.with_name(f".{path.name}.tmp")
    try:
        save_file(tensors, str(temp), metadata={MODEL_KEY: json.dumps(description, sort_keys=True)})
        os.replace(temp, path)
    except OSError as error:
        temp.unlink(missing_ok=True)
        raise OutputError(f"{path}: cannot write the model ({error.strerror or error})") from None


def load_network(path: Path) -> tuple[TransformNet, dict[str, Any]]:
    """The network in `path` (on the CPU, in eval mode) and what it was trained for.

    Raises:
        InputError: the file is missing, not a safetensors file, not a stylereel model, of another
            architecture version, or its tensors do not fit the network it describes.
    """
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    except FileNotFoundError:
        raise InputError(f"{path}: no such model file") from None
    except (SafetensorError, OSError, ValueError) as error:
        raise InputError(f"{path}: not a model file ({str(error).splitlines()[0] if str(error) else 'unreadable'})"
                         ) from None
    description = _description(path, metadata)
    network = TransformNet(width=description["width"], n_residual=description["n_residual"])
    try:
        network.load_state_dict(tensors)
    except RuntimeError:
        raise InputError(f"{path}: its tensors do not fit the network it describes (a damaged file)") from None
    return network.eval(), description["trained_for"]


def _description(path: Path, metadata: dict[str, str]) -> dict[str, Any]:
    """The JSON description in a model file's metadata, checked: InputError otherwise."""
    try:
        description = json.loads(metadata[MODEL_KEY])
        architecture, version = description["architecture"], description["version"]
        shape = int(description["width"]), int(description["n_residual"])
    except (KeyError, TypeError, ValueError):
        raise InputError(f"{path}: not a stylereel model (no {MODEL_KEY} description in its metadata)") from None
    if architecture != ARCHITECTURE:
        raise InputError(f"{path}: holds a {architecture!r} network, not a stylereel model")
    if version != VERSION:
        raise InputError(f"{path}: a model of architecture version {version}; this stylereel reads version "
                         f"{VERSION}: train it again")
    if not all(0 < value <= 512 for value in shape):
        raise InputError(f"{path}: describes an impossible network (width {shape[0]}, {shape[1]} blocks)")
    return description
