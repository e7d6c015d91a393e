"""Generate the sample content clip samples/clip.mp4 and the still samples/content.jpg.

The clip is 3 s of a procedurally drawn landscape at 320x180, 24 fps (H.264, yuv420p,
CRF 20) with a stereo AAC track (44.1 kHz) playing a short sine-tone melody. It is made
to exercise the video path of stylereel:

- the camera pans slowly right over layers at different depths (sky, sun, clouds, far
  mountains, wooded hills, a lake, a meadow), so optical flow sees parallax;
- a sailboat crosses the lake and a beach ball bounces and spins across the meadow, so
  there is object motion on top of the camera motion, and occlusions around both;
- every layer is textured, so the flow has something to track;
- the audio lets you check that ``stylereel video`` copies the sound track unchanged.

``content.jpg`` is frame 36 of the clip, the input of the ``image`` command example.
The outputs are committed; rerun ``python samples/make_clip.py`` only to change them.
``--scale 2 -o PATH`` writes the same scene drawn at 640x360 to PATH (and no still), for measuring
at 512 px; its random textures fall differently from the bundled clip's.
The drawing is seeded and the encoder set to be reproducible, so reruns give the same file
(other FFmpeg/x264 versions may encode it differently).
"""

from __future__ import annotations

import argparse
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from PIL import Image

HERE = Path(__file__).parent
SCALE = 1  # drawing scale: 2 draws the same scene at 640x360 (`--scale`); every length below is at scale 1
WIDTH, HEIGHT = 320, 180
FPS = 24
N_FRAMES = 72  # 3 s
SAMPLE_RATE = 44100
PAN_PX_PER_FRAME = 1.6  # camera speed, measured on the nearest layer (the meadow)
STILL_FRAME = 36


# ---------------------------------------------------------------- noise helpers

def value_noise(rng: np.random.Generator, h: int, w: int, cell: float) -> np.ndarray:
    """Smooth noise (h, w) in about [0, 1] with features about `cell` pixels wide."""
    grid = rng.random((int(h / cell) + 3, int(w / cell) + 3), dtype=np.float32)
    big = cv2.resize(grid, (int(grid.shape[1] * cell), int(grid.shape[0] * cell)),
                     interpolation=cv2.INTER_CUBIC)
    return big[int(cell):int(cell) + h, int(cell):int(cell) + w]


def fbm(rng: np.random.Generator, h: int, w: int, cell: float, octaves: int = 4) -> np.ndarray:
    """Fractal noise (h, w) normalised to [0, 1]: octaves of value noise, finer and weaker."""
    total = sum(0.5 ** k * value_noise(rng, h, w, max(cell / 2 ** k, 1.0)) for k in range(octaves))
    return (total - total.min()) / (total.max() - total.min())


def ridge(rng: np.random.Generator, w: int, cell: float, base: float, amplitude: float) -> np.ndarray:
    """A 1-D skyline (w,) in pixel rows: fractal noise around `base`, `amplitude` tall."""
    return base - amplitude * fbm(rng, 1, w, cell, octaves=5)[0]


# ---------------------------------------------------------------- static layers

def layer_width(depth: float) -> int:
    """Pixels a layer needs so the camera never runs off it; depth 1 moves at full pan speed."""
    return WIDTH + int(np.ceil(depth * PAN_PX_PER_FRAME * SCALE * N_FRAMES)) + 4


def under_ridge(skyline: np.ndarray) -> np.ndarray:
    """Alpha (H, W): 1 below the skyline, 0 above, with a one-pixel anti-aliased edge."""
    rows = np.arange(HEIGHT, dtype=np.float32)[:, None]
    return np.clip(rows - skyline[None, :] + 0.5, 0.0, 1.0)


def sky_layer(rng: np.random.Generator) -> np.ndarray:
    """RGBA sky: a blue-to-warm gradient with a glowing sun; nearly static (depth 0.02)."""
    w = layer_width(0.02)
    y, x = np.mgrid[0:HEIGHT, 0:w].astype(np.float32)
    t = (y / HEIGHT)[..., None]
    rgb = (1 - t) * np.array([0.25, 0.45, 0.80]) + t * np.array([0.98, 0.82, 0.62])
    # The sun: a bright disc plus a wide soft glow, low on the left.
    d = np.hypot(x - 95.0 * SCALE, y - 62.0 * SCALE) / SCALE
    glow = np.exp(-(d / 38.0) ** 2)[..., None] * 0.45 + np.clip((14.0 - d) * SCALE, 0.0, 1.0)[..., None]
    rgb = rgb + glow * (np.array([1.0, 0.93, 0.7]) - rgb)
    return np.dstack([rgb, np.ones((HEIGHT, w))]).astype(np.float32)


