"""Generate the second sample clip samples/city.mp4: a city street at night, under a slow zoom.

The clip is 2 s of a procedurally drawn night street at 640x360, 24 fps (H.264, yuv420p,
CRF 20) with a quiet stereo AAC track (44.1 kHz: a low hum and the car passing). It is the
engine benchmark's second clip, of a different kind from samples/clip.mp4 (a sunny landscape
under a sideways pan), so the engines are also tested on other motion and other tones:

- the camera zooms in slowly (scale 1.0 -> 1.12) while turning 2 degrees about a point right
  of and below the centre, so the optical flow is radial and rotational rather than a shift,
  about zero at that point and a pixel or so per frame at the far corners;
- the tones are those of a night scene: large dark areas (sky, unlit walls, asphalt) and small
  bright ones (lit windows, shop fronts, street lamps with halos, the moon, a neon "BAR" sign),
  so you can judge whether bright areas stay bright and dark ones dark after stylization;
- a car with headlights crosses the foreground left to right (fast object motion, occluding the
  road, its markings and the lamps' reflections), two pedestrians walk along the pavement in
  opposite directions behind the lamp posts, and an "OPEN" sign in a shop window switches on
  once, half-way through (a single change of state, not a flicker);
- walls are brick or rough render, the pavement is tiled and the road is grainy asphalt, so
  the flow has texture to track; there are no scene cuts.

The static street is drawn once at twice the output resolution with a margin around it; each
frame draws the moving objects into a copy, takes the zoomed and turned view of it with
cv2.warpAffine (bilinear) at twice the output size, and halves that with INTER_AREA, so the
motion is sub-pixel and smooth, without aliasing shimmer.

The output is committed; rerun ``python samples/make_city_clip.py`` only to change it. The
drawing is seeded and the encoder set to be reproducible (as in make_clip.py), so reruns give
the same file (other FFmpeg/x264 versions may encode it differently).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from make_clip import fbm, value_noise, write_clip  # the first clip's noise and encoder (24 fps, 44.1 kHz)

HERE = Path(__file__).parent
WIDTH, HEIGHT = 640, 360
FPS = 24
N_FRAMES = 48  # 2 s
SAMPLE_RATE = 44100
SS = 2  # the world is drawn at SS x the output resolution ...
MARGIN = 24  # ... with this many output pixels of street beyond each edge of the first frame
WORLD_W, WORLD_H = (WIDTH + 2 * MARGIN) * SS, (HEIGHT + 2 * MARGIN) * SS
ZOOM_END = 1.12  # camera scale at the last frame (1.0 at the first)
TURN_END_DEG = 2.0  # camera rotation at the last frame, anticlockwise on screen
PIVOT = (430.0, 235.0)  # the point the camera zooms and turns about, in first-frame pixels
GROUND = 246.0  # where the buildings meet the pavement
KERB = 270.0  # the pavement's front edge; the road is below it
LAMPS_X = (70.0, 330.0, 590.0)  # street lamp posts
LAMP_TOP = 150.0  # height of the lamp heads
SODIUM = np.array([1.0, 0.72, 0.38], np.float32)  # the street lamps' colour
SIGN_ON_FRAME = 26  # the shop's "OPEN" sign is off before this frame and on from it


# ---------------------------------------------------------------- coordinates

def world_grid() -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of every world pixel's centre, in first-frame output pixels (float32, WORLD_H x WORLD_W)."""
    y, x = np.mgrid[0:WORLD_H, 0:WORLD_W].astype(np.float32)
    return (x + 0.5) / SS - MARGIN, (y + 0.5) / SS - MARGIN


def px(points) -> np.ndarray:
    """First-frame pixel coordinates -> int32 world points for OpenCV drawing with shift=4."""
    p = (np.asarray(points, np.float64) + MARGIN) * SS - 0.5
    return np.round(p * 16).astype(np.int32)


def blank(channels: int = 1) -> np.ndarray:
    """A zeroed world-sized float32 canvas."""
    return np.zeros((WORLD_H, WORLD_W, channels) if channels > 1 else (WORLD_H, WORLD_W), np.float32)


def fill(mask: np.ndarray, points, value: float = 1.0) -> None:
    """Anti-aliased filled polygon (first-frame pixel coordinates) into a one-channel mask."""
    cv2.fillPoly(mask, [px(points)], value, cv2.LINE_AA, shift=4)


