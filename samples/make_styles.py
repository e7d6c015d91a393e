"""Generate the sample style images under samples/styles/.

Makes three 512x512 PNGs, each drawn procedurally so the project owns them outright:

- ``swirl.png``: swirling brush strokes in blues and yellows, made with line-integral
  convolution (LIC) along a field of a few vortices, with impasto-like shading.
- ``mosaic.png``: stained glass: jittered Voronoi cells in saturated glass colours, each
  with a soft gradient and mottle, separated by thick dark lead lines.
- ``ink.png``: a pen-and-ink study of spheres on a table, cross-hatched on warm paper,
  with more layers of hatching where the tone is darker.

The outputs are committed; rerun ``python samples/make_styles.py`` only to change them.
The script is seeded, so reruns give the same pixels on the same numpy and OpenCV.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

SIZE = 512
STYLES_DIR = Path(__file__).parent / "styles"


# ---------------------------------------------------------------- shared helpers

def smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Value noise in [0, 1]: a cells x cells random grid upsampled bicubically."""
    grid = rng.random((cells + 3, cells + 3), dtype=np.float32)
    big = cv2.resize(grid, (size * (cells + 3) // cells,) * 2, interpolation=cv2.INTER_CUBIC)
    # Crop off the border cells, where the cubic kernel sees the edge.
    offset = size // cells
    return big[offset:offset + size, offset:offset + size]


def fbm(rng: np.random.Generator, size: int, base_cells: int, octaves: int) -> np.ndarray:
    """Fractal noise in [0, 1]: octaves of value noise, each twice as fine, half as strong."""
    total = np.zeros((size, size), np.float32)
    weight_sum = 0.0
    for octave in range(octaves):
        weight = 0.5 ** octave
        total += weight * smooth_noise(rng, size, base_cells * 2 ** octave)
        weight_sum += weight
    total /= weight_sum
    return (total - total.min()) / (total.max() - total.min())


def apply_palette(t: np.ndarray, stops: list[tuple[float, tuple[int, int, int]]]) -> np.ndarray:
    """Map t in [0, 1] (H, W) through piecewise-linear colour stops to float RGB (H, W, 3)."""
    positions = np.array([p for p, _ in stops], np.float32)
    colours = np.array([c for _, c in stops], np.float32) / 255.0
    channels = [np.interp(t, positions, colours[:, k]) for k in range(3)]
    return np.stack(channels, axis=-1).astype(np.float32)  # (H, W, 3)


def save_png(rgb: np.ndarray, name: str) -> Path:
    """Write float RGB in [0, 1] as an 8-bit PNG under styles/ and return the path."""
    STYLES_DIR.mkdir(parents=True, exist_ok=True)
    path = STYLES_DIR / name
    Image.fromarray((np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)).save(path, optimize=True)
    return path


def emboss(height: np.ndarray, strength: float) -> np.ndarray:
    """Lambert-like shading factor around 1 for a height map lit from the upper left."""
    gy, gx = np.gradient(height)
    return 1.0 + strength * (-gx - gy)


# ---------------------------------------------------------------- swirl (LIC)

def vortex_field(size: int, vortices: list[tuple[float, float, float, float]]) -> np.ndarray:
    """Unit vector field (H, W, 2) summed from vortices (cx, cy, radius, spin) plus a drift."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    vx = np.full((size, size), 0.35, np.float32)  # a gentle left-to-right drift, like wind
    vy = 0.08 * np.sin(x / size * 2.0 * np.pi * 1.5).astype(np.float32)
    for cx, cy, radius, spin in vortices:
        dx, dy = x - cx * size, y - cy * size
        falloff = radius * size / (dx * dx + dy * dy + (0.25 * radius * size) ** 2)
        # Mostly rotation, plus a slight inward pull so strokes spiral rather than circle.
        vx += falloff * (-spin * dy - 0.25 * dx)
        vy += falloff * (spin * dx - 0.25 * dy)
    norm = np.sqrt(vx * vx + vy * vy) + 1e-6
    return np.stack([vx / norm, vy / norm], axis=-1)  # (H, W, 2)


def line_integral_convolution(texture: np.ndarray, field: np.ndarray, *, steps: int,
                              step_len: float) -> np.ndarray:
    """Average texture along streamlines of a unit field, steps each way (Cabral and Leedom 1993)."""
    size = texture.shape[0]
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    total = texture.copy()
    weight_sum = np.ones_like(texture)
    for direction in (1.0, -1.0):
        px, py = x.copy(), y.copy()
        for step in range(1, steps + 1):
            # Sample the field at the current point (bilinear), then step along it (Euler).
            v = cv2.remap(field, px, py, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
            px += direction * step_len * v[..., 0]
            py += direction * step_len * v[..., 1]
            # A tapered (Hann-like) kernel gives strokes soft ends rather than a box blur.
            weight = 0.5 + 0.5 * np.cos(np.pi * step / (steps + 1))
            total += weight * cv2.remap(texture, px, py, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
            weight_sum += weight
    return total / weight_sum


def stroke_noise(rng: np.random.Generator, size: int, width: int) -> np.ndarray:
    """White noise at a coarser grain, so LIC streaks come out brush-wide rather than hairline."""
    coarse = rng.random((size // width, size // width), dtype=np.float32)
    return cv2.resize(coarse, (size, size), interpolation=cv2.INTER_LINEAR)


def make_swirl(rng: np.random.Generator) -> np.ndarray:
    """Van Gogh-like swirling strokes in blues and yellows; float RGB (H, W, 3)."""
    vortices = [(0.30, 0.32, 0.22, 1.0), (0.72, 0.58, 0.18, -1.0),
                (0.22, 0.78, 0.12, 1.0), (0.80, 0.15, 0.10, 1.0)]
    field = vortex_field(SIZE, vortices)
    # Two LIC passes: one for the stroke texture, one to streak the colour along the strokes.
    strokes = line_integral_convolution(stroke_noise(rng, SIZE, 3), field, steps=22, step_len=1.3)
    streaks = line_integral_convolution(stroke_noise(rng, SIZE, 5), field, steps=22, step_len=1.5)
    strokes = (strokes - strokes.mean()) / strokes.std()
    streaks = (streaks - streaks.mean()) / streaks.std()

    # Colour index: bright near the vortex cores (the "stars"), dark blue elsewhere, low-frequency wander.
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) / SIZE
    glow = sum(np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (0.35 * r) ** 2) for cx, cy, r, _ in vortices)
    t = 0.25 + 0.55 * np.clip(glow, 0.0, 1.0) + 0.30 * (fbm(rng, SIZE, 3, 3) - 0.5)
    t = np.clip(t + 0.07 * streaks, 0.0, 1.0)
    palette = [(0.00, (14, 26, 68)), (0.22, (28, 58, 128)), (0.42, (52, 104, 178)),
               (0.55, (118, 162, 200)), (0.66, (214, 214, 170)), (0.78, (240, 206, 84)),
               (0.90, (222, 156, 40)), (1.00, (250, 236, 170))]
    rgb = apply_palette(t, palette)

    # Stroke texture modulates brightness; the embossed stroke height mimics thick impasto paint.
    shade = (1.0 + 0.12 * strokes) * emboss(cv2.GaussianBlur(strokes, (0, 0), 0.8), 0.35)
    return rgb * shade[..., None]


# ---------------------------------------------------------------- mosaic (Voronoi)

def jittered_seeds(rng: np.random.Generator, size: int, grid: int) -> np.ndarray:
    """Seed points (N, 2) as x, y: one per grid cell, jittered so cells look hand-cut."""
    cell = size / grid
    gy, gx = np.mgrid[0:grid, 0:grid].astype(np.float32)
    jitter = rng.uniform(0.1, 0.9, size=(grid, grid, 2)).astype(np.float32)
    return np.stack([(gx + jitter[..., 0]) * cell, (gy + jitter[..., 1]) * cell], axis=-1).reshape(-1, 2)


def voronoi(seeds: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Nearest seed index (H, W) and distance to the nearest cell border (H, W) in pixels."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    d1 = np.full((size, size), np.inf, np.float32)
    d2 = np.full((size, size), np.inf, np.float32)
    i1 = np.zeros((size, size), np.int32)
    i2 = np.zeros((size, size), np.int32)
    for index, (sx, sy) in enumerate(seeds):
        d = (x - sx) ** 2 + (y - sy) ** 2  # squared distances
        closer, second = d < d1, (d >= d1) & (d < d2)
        d2 = np.where(closer, d1, np.where(second, d, d2))
        i2 = np.where(closer, i1, np.where(second, index, i2))
        d1 = np.where(closer, d, d1)
        i1 = np.where(closer, index, i1)
    # Exact distance to the bisector of the two nearest seeds, so lead lines have even width
    # (d2 - d1 alone would make lines fatter between far-apart seeds).
    gap = np.linalg.norm(seeds[i1] - seeds[i2], axis=-1) + 1e-6
    return i1, (d2 - d1) / (2.0 * gap)


def make_mosaic(rng: np.random.Generator) -> np.ndarray:
    """Stained glass: saturated cells with soft gradients, dark rounded lead lines; float RGB."""
    seeds = jittered_seeds(rng, SIZE, 11)
    cell_index, border = voronoi(seeds, SIZE)

    # Cell colours: hue follows a slow radial design (warm centre, cool rim), with random picks
    # from the glass palette so neighbours differ.
    glass = np.array([(170, 22, 38), (196, 70, 20), (232, 168, 24), (30, 120, 60), (16, 70, 160),
                      (24, 130, 170), (96, 36, 130), (210, 190, 120)], np.float32) / 255.0
    centre = np.linalg.norm(seeds / SIZE - 0.5, axis=-1)
    warm = rng.random(len(seeds)) < np.clip(1.2 - 2.6 * centre, 0.1, 0.9)
    picks = np.where(warm, rng.choice([0, 1, 2, 7], len(seeds)), rng.choice([3, 4, 5, 6], len(seeds)))
    rgb = glass[picks][cell_index]  # (H, W, 3)

    # Light through glass: brighter towards each cell's upper-left and in the cell middle,
    # plus mottled thickness noise, so cells are not flat fills.
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    offset = np.stack([x, y], axis=-1) - seeds[cell_index]
    tilt = rng.uniform(-1.0, 1.0, (len(seeds), 2)).astype(np.float32)[cell_index]
    gradient = 1.0 + 0.010 * np.sum(offset * tilt, axis=-1) + 0.25 * np.clip(border / 18.0, 0, 1)
    mottle = 0.85 + 0.3 * fbm(rng, SIZE, 16, 3)
    rgb = rgb * (gradient * mottle)[..., None] * 0.95

    # Lead came: dark, with a soft highlight along its crest so it reads as rounded metal.
    half_width = 3.2
    lead_profile = np.clip(1.0 - border / half_width, 0.0, 1.0)
    lead = (0.06 + 0.10 * lead_profile ** 2)[..., None] * np.array([1.0, 1.0, 1.05], np.float32)
    coverage = np.clip(half_width + 0.7 - border, 0.0, 1.0)[..., None]  # 1 px anti-aliased edge
    return rgb * (1.0 - coverage) + lead * coverage


# ---------------------------------------------------------------- ink (hatching)

def hatch_layer(rng: np.random.Generator, size: int, *, angle_deg: float, spacing: float) -> np.ndarray:
    """Ink coverage (H, W) in [0, 1] for wavering pen lines at an angle, broken into strokes."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    angle = np.deg2rad(angle_deg)
    wobble = spacing * 0.6 * (smooth_noise(rng, size, 8) - 0.5)
    across = x * np.cos(angle) + y * np.sin(angle) + wobble
    along = -x * np.sin(angle) + y * np.cos(angle)
    line = np.floor(across / spacing)
    distance = np.abs(((across / spacing) % 1.0) - 0.5) * spacing  # to the nearest line centre
    # Per-line pseudo-random stroke length and phase (a hash of the line number), so each line is
    # a run of separate pen strokes with small gaps, as a hand would draw it.
    hashed = np.sin(line * 12.9898 + angle_deg) * 43758.5453
    hashed -= np.floor(hashed)
    stroke_len = 90.0 + 120.0 * hashed
    position = (along / stroke_len + hashed * 7.0) % 1.0
    taper = np.clip(np.minimum(position, 0.95 - position) / 0.06, 0.0, 1.0)  # thin ends, then a gap
    width = 0.5 + 0.9 * taper
    return np.clip(width - distance + 0.5, 0.0, 1.0) * (taper > 0)


def sphere_tone(size: int, spheres: list[tuple[float, float, float]]) -> np.ndarray:
    """Tone (H, W) in [0, 1] (1 = dark) of a still life: lit spheres with cast shadows on a table."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    # A pale wall behind a table edge; the table darkens towards the viewer.
    tone = np.where(y < 0.58, 0.15 + 0.14 * y, 0.32 + 0.4 * (y - 0.58))
    light = np.array([-0.55, -0.6, 0.58], np.float32)
    for cx, cy, r in spheres:
        # Cast shadow: an ellipse offset away from the light, drawn first so the sphere covers it.
        shadow = ((x - cx - 0.6 * r) / (1.3 * r)) ** 2 + ((y - cy - 0.75 * r) / (0.55 * r)) ** 2
        tone = np.where(shadow < 1.0, np.maximum(tone, 0.85 - 0.15 * shadow), tone)
        nx, ny = (x - cx) / r, (y - cy) / r
        inside = nx * nx + ny * ny < 1.0
        nz = np.sqrt(np.clip(1.0 - nx * nx - ny * ny, 0.0, 1.0))
        lambert = np.clip(nx * light[0] + ny * light[1] + nz * light[2], 0.0, 1.0)
        tone = np.where(inside, 0.95 - 0.9 * lambert, tone)
    return np.clip(tone, 0.0, 1.0)


def make_ink(rng: np.random.Generator) -> np.ndarray:
    """Cross-hatched pen study of spheres on warm paper: hatch layers added by tone; float RGB."""
    spheres = [(0.36, 0.42, 0.22), (0.74, 0.62, 0.14), (0.18, 0.80, 0.09)]
    tone = sphere_tone(SIZE, spheres) + 0.18 * (fbm(rng, SIZE, 4, 3) - 0.5)
    ink = np.zeros((SIZE, SIZE), np.float32)
    for level, angle, spacing in [(0.22, 40.0, 8.0), (0.45, -50.0, 7.0), (0.65, 80.0, 6.0), (0.82, 15.0, 5.0)]:
        # Each layer fades in over a short tone range so hatching thins out rather than stopping.
        presence = np.clip((tone - level) / 0.08, 0.0, 1.0)
        pressure = 0.55 + 0.45 * smooth_noise(rng, SIZE, 40)
        ink = np.maximum(ink, presence * pressure * hatch_layer(rng, SIZE, angle_deg=angle, spacing=spacing))
    # Outlines: a steady pen line along the table edge and each sphere's rim.
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    behind = np.any([np.hypot(x - cx * SIZE, y - cy * SIZE) < r * SIZE for cx, cy, r in spheres], axis=0)
    ink = np.maximum(ink, 0.8 * np.clip(1.5 - np.abs(y - 0.58 * SIZE), 0.0, 1.0) * ~behind)
    for cx, cy, r in spheres:
        rim = np.abs(np.hypot(x - cx * SIZE, y - cy * SIZE) - r * SIZE)
        ink = np.maximum(ink, np.clip(1.8 - rim, 0.0, 1.0))
    paper = np.array([0.95, 0.90, 0.78], np.float32) * (0.93 + 0.07 * fbm(rng, SIZE, 32, 2))[..., None]
    ink_colour = np.array([0.10, 0.08, 0.12], np.float32)
    return paper * (1.0 - ink[..., None]) + ink_colour * ink[..., None]


def main() -> None:
    """Render every style with its own seed so changing one leaves the others unchanged."""
    for name, make, seed in [("swirl.png", make_swirl, 1889), ("mosaic.png", make_mosaic, 1250),
                             ("ink.png", make_ink, 1514)]:
        path = save_png(make(np.random.default_rng(seed)), name)
        print(f"wrote {path} ({path.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