def cloud_layer(rng: np.random.Generator) -> np.ndarray:
    """RGBA clouds: thresholded fractal noise, thicker and brighter on top; depth 0.08."""
    w = layer_width(0.08) + 40 * SCALE  # extra width for the clouds' own drift
    density = fbm(rng, HEIGHT, w, 40.0 * SCALE, octaves=5)
    fade = np.clip(1.0 - np.arange(HEIGHT) / (90.0 * SCALE), 0.0, 1.0)[:, None]  # clouds only high up
    alpha = np.clip((density - 0.5) * 3.0, 0.0, 0.9) * fade
    shade = 0.82 + 0.18 * np.clip(density * 1.4 - 0.3, 0.0, 1.0)
    rgb = shade[..., None] * np.array([1.0, 0.97, 0.95])
    return np.dstack([rgb, alpha]).astype(np.float32)


def mountain_layer(rng: np.random.Generator) -> np.ndarray:
    """RGBA far mountains: hazy blue-violet with rocky texture and snowy peaks; depth 0.2."""
    w = layer_width(0.2)
    skyline = ridge(rng, w, 60.0 * SCALE, base=104.0 * SCALE, amplitude=46.0 * SCALE)
    rows = np.arange(HEIGHT, dtype=np.float32)[:, None]
    texture = fbm(rng, HEIGHT, w, 6.0 * SCALE, octaves=3)
    rgb = np.array([0.45, 0.50, 0.68]) * (0.8 + 0.35 * texture)[..., None]
    # Snow above a fixed altitude, patchy where the rock texture is dark.
    snow = np.clip((80.0 * SCALE - rows) / (6.0 * SCALE), 0.0, 1.0) * np.clip((texture - 0.3) / 0.15, 0.0, 1.0)
    rgb = rgb + snow[..., None] * (np.array([0.93, 0.94, 0.98]) - rgb)
    return np.dstack([rgb, under_ridge(skyline)]).astype(np.float32)


def hill_layer(rng: np.random.Generator) -> np.ndarray:
    """RGBA wooded hills: textured green with rows of round trees on the crest; depth 0.45."""
    w = layer_width(0.45)
    skyline = ridge(rng, w, 90.0 * SCALE, base=118.0 * SCALE, amplitude=28.0 * SCALE)
    texture = fbm(rng, HEIGHT, w, 5.0 * SCALE, octaves=3)
    rgb = np.array([0.30, 0.52, 0.22]) * (0.75 + 0.45 * texture)[..., None]
    alpha = under_ridge(skyline)
    # Trees: dark discs along the crest, lit a little from the sun's side (upper left).
    y, x = np.mgrid[0:HEIGHT, 0:w].astype(np.float32)
    spots = np.arange(4.0 * SCALE, w, 9.0 * SCALE)
    for tx in spots + rng.uniform(-3.0, 3.0, len(spots)) * SCALE:
        radius = rng.uniform(4.0, 7.0) * SCALE
        ty = skyline[int(min(tx, w - 1))] + rng.uniform(0.0, 8.0) * SCALE
        d = np.hypot(x - tx, y - ty)
        inside = np.clip(radius - d + 0.5, 0.0, 1.0)[..., None]
        lit = np.clip(((tx - x) + (ty - y)) / radius, -1.0, 1.0)[..., None]
        tree = np.array([0.10, 0.28, 0.12]) * (1.0 + 0.35 * lit) * (0.85 + 0.3 * texture[..., None])
        rgb = rgb * (1 - inside) + tree * inside
        alpha = np.maximum(alpha, inside[..., 0])
    return np.dstack([rgb, alpha]).astype(np.float32)


def lake_layer(rng: np.random.Generator) -> np.ndarray:
    """RGBA lake band: sky-tinted water with horizontal ripple streaks; depth 0.6."""
    w = layer_width(0.6)
    ripples = value_noise(rng, HEIGHT * 5, w, 8.0 * SCALE)
    ripples = cv2.resize(ripples, (w, HEIGHT), interpolation=cv2.INTER_AREA)  # squash: flat streaks
    rows = np.arange(HEIGHT, dtype=np.float32)[:, None]
    depth_tint = np.clip((rows - 122.0 * SCALE) / (24.0 * SCALE), 0.0, 1.0)
    rgb = ((1 - depth_tint)[..., None] * np.array([0.62, 0.70, 0.85])
           + depth_tint[..., None] * np.array([0.22, 0.38, 0.58])) * (0.85 + 0.3 * ripples)[..., None]
    alpha = np.broadcast_to(np.clip(rows - 121.5 * SCALE, 0.0, 1.0), (HEIGHT, w))
    return np.dstack([rgb, alpha]).astype(np.float32)