def disc(mask: np.ndarray, centre, radius: float, value: float = 1.0) -> None:
    """Anti-aliased filled circle into a one-channel mask."""
    c = px(centre)
    cv2.circle(mask, (int(c[0]), int(c[1])), int(round(radius * SS * 16)), value, -1, cv2.LINE_AA, shift=4)


def stroke(mask: np.ndarray, a, b, width: float, value: float = 1.0) -> None:
    """Anti-aliased line `width` first-frame pixels thick into a one-channel mask."""
    pa, pb = px(a), px(b)
    cv2.line(mask, (int(pa[0]), int(pa[1])), (int(pb[0]), int(pb[1])), value,
             max(1, int(round(width * SS))), cv2.LINE_AA, shift=4)


def paint(rgb: np.ndarray, mask: np.ndarray, colour) -> np.ndarray:
    """Composite a colour (a 3-vector or an RGB image) over rgb through a one-channel mask."""
    a = np.clip(mask, 0.0, 1.0)[..., None]
    return rgb * (1 - a) + np.asarray(colour, np.float32) * a


def glow(gx: np.ndarray, gy: np.ndarray, x: float, y: float, radius: float) -> np.ndarray:
    """A Gaussian halo (WORLD_H, WORLD_W) of about `radius` px, peak 1, centred at x, y."""
    return np.exp(-((gx - x) ** 2 + (gy - y) ** 2) / radius ** 2)


# ---------------------------------------------------------------- the static street

def sky(rng: np.random.Generator, gx: np.ndarray, gy: np.ndarray) -> np.ndarray:
    """Night sky: deep blue above, a dull violet city glow at the horizon, faint stars, the moon."""
    t = np.clip(gy / 230.0, 0.0, 1.0)[..., None] ** 1.6
    rgb = (1 - t) * np.array([0.012, 0.018, 0.055]) + t * np.array([0.17, 0.09, 0.15])
    stars = blank()
    for sx, sy, b in zip(rng.uniform(-MARGIN, WIDTH + MARGIN, 90), rng.uniform(-MARGIN, 120, 90),
                         rng.uniform(0.25, 0.8, 90)):
        disc(stars, (sx, sy), rng.uniform(0.35, 0.7), b)
    rgb = rgb + stars[..., None] * np.array([0.9, 0.92, 1.0])
    # The moon: a disc with darker seas, and a wide pale halo.
    mx, my, mr = 548.0, 56.0, 13.0
    d = np.hypot(gx - mx, gy - my)
    seas = fbm(rng, WORLD_H, WORLD_W, 5.0 * SS, octaves=3)
    inside = np.clip((mr - d) * SS + 0.5, 0.0, 1.0)[..., None]
    moon = np.array([1.35, 1.3, 1.15]) * (0.8 + 0.25 * seas)[..., None]
    rgb = rgb * (1 - inside) + moon * inside
    halo = 0.22 * np.exp(-(d / 45.0) ** 2) + 0.06 * np.exp(-(d / 110.0) ** 2)
    rgb = rgb + halo[..., None] * np.array([0.7, 0.75, 0.9])
    return rgb.astype(np.float32)


def brick(rng: np.random.Generator, gx: np.ndarray, gy: np.ndarray) -> np.ndarray:
    """Brick pattern (WORLD_H, WORLD_W) in about [0.3, 1.1]: staggered bricks, dark mortar."""
    course, length = 3.5, 8.0  # px
    row = np.floor(gy / course)
    u = (gx + (row % 2) * length / 2) / length
    col = np.floor(u)
    shade = rng.uniform(0.75, 1.1, 4096).astype(np.float32)
    per_brick = shade[((row * 131 + col * 17) % 4096).astype(np.int64)]
    mortar = (np.mod(gy / course, 1.0) < 0.22) | (np.mod(u, 1.0) < 0.09)
    return np.where(mortar, 0.35, per_brick).astype(np.float32)