def meadow_layer(rng: np.random.Generator) -> np.ndarray:
    """RGBA meadow: grassy blade texture with scattered flowers; the nearest layer (depth 1)."""
    w = layer_width(1.0)
    skyline = ridge(rng, w, 120.0 * SCALE, base=153.0 * SCALE, amplitude=7.0 * SCALE)
    # Grass: noise stretched vertically into blades, darker towards the bottom (closer, shadier).
    blades = cv2.resize(rng.random((HEIGHT // (6 * SCALE), w), dtype=np.float32), (w, HEIGHT),
                        interpolation=cv2.INTER_LINEAR)
    patches = fbm(rng, HEIGHT, w, 30.0 * SCALE, octaves=3)
    rgb = np.array([0.38, 0.62, 0.20]) * (0.6 + 0.35 * blades + 0.3 * patches)[..., None]
    # Flowers: small bright dots in a few colours.
    colours = np.array([[0.95, 0.90, 0.30], [0.95, 0.95, 0.95], [0.90, 0.35, 0.45]])
    for fx, fy, c in zip(rng.uniform(0, w, 140), rng.uniform(155 * SCALE, HEIGHT, 140), rng.integers(0, 3, 140)):
        cv2.circle(rgb, (int(fx * 4), int(fy * 4)), 5 * SCALE, colours[c].tolist(), -1, cv2.LINE_AA, shift=2)
    return np.dstack([rgb, under_ridge(skyline)]).astype(np.float32)


# ---------------------------------------------------------------- moving objects

def draw_boat(rgba: np.ndarray, x: float, y: float, roll: float) -> None:
    """Draw a small sailboat (hull, mast, sails, flag) into an RGBA canvas, waterline centred at x, y."""
    def points(coords: list[tuple[float, float]]) -> np.ndarray:
        c, s = np.cos(roll), np.sin(roll)
        rotated = [(x + dx * SCALE * c - dy * SCALE * s, y + dx * SCALE * s + dy * SCALE * c) for dx, dy in coords]
        return (np.array(rotated) * 16).astype(np.int32)  # shift=4: 1/16 px precision

    hull = points([(-13, -4), (13, -4), (9, 2), (-9, 2)])
    sail = points([(1, -6), (1, -30), (15, -7)])
    jib = points([(-1, -7), (-1, -26), (-11, -7)])
    flag = points([(1, -30), (1, -34), (7, -32)])
    stripe = points([(-12, -2), (12, -2), (11.4, -1), (-11.4, -1)])
    mast = points([(0, -4), (0, -31)])
    cv2.fillPoly(rgba, [hull], (0.45, 0.20, 0.10, 1.0), cv2.LINE_AA, shift=4)
    cv2.fillPoly(rgba, [stripe], (0.90, 0.85, 0.70, 1.0), cv2.LINE_AA, shift=4)
    cv2.line(rgba, tuple(mast[0]), tuple(mast[1]), (0.2, 0.15, 0.1, 1.0), SCALE, cv2.LINE_AA, shift=4)
    cv2.fillPoly(rgba, [sail], (0.97, 0.95, 0.88, 1.0), cv2.LINE_AA, shift=4)
    cv2.fillPoly(rgba, [jib], (0.85, 0.83, 0.78, 1.0), cv2.LINE_AA, shift=4)
    cv2.fillPoly(rgba, [flag], (0.85, 0.15, 0.15, 1.0), cv2.LINE_AA, shift=4)


def boat_over(frame: np.ndarray, index: int, pan: float, lake_depth: float) -> np.ndarray:
    """Composite the sailboat and its faint reflection onto the frame."""
    # The boat sails left (world x shrinks) while the camera pans right, bobbing on the swell.
    x = (250.0 - 0.9 * index) * SCALE - lake_depth * pan
    waterline = (134.0 + 0.6 * np.sin(index / 5.0)) * SCALE
    boat = np.zeros((HEIGHT, WIDTH, 4), np.float32)
    draw_boat(boat, x, waterline, roll=0.04 * np.sin(index / 7.0))
    # OpenCV's anti-aliasing blends every channel, leaving edge colours premultiplied; undo that.
    boat[..., :3] /= np.maximum(boat[..., 3:], 1e-6)
    # Mirror about the waterline for the reflection, ruffled by shifting rows and kept faint.
    row = int(round(waterline))
    reflection = np.zeros_like(boat)
    depth = min(row + 1, HEIGHT - row - 1)
    reflection[row + 1:row + 1 + depth] = boat[row - depth + 1:row + 1][::-1]
    for k in range(row + 1, row + 1 + depth):
        reflection[k] = np.roll(reflection[k], int(round(1.2 * SCALE * np.sin(k / SCALE * 1.7 + index * 0.8))), axis=0)
    frame = over(frame, reflection * np.array([1.0, 1.0, 1.0, 0.35], np.float32))
    return over(frame, boat)


def beach_ball(rel_x: np.ndarray, rel_y: np.ndarray, radius: float, spin: float) -> np.ndarray:
    """Shade a beach ball at pixel offsets from its centre; RGBA (..., 4), rolled by `spin` radians."""
    nx, ny = rel_x / radius, rel_y / radius
    nz = np.sqrt(np.clip(1.0 - nx * nx - ny * ny, 0.0, 1.0))
    # Into the ball's own frame: undo the roll, then tip the pole 30 degrees off the view axis,
    # so the rolling shows as the coloured segments turning like a wheel.
    c, s = np.cos(-spin), np.sin(-spin)
    bx, by = c * nx - s * ny, s * nx + c * ny
    tilt = np.deg2rad(30.0)
    py, pz = np.cos(tilt) * by - np.sin(tilt) * nz, np.sin(tilt) * by + np.cos(tilt) * nz
    segment = (np.floor((np.arctan2(bx, py) + np.pi) / (np.pi / 3)).astype(int)) % 6
    colours = np.array([[0.92, 0.15, 0.12], [0.97, 0.97, 0.95], [0.10, 0.35, 0.85],
                        [0.97, 0.97, 0.95], [0.98, 0.80, 0.10], [0.97, 0.97, 0.95]])
    albedo = np.where((np.abs(pz) > 0.95)[..., None], 0.97, colours[segment])  # white pole caps
    # Lambert plus a specular highlight, lit from the sun's side (upper left, in front).
    light = np.array([-0.5, -0.6, 0.62]) / np.linalg.norm([-0.5, -0.6, 0.62])
    lambert = np.clip(nx * light[0] + ny * light[1] + nz * light[2], 0.0, 1.0)
    specular = np.clip(2 * lambert * nz - light[2], 0.0, 1.0) ** 24
    rgb = albedo * (0.25 + 0.8 * lambert)[..., None] + 0.6 * specular[..., None]
    alpha = (nx * nx + ny * ny < 1.0).astype(np.float32)[..., None]
    return np.concatenate([rgb * alpha, alpha], axis=-1).astype(np.float32)  # premultiplied


def ball_layer(centre_x: float, centre_y: float, radius: float, spin: float) -> np.ndarray:
    """Frame-sized RGBA layer with the ball at a sub-pixel centre, anti-aliased by 4x supersampling."""
    supersample = 4
    half = int(np.ceil(radius)) + 1
    x0, y0 = int(np.floor(centre_x)) - half, int(np.floor(centre_y)) - half
    size = 2 * half + 1
    # Sample points spread evenly inside each output pixel; pixel k covers k - 0.5 .. k + 0.5.
    sub = (np.arange(size * supersample, dtype=np.float32) + 0.5) / supersample - 0.5
    rel_y, rel_x = np.meshgrid(y0 + sub - centre_y, x0 + sub - centre_x, indexing="ij")
    patch = cv2.resize(beach_ball(rel_x, rel_y, radius, spin), (size, size), interpolation=cv2.INTER_AREA)
    patch[..., :3] /= np.maximum(patch[..., 3:], 1e-6)  # back from premultiplied
    return paste(patch, x0, y0)


def shadow_layer(centre_x: float, ground: float, radius: float, darkness: float) -> np.ndarray:
    """Frame-sized RGBA layer with a soft, flattened shadow ellipse on the ground."""
    alpha = np.zeros((HEIGHT, WIDTH), np.float32)
    cv2.ellipse(alpha, (int(centre_x * 16), int(ground * 16)), (int(radius * 16), int(0.32 * radius * 16)),
                0, 0, 360, darkness, -1, cv2.LINE_AA, shift=4)
    alpha = cv2.GaussianBlur(alpha, (0, 0), 1.5 * SCALE)
    return np.dstack([np.zeros((HEIGHT, WIDTH, 3), np.float32), alpha])


def paste(patch: np.ndarray, x0: int, y0: int) -> np.ndarray:
    """A transparent frame-sized RGBA layer with an RGBA patch at x0, y0, clipped to the frame."""
    layer = np.zeros((HEIGHT, WIDTH, 4), np.float32)
    h, w = patch.shape[:2]
    left, top = max(x0, 0), max(y0, 0)
    right, bottom = min(x0 + w, WIDTH), min(y0 + h, HEIGHT)
    if left < right and top < bottom:
        layer[top:bottom, left:right] = patch[top - y0:bottom - y0, left - x0:right - x0]
    return layer


def ball_over(frame: np.ndarray, index: int, pan: float) -> np.ndarray:
    """Composite the beach ball bouncing across the meadow, and its shadow, onto the frame."""
    t = index / FPS
    radius, ground = 11.0 * SCALE, 168.0 * SCALE
    world_x = (60.0 + 70.0 * t) * SCALE  # faster than the camera, so it overtakes the view
    height = 55.0 * SCALE * abs(np.sin(np.pi * t / 1.1))  # a bounce every 1.1 s
    x = world_x + 120.0 * SCALE - pan  # screen x: world minus the meadow's pan
    # The shadow shrinks and fades as the ball rises.
    scale = 1.0 - height / (110.0 * SCALE)
    frame = over(frame, shadow_layer(x, ground, radius * scale, 0.6 * scale))
    # Rolling without slipping: turned by distance / radius, clockwise as it moves right.
    return over(frame, ball_layer(x, ground - radius - height, radius, spin=world_x / radius))


# ---------------------------------------------------------------- frame assembly

def shifted(layer: np.ndarray, offset: float) -> np.ndarray:
    """Crop a WIDTH-wide window of a layer starting at a sub-pixel x offset (bilinear)."""
    matrix = np.float32([[1, 0, -offset], [0, 1, 0]])
    return cv2.warpAffine(layer, matrix, (WIDTH, HEIGHT), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


def over(frame: np.ndarray, layer: np.ndarray) -> np.ndarray:
    """Alpha-composite an RGBA layer over an RGB frame."""
    alpha = layer[..., 3:]
    return frame * (1 - alpha) + layer[..., :3] * alpha


def render_frames(rng: np.random.Generator):
    """Yield the N_FRAMES frames as uint8 RGB (HEIGHT, WIDTH, 3), back to front per frame."""
    layers = {name: make(rng) for name, make in [("sky", sky_layer), ("clouds", cloud_layer),
              ("mountains", mountain_layer), ("hills", hill_layer), ("lake", lake_layer),
              ("meadow", meadow_layer)]}
    depth = {"sky": 0.02, "clouds": 0.08, "mountains": 0.2, "hills": 0.45, "lake": 0.6, "meadow": 1.0}
    for index in range(N_FRAMES):
        pan = PAN_PX_PER_FRAME * SCALE * index
        frame = np.zeros((HEIGHT, WIDTH, 3), np.float32)
        for name in ("sky", "clouds", "mountains", "hills", "lake"):
            # Clouds also drift on the wind, a little against the pan.
            offset = depth[name] * pan + (0.25 * SCALE * index if name == "clouds" else 0.0)
            frame = over(frame, shifted(layers[name], offset))
        frame = boat_over(frame, index, pan, depth["lake"])
        frame = over(frame, shifted(layers["meadow"], pan))
        frame = ball_over(frame, index, pan)
        yield (np.clip(frame, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


# ---------------------------------------------------------------- audio

def note_hz(name: str) -> float:
    """Frequency of a note like 'C5' or 'F#4' in 12-tone equal temperament (A4 = 440 Hz)."""
    semitones = {"C": -9, "D": -7, "E": -5, "F": -4, "G": -2, "A": 0, "B": 2}[name[0]]
    semitones += name.count("#") + 12 * (int(name[-1]) - 4)
    return 440.0 * 2.0 ** (semitones / 12.0)


def tone(freq: float, seconds: float, *, decay: float) -> np.ndarray:
    """A soft plucked tone: sine plus two quiet harmonics, 8 ms attack, exponential decay."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    wave = np.sin(2 * np.pi * freq * t) + 0.3 * np.sin(4 * np.pi * freq * t) + 0.1 * np.sin(6 * np.pi * freq * t)
    envelope = np.minimum(t / 0.008, 1.0) * np.exp(-t / decay)
    release = np.clip((seconds - t) / 0.02, 0.0, 1.0)  # no click at the note's end
    return wave * envelope * release


def melody() -> np.ndarray:
    """Stereo float32 (2, N) of exactly N_FRAMES / FPS seconds: a tune over a bass line."""
    n = N_FRAMES * SAMPLE_RATE // FPS
    left, right = np.zeros(n), np.zeros(n)
    beat = 0.25  # seconds per eighth note (120 bpm)
    tune = "E5 G5 C6 G5 A5 F5 D5 F5 G5 E5 C5 E5".split()
    for k, name in enumerate(tune):
        start = int(k * beat * SAMPLE_RATE)
        note = tone(note_hz(name), beat * (2.0 if k == len(tune) - 1 else 1.0), decay=0.25)[: n - start]
        left[start:start + len(note)] += 0.8 * note  # tune a little to the left
        right[start:start + len(note)] += 0.5 * note
    for k, name in enumerate("C3 F3 G3 C3".split()):
        start = int(k * 0.75 * SAMPLE_RATE)
        note = tone(note_hz(name), 0.75, decay=0.5)[: n - start]
        left[start:start + len(note)] += 0.4 * note  # bass a little to the right
        right[start:start + len(note)] += 0.7 * note
    stereo = np.stack([left, right])  # (2, N)
    stereo *= np.clip((n - np.arange(n)) / (0.15 * SAMPLE_RATE), 0.0, 1.0)  # fade out at the end
    return (0.5 * stereo / np.abs(stereo).max()).astype(np.float32)


# ---------------------------------------------------------------- encoding

def write_clip(path: Path, frames, audio: np.ndarray, *, width: int = WIDTH, height: int = HEIGHT) -> None:
    """Encode frames (H.264, CRF 20) and stereo audio (AAC) into an MP4, interleaved by time."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        # cpu-independent: without it x264's SIMD macroblock-tree code gave different bytes
        # (and pixels) on every run here; with it reruns are byte-identical.
        video.options = {"crf": "20", "preset": "slow", "x264-params": "cpu-independent=1"}
        sound = out.add_stream("aac", rate=SAMPLE_RATE, layout="stereo")
        chunk = 1024  # the AAC frame size; only the last chunk may be shorter
        sent = 0
        for index, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")  # encode() converts to yuv420p
            frame.pts, frame.time_base = index, Fraction(1, FPS)
            out.mux(video.encode(frame))
            # Send the audio that falls before the end of this video frame.
            until = min((index + 1) * SAMPLE_RATE // FPS, audio.shape[1])
            while sent < until:
                samples = np.ascontiguousarray(audio[:, sent:sent + chunk])
                audio_frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="stereo")
                audio_frame.sample_rate, audio_frame.pts = SAMPLE_RATE, sent
                audio_frame.time_base = Fraction(1, SAMPLE_RATE)
                out.mux(sound.encode(audio_frame))
                sent += samples.shape[1]
        # Flush both encoders: they hold back frames (B-frame lookahead, AAC priming).
        out.mux(video.encode(None))
        out.mux(sound.encode(None))


def main() -> None:
    """Render the clip and the still (or, with -o, the clip alone), then report their sizes."""
    global SCALE, WIDTH, HEIGHT
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=1,
                        help="draw the same scene this many times larger (2: 640x360), for measuring at 512 px")
    parser.add_argument("-o", "--output", type=Path,
                        help="write the clip here instead of samples/clip.mp4, and no still")
    args = parser.parse_args()
    if args.scale != 1 and args.output is None:
        parser.error("--scale needs -o: the bundled clip.mp4 stays at 320x180")
    SCALE, WIDTH, HEIGHT = args.scale, WIDTH * args.scale, HEIGHT * args.scale
    frames = list(render_frames(np.random.default_rng(2016)))
    clip_path = args.output or HERE / "clip.mp4"
    write_clip(clip_path, frames, melody(), width=WIDTH, height=HEIGHT)
    written = [clip_path]
    if args.output is None:  # the bundled pair: the still is a frame of the bundled clip
        still_path = HERE / "content.jpg"
        Image.fromarray(frames[STILL_FRAME]).save(still_path, quality=92)
        written.append(still_path)
    for path in written:
        print(f"wrote {path} ({path.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