def buildings(rng: np.random.Generator, gx: np.ndarray, gy: np.ndarray, light: np.ndarray,
              sign_on: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The row of buildings: diffuse colour (lit by `light`), coverage and emitted light.

    Built from the same seed whatever `sign_on` is, so both versions of the street match except
    for the "OPEN" sign.
    """
    diffuse, cover, emit = blank(3), blank(), blank(3)
    grain = fbm(rng, WORLD_H, WORLD_W, 6.0 * SS, octaves=4)
    bricks = brick(rng, gx, gy)
    shops = []  # (left, right) of each lit shop window
    x = -MARGIN - 6.0
    index = 0
    while x < WIDTH + MARGIN:
        width = float(rng.uniform(80.0, 135.0))
        roof = float(rng.uniform(70.0, 140.0))
        kind = index % 3  # brick, render, brick: alternating so neighbours differ
        left, right = x, x + width
        inside = ((gx >= left) & (gx < right) & (gy >= roof) & (gy < GROUND + 1)).astype(np.float32)
        if kind == 1:
            wall = np.array([0.13, 0.125, 0.12]) * (0.7 + 0.5 * grain)[..., None]
        else:
            tint = np.array([0.19, 0.085, 0.06]) if index % 2 == 0 else np.array([0.15, 0.10, 0.08])
            wall = tint * (bricks * (0.8 + 0.4 * grain))[..., None]
        diffuse = paint(diffuse, inside, wall)
        cover = np.maximum(cover, inside)
        # A lighter cornice along the roof, and a rooftop box or aerial on some.
        ledge = blank()
        fill(ledge, [(left - 2, roof - 3), (right + 2, roof - 3), (right + 2, roof + 1), (left - 2, roof + 1)])
        if rng.random() < 0.5:
            bx = float(rng.uniform(left + 10, right - 35))
            fill(ledge, [(bx, roof - 14), (bx + 22, roof - 14), (bx + 22, roof), (bx, roof)])
        else:
            ax = float(rng.uniform(left + 10, right - 10))
            stroke(ledge, (ax, roof), (ax, roof - 26), 1.0)
            stroke(ledge, (ax - 7, roof - 18), (ax + 7, roof - 18), 0.8)
        diffuse = paint(diffuse, ledge, [0.09, 0.085, 0.09])
        cover = np.maximum(cover, ledge)
        # Upper windows: a grid, about a third lit (warm lamps, a few cool screens).
        win = blank()
        lit_colour = blank(3)
        n_cols = max(2, int((width - 12) // 22))
        x_pad = (width - (n_cols - 1) * 22 - 12) / 2
        floor_y = roof + 14
        while floor_y + 18 < GROUND - 52:
            for c in range(n_cols):
                wx = left + x_pad + c * 22
                m = blank()
                fill(m, [(wx, floor_y), (wx + 12, floor_y), (wx + 12, floor_y + 18), (wx, floor_y + 18)])
                win = np.maximum(win, m)
                r = rng.random()
                if r < 0.28:
                    colour = np.array([1.15, 0.82, 0.45]) * rng.uniform(0.75, 1.15)
                elif r < 0.34:
                    colour = np.array([0.55, 0.72, 1.05]) * rng.uniform(0.6, 0.9)
                else:
                    colour = np.array([0.018, 0.022, 0.04])
                lit_colour = paint(lit_colour, m, colour)
                # A sill under every window.
                sill = blank()
                fill(sill, [(wx - 1.5, floor_y + 18), (wx + 13.5, floor_y + 18), (wx + 13.5, floor_y + 20),
                            (wx - 1.5, floor_y + 20)])
                diffuse = paint(diffuse, sill, [0.2, 0.19, 0.18])
            floor_y += 34
        # Curtains and room shading: lit windows a little uneven from top to bottom.
        lit_colour *= (0.8 + 0.35 * value_noise(rng, WORLD_H, WORLD_W, 4.0 * SS))[..., None]
        diffuse = paint(diffuse, win, [0.0, 0.0, 0.0])
        emit = paint(emit, win, lit_colour)
        # Ground floor: a lit shop front on most buildings, a dark door on the others.
        shop = blank()
        if index % 4 != 3:
            fill(shop, [(left + 9, GROUND - 38), (right - 9, GROUND - 38), (right - 9, GROUND - 3),
                        (left + 9, GROUND - 3)])
            # Shelves of goods: dark shelf edges every 8 px, uneven stock, against the bright interior.
            shelves = np.where(np.mod(gy - GROUND, 8.0) < 1.2, 0.25, 1.0)
            stock = np.clip(1.4 * fbm(rng, WORLD_H, WORLD_W, 3.0 * SS, octaves=3) - 0.2, 0.0, 1.0)
            goods = (shelves * (0.35 + 0.75 * stock))[..., None]
            interior = np.array([1.15, 0.95, 0.68]) if index % 2 == 0 else np.array([0.95, 1.0, 0.95])
            diffuse = paint(diffuse, shop, [0.0, 0.0, 0.0])
            emit = paint(emit, shop, interior * goods * 0.85)
            frame_mask = blank()
            stroke(frame_mask, ((left + right) / 2, GROUND - 38), ((left + right) / 2, GROUND - 3), 1.5)
            fill(frame_mask, [(left + 6, GROUND - 44), (right - 6, GROUND - 44), (right - 6, GROUND - 38),
                              (left + 6, GROUND - 38)])  # the fascia above the window
            diffuse = paint(diffuse, frame_mask, [0.05, 0.05, 0.055])
            emit = paint(emit, frame_mask, [0.0, 0.0, 0.0])
            shops.append((left + 9, right - 9))
        else:
            fill(shop, [(left + width / 2 - 9, GROUND - 34), (left + width / 2 + 9, GROUND - 34),
                        (left + width / 2 + 9, GROUND), (left + width / 2 - 9, GROUND)])
            diffuse = paint(diffuse, shop, [0.03, 0.025, 0.02])
        x = right
        index += 1
    # Lamplight falls on the walls (the emitted light does not need it).
    diffuse *= light[..., None]
    # The neon signs: "BAR" always on, high on the second wall; "OPEN" in a shop window.
    emit = neon(emit, diffuse, "BAR", (168.0, GROUND - 74.0), 0.9, np.array([1.7, 0.28, 1.0]), True)
    emit = neon(emit, diffuse, "OPEN", (shops[-2][0] + 5.0, GROUND - 12.0), 0.45, np.array([0.3, 1.5, 1.7]), sign_on)
    return diffuse, cover, emit


def neon(emit: np.ndarray, diffuse: np.ndarray, text: str, origin, scale: float, colour: np.ndarray,
         on: bool) -> np.ndarray:
    """Neon lettering at `origin` (baseline left, output pixels): bright tubes when on, dull glass when off.

    Returns the new emitted light; blanks the diffuse colour under the tubes in place.
    """
    tubes = np.zeros((WORLD_H, WORLD_W), np.uint8)
    o = px(origin) // 16
    cv2.putText(tubes, text, (int(o[0]), int(o[1])), cv2.FONT_HERSHEY_DUPLEX, scale * SS, 255,
                max(1, int(round(1.6 * SS))), cv2.LINE_AA)
    mask = tubes.astype(np.float32) / 255.0
    lit = colour if on else colour * 0.08 + 0.02
    out = paint(emit, mask, lit)
    diffuse *= (1 - mask)[..., None]
    return out


def street_lamps() -> tuple[np.ndarray, np.ndarray]:
    """The lamp posts and heads: colour (bright heads) and coverage, drawn in front of the pavement."""
    cover = blank()
    heads = blank()
    for lx in LAMPS_X:
        stroke(cover, (lx, KERB), (lx, LAMP_TOP + 2), 2.6)
        fill(cover, [(lx - 3.5, KERB), (lx + 3.5, KERB), (lx + 2.5, KERB - 12), (lx - 2.5, KERB - 12)])  # base
        stroke(cover, (lx, LAMP_TOP + 6), (lx + 12, LAMP_TOP - 1), 1.6)  # the arm
        fill(cover, [(lx + 5, LAMP_TOP - 6), (lx + 19, LAMP_TOP - 6), (lx + 16, LAMP_TOP - 2), (lx + 8, LAMP_TOP - 2)])
        fill(heads, [(lx + 8, LAMP_TOP - 2), (lx + 16, LAMP_TOP - 2), (lx + 14.5, LAMP_TOP + 2.5),
                     (lx + 9.5, LAMP_TOP + 2.5)])
    colour = np.full((WORLD_H, WORLD_W, 3), 0.035, np.float32)
    colour = paint(colour, heads, np.array([3.0, 2.4, 1.6]))
    return colour, np.maximum(cover, heads)


def lamplight(gx: np.ndarray, gy: np.ndarray) -> np.ndarray:
    """How brightly the lamps light each point of the walls and the ground (1 = ambient only)."""
    light = np.ones_like(gx)
    for lx in LAMPS_X:
        hx = lx + 12.0
        # A pool on the pavement and road below the lamp, and a wash up the walls behind it.
        light += 3.5 * np.exp(-((gx - hx) / 55.0) ** 2 - ((gy - (KERB + 4)) / 22.0) ** 2) * (gy > GROUND)
        light += 1.3 * np.exp(-((gx - hx) / 60.0) ** 2 - ((gy - (LAMP_TOP + 40)) / 60.0) ** 2) * (gy <= GROUND)
    return light.astype(np.float32)


def ground(rng: np.random.Generator, gx: np.ndarray, gy: np.ndarray, light: np.ndarray) -> np.ndarray:
    """Pavement (tiles, kerb) and road (grainy asphalt, lane marks, wet reflections of the lights)."""
    grain = value_noise(rng, WORLD_H, WORLD_W, 1.5)
    patches = fbm(rng, WORLD_H, WORLD_W, 18.0 * SS, octaves=4)
    # Pavement: slabs 20 px wide in two rows, with dark joints.
    slab = np.array([0.10, 0.10, 0.105]) * (0.75 + 0.3 * patches + 0.25 * grain)[..., None]
    joints = (np.mod(gx + 10.0 * (gy > GROUND + 12), 20.0) < 0.8) | (np.abs(gy - (GROUND + 12)) < 0.5)
    slab = np.where(joints[..., None], slab * 0.45, slab)
    kerb = np.array([0.17, 0.165, 0.16]) * (0.85 + 0.3 * grain)[..., None]
    asphalt = np.array([0.055, 0.056, 0.064]) * (0.55 + 0.55 * grain + 0.5 * patches)[..., None]
    rgb = np.where((gy < KERB)[..., None], slab, np.where((gy < KERB + 4)[..., None], kerb, asphalt))
    # Worn lane markings: dashes along the middle of the road.
    dashes = ((np.abs(gy - 318.0) < 1.6) & (np.mod(gx + 5.0, 70.0) < 40.0)).astype(np.float32)
    rgb = paint(rgb, dashes * (0.5 + 0.5 * patches), [0.55, 0.53, 0.45])
    rgb = (rgb * light[..., None]).astype(np.float32)
    # The road is wet: the lamps and the lit shop fronts smear into vertical streaks on it.
    road = (gy > KERB + 4).astype(np.float32)
    wet = np.zeros_like(rgb)
    for lx in LAMPS_X:
        streak = np.exp(-((gx - lx - 12.0) / 5.0) ** 2) * np.exp(-((gy - 300.0) / 45.0) ** 2)
        wet += 0.45 * streak[..., None] * SODIUM
    ripple = 0.6 + 0.8 * value_noise(rng, WORLD_H, WORLD_W, 3.0 * SS)
    return (rgb + wet * (road * ripple)[..., None]).astype(np.float32)


def shop_reflections(gx: np.ndarray, gy: np.ndarray, emit: np.ndarray) -> np.ndarray:
    """Faint mirrored glow of the lit ground floor on the wet road."""
    band = emit[int((GROUND - 30 + MARGIN) * SS):int((GROUND - 5 + MARGIN) * SS)].mean(axis=0)  # (W, 3)
    band = cv2.GaussianBlur(band[None], (0, 0), 4.0 * SS)[0]
    fade = np.exp(-((gy - (KERB + 10)) / 30.0) ** 2) * (gy > KERB + 4)
    return (0.12 * fade[..., None] * band[None]).astype(np.float32)


def bloom(rgb: np.ndarray) -> np.ndarray:
    """Add the soft glow around everything brighter than white (lamps, moon, neon, windows)."""
    hot = np.clip(rgb - 0.75, 0.0, None)
    near = cv2.GaussianBlur(hot, (0, 0), 3.0 * SS)
    far = cv2.GaussianBlur(hot, (0, 0), 14.0 * SS)
    return rgb + 0.6 * near + 0.4 * far


def halos(gx: np.ndarray, gy: np.ndarray) -> np.ndarray:
    """The street lamps' wide halos in the damp air."""
    total = np.zeros_like(gx)
    for lx in LAMPS_X:
        total += 0.5 * glow(gx, gy, lx + 12.0, LAMP_TOP, 16.0) + 0.16 * glow(gx, gy, lx + 12.0, LAMP_TOP, 60.0)
    return (total[..., None] * SODIUM).astype(np.float32)


def street(seed: int, sign_on: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The static street as layers (RGB display values that may exceed 1 where something glows).

    Returns (background, lamp posts colour, lamp posts coverage, glow); each frame composites the
    pedestrians over the background, the posts over them (they walk behind the posts), then adds
    the glow of all the lights (bloom and the lamps' halos), which lies in front of everything.
    """
    rng = np.random.default_rng(seed)
    gx, gy = world_grid()
    light = lamplight(gx, gy)
    rgb = sky(rng, gx, gy)
    diffuse, cover, emit = buildings(rng, gx, gy, light, sign_on)
    rgb = paint(rgb, cover, diffuse) + emit
    below = (gy >= GROUND).astype(np.float32)
    rgb = paint(rgb, below, ground(rng, gx, gy, light)) + shop_reflections(gx, gy, emit)
    posts, posts_cover = street_lamps()
    with_posts = paint(rgb, posts_cover, posts)
    glow_only = bloom(with_posts) - with_posts + halos(gx, gy)
    return rgb.astype(np.float32), posts, posts_cover, glow_only.astype(np.float32)


# ---------------------------------------------------------------- moving objects

def walker_mask(x: float, feet: float, height: float, phase: float, facing: float) -> np.ndarray:
    """Silhouette coverage of a walking person, feet at (x, feet), `phase` in radians of the stride."""
    m = blank()
    h = height
    hip = np.array([x, feet - 0.47 * h])
    shoulder = np.array([x + facing * 0.015 * h, feet - 0.80 * h])
    swing = 0.42 * np.sin(phase)
    for side in (1.0, -1.0):
        a = side * swing
        foot = hip + 0.47 * h * np.array([np.sin(a), np.cos(a)])
        stroke(m, hip, foot, 0.075 * h)
        stroke(m, foot, foot + np.array([facing * 0.06 * h, 0.0]), 0.04 * h)  # the shoe
        b = -side * 0.7 * swing
        hand = shoulder + 0.36 * h * np.array([np.sin(b), np.cos(b)])
        stroke(m, shoulder + np.array([0, 0.03 * h]), hand, 0.055 * h)
    # A coat: shoulders to just below the hips.
    fill(m, [shoulder + [-0.085 * h, -0.01 * h], shoulder + [0.085 * h, -0.01 * h],
             hip + [0.1 * h, 0.09 * h], hip + [-0.1 * h, 0.09 * h]])
    disc(m, shoulder + [facing * 0.02 * h, -0.1 * h], 0.066 * h)  # head
    return m


def car_layer(gx: np.ndarray, gy: np.ndarray, rear: float, base: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A saloon car facing right, rear bumper at x = `rear`, tyres on y = `base`.

    Returns (colour, coverage, the light it adds: headlight and tail-light glow and the beam on the
    road, its shadow's darkness).
    """
    def at(points):
        return [(rear + dx, base + dy) for dx, dy in points]

    colour, cover = blank(3), blank()
    shadow = blank()
    cv2.ellipse(shadow, tuple(int(v) for v in px((rear + 80, base))), (int(86 * SS * 16), int(5 * SS * 16)),
                0, 0, 360, 0.8, -1, cv2.LINE_AA, shift=4)
    shadow = cv2.GaussianBlur(shadow, (0, 0), 2.0 * SS)
    body = blank()
    fill(body, at([(2, -12), (0, -30), (6, -37), (42, -40), (62, -58), (110, -58), (128, -40), (154, -36),
                   (160, -27), (159, -12)]))
    # Body paint: dark red, lighter on the shoulder line where the street lamps catch it.
    shade = np.clip((gy - (base - 40.0)) / 28.0, 0.0, 1.0)[..., None]
    paint_rgb = (1 - shade) * np.array([0.42, 0.06, 0.07]) + shade * np.array([0.16, 0.02, 0.03])
    colour = paint(colour, body, paint_rgb)
    cover = np.maximum(cover, body)
    shine = blank()
    fill(shine, at([(8, -37), (150, -35), (150, -33), (8, -35)]))
    colour = paint(colour, shine, [0.75, 0.35, 0.3])
    glass = blank()
    fill(glass, at([(66, -54), (87, -54), (87, -41), (54, -41)]))
    fill(glass, at([(91, -54), (107, -54), (121, -41), (91, -41)]))
    streak = np.clip(1.0 - np.abs((gx - rear - 0.6 * (base - gy)) - 80.0) / 6.0, 0.0, 1.0)[..., None]
    colour = paint(colour, glass, np.array([0.04, 0.05, 0.07]) + 0.25 * streak)
    seams = blank()
    stroke(seams, at([(88, -40)])[0], at([(88, -14)])[0], 0.6)
    stroke(seams, at([(60, -40)])[0], at([(58, -14)])[0], 0.6)
    fill(seams, at([(0, -18), (160, -18), (160, -12), (1, -12)]))  # the sill and bumpers
    colour = paint(colour, seams, [0.05, 0.03, 0.03])
    # Wheels: dark arches, tyres, grey rims with five spokes turning as it rolls.
    spin = rear / 12.5
    for wx in (30.0, 128.0):
        c = (rear + wx, base - 12.5)
        arch = blank()
        disc(arch, (c[0], c[1] + 1), 15.0)
        colour = paint(colour, arch * body, [0.01, 0.01, 0.01])
        tyre = blank()
        disc(tyre, c, 12.5)
        colour = paint(colour, tyre, [0.025, 0.025, 0.028])
        cover = np.maximum(cover, tyre)
        rim = blank()
        disc(rim, c, 7.5)
        colour = paint(colour, rim, [0.3, 0.3, 0.32])
        spokes = blank()
        for k in range(5):
            a = spin + k * 2 * np.pi / 5
            stroke(spokes, (c[0] + 2.0 * np.cos(a), c[1] + 2.0 * np.sin(a)),
                   (c[0] + 7.0 * np.cos(a), c[1] + 7.0 * np.sin(a)), 1.2)
        colour = paint(colour, spokes, [0.08, 0.08, 0.09])
    # Lights: a white headlight at the front, a red tail light at the back.
    head, tail = blank(), blank()
    fill(head, at([(153, -33), (159.5, -31), (159.5, -26), (154, -27)]))
    fill(tail, at([(0.5, -33), (5, -34), (5, -27), (0.5, -27)]))
    colour = paint(colour, head, [3.0, 2.9, 2.5])
    colour = paint(colour, tail, [1.8, 0.12, 0.08])
    hx, hy = rear + 157.0, base - 29.5
    added = ((0.9 * glow(gx, gy, hx, hy, 6.0) + 0.35 * glow(gx, gy, hx, hy, 22.0)
              + 0.1 * glow(gx, gy, hx, hy, 70.0))[..., None] * np.array([1.0, 0.97, 0.88]))
    tx, ty = rear + 2.5, base - 30.0
    red_glow = 0.55 * glow(gx, gy, tx, ty, 6.0) + 0.15 * glow(gx, gy, tx, ty, 20.0)
    added += red_glow[..., None] * np.array([1.0, 0.08, 0.05])
    # The beam: a pool of light on the road ahead of the car, and a faint cone in the air.
    ahead = gx - hx
    pool = np.exp(-((ahead - 150.0) / 95.0) ** 2) * np.exp(-((gy - base + 2.0) / 9.0) ** 2) * (ahead > 0)
    cone = np.clip(1.0 - np.abs(gy - hy - 0.1 * ahead) / (3.0 + 0.12 * np.maximum(ahead, 0)), 0.0, 1.0)
    cone = cone * np.exp(-np.maximum(ahead, 0) / 110.0) * (ahead > 0)
    added += (0.35 * pool + 0.08 * cone)[..., None] * np.array([1.0, 0.96, 0.85])
    # Painting over black left the anti-aliased edges premultiplied by their coverage; undo that.
    colour /= np.maximum(cover, 1e-6)[..., None]
    return colour, cover, added, shadow


# ---------------------------------------------------------------- frame assembly

def camera(index: int) -> np.ndarray:
    """The 2x3 affine matrix from world pixels to (SS x) output pixels for frame `index`."""
    t = index / (N_FRAMES - 1)
    scale = ZOOM_END ** t  # constant zoom speed
    angle = np.deg2rad(TURN_END_DEG * t)
    rot = scale * np.array([[np.cos(angle), np.sin(angle)], [-np.sin(angle), np.cos(angle)]])
    # In first-frame output pixels, view = pivot + rot @ (world - pivot); a world pixel i has its
    # centre at (i + 0.5) / SS - MARGIN, an output pixel k (at SS x) at (k + 0.5) / SS.
    pivot = np.array(PIVOT)
    offset = SS * (pivot - rot @ (pivot + MARGIN)) + 0.5 * (rot.sum(axis=1) - 1.0)
    return np.hstack([rot, offset[:, None]])


def render_frames(seed: int = 2024):
    """Yield the N_FRAMES frames as uint8 RGB (HEIGHT, WIDTH, 3)."""
    off, posts, posts_cover, glow_off = street(seed, sign_on=False)
    on, _, _, glow_on = street(seed, sign_on=True)
    gx, gy = world_grid()
    walkers = [  # (start x, px per frame, height, stride phase, coat colour)
        (395.0, -0.95, 31.0, 0.0, np.array([0.03, 0.03, 0.045])),
        (150.0, 0.8, 29.0, 1.9, np.array([0.11, 0.035, 0.03])),
    ]
    for index in range(N_FRAMES):
        sign_on = index >= SIGN_ON_FRAME
        frame = on if sign_on else off
        for x0, speed, height, phase0, coat in walkers:
            x = x0 + speed * index
            # The stride phase advances with the distance walked: a full stride is 0.8 x height.
            stride = 2 * np.pi * abs(speed) * index / (0.8 * height)
            mask = walker_mask(x, GROUND + 16.0, height, phase0 + stride, np.sign(speed))
            frame = paint(frame, mask * (1 - posts_cover), coat)
        frame = paint(frame, posts_cover, posts) + (glow_on if sign_on else glow_off)
        car_rgb, car_cover, car_light, shadow = car_layer(gx, gy, rear=-168.0 + 14.0 * index, base=352.0)
        frame = paint(frame, shadow, [0.0, 0.0, 0.0])
        frame = paint(frame, car_cover, car_rgb) + car_light
        view = cv2.warpAffine(frame, camera(index), (WIDTH * SS, HEIGHT * SS), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
        view = cv2.resize(np.clip(view, 0.0, 1.0), (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA)
        yield (view * 255.0 + 0.5).astype(np.uint8)


# ---------------------------------------------------------------- audio

def street_sound(seed: int = 2024) -> np.ndarray:
    """Stereo float32 (2, N) of exactly N_FRAMES / FPS seconds: a low hum and the car going by."""
    rng = np.random.default_rng(seed)
    n = N_FRAMES * SAMPLE_RATE // FPS
    t = np.arange(n) / SAMPLE_RATE
    hum = 0.15 * np.sin(2 * np.pi * 55.0 * t) + 0.05 * np.sin(2 * np.pi * 110.0 * t)
    # Road noise: white noise low-passed twice (a one-pole filter run as a cumulative sum).
    noise = rng.standard_normal(n)
    for _ in range(2):
        noise = np.convolve(noise, np.exp(-np.arange(200) / 40.0), mode="same")
    noise /= np.abs(noise).max()
    # The car is loudest when it is mid-frame, and pans from left to right.
    car_x = (-168.0 + 80.0 + 14.0 * t * FPS) / WIDTH  # its centre, 0..1 across the frame
    loud = np.exp(-((car_x - 0.5) / 0.45) ** 2)
    pan = np.clip(car_x, 0.0, 1.0)
    left = hum + noise * loud * np.sqrt(1 - pan)
    right = hum + noise * loud * np.sqrt(pan)
    stereo = np.stack([left, right])
    fade = np.clip(np.minimum(t, t[-1] - t) / 0.1, 0.0, 1.0)  # no clicks at either end
    return (0.25 * stereo * fade / np.abs(stereo).max()).astype(np.float32)


def main() -> None:
    """Render and encode the clip, then report its size."""
    path = HERE / "city.mp4"
    write_clip(path, render_frames(), street_sound(), width=WIDTH, height=HEIGHT)
    print(f"wrote {path} ({path.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
