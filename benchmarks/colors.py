"""Colour preservation benchmark (issue 12): how far each --preserve-colors mode moves the colours.

    python benchmarks/colors.py PHOTO -s samples/styles/swirl.png [--clip CLIP --start 110 --frames 16]
        [-c configs/preview.toml] [--set KEY=VALUE ...] [--picture docs/colors.png]

For the photo (an image, or with `--photo-frame N` frame N of a video, decoded with PyAV) and, with
`--clip`, frames [start, start + frames) of a video stored losslessly, it stylizes once per mode
(none, luminance, histogram) with the same settings and prints a Markdown table:

- a*b* difference: the mean CIELAB colour difference in a* and b* between output and content,
  sqrt(da*^2 + db*^2) per pixel (`color.chroma_difference`), averaged over the frames;
- style loss on luminance: the unweighted style loss (the run's layers and layer weights) of the
  output's luminance against the style image's luminance, both as grey images (`color.luminance`),
  so the modes compare on what all of them transfer;
- the same against the style's luminance matched to the content's mean and spread (for the clip,
  its first frame's): what `luminance` mode optimises towards;
- warp error (clip only): E_warp of `stylereel evaluate` on the output frames; and, once, the a*b*
  difference of the content clip sent through the same H.264 writer alone (`codec_floor`);
- seconds for the stylization.

`--picture` writes content | none | luminance | histogram of the photo side by side, labelled.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from stylereel.pipeline import color, io, preview, run
from stylereel.pipeline.config import Config, load_config
from stylereel.pipeline.evaluate import warp_error
from stylereel.pipeline.losses import gram_matrix, style_loss
from stylereel.pipeline.model import load_vgg19

sys.path.insert(0, str(Path(__file__).parent))
from flicker import cut_clip  # noqa: E402  (a sibling script)

MODES = ("none", "luminance", "histogram")


def luminance_style_loss(outputs: list[np.ndarray], style: Path, config: Config, *,
                         matched_to: np.ndarray | None = None) -> float:
    """Mean unweighted style loss of the outputs' luminance against the style's luminance; with
    `matched_to`, against the style's luminance matched to that frame's (luminance mode's target)."""
    model = load_vgg19(pooling=config.pooling.value)
    side = max(16, round(max(outputs[0].shape[:2]) * config.style_scale))
    with torch.no_grad():
        style_image = io.to_tensor(io.read_image(style, max_side=side))
        grey = color.luminance(style_image) if matched_to is None else color.match_luminance(
            style_image, io.to_tensor(matched_to))
        features = model(grey, config.style_layers)
        targets = {name: gram_matrix(features[name]) for name in config.style_layers}
        losses = []
        for output in outputs:
            features = model(color.luminance(io.to_tensor(output)), config.style_layers)
            losses.append(sum(weight * float(style_loss(gram_matrix(features[name]), targets[name]))
                              for name, weight in zip(config.style_layers, config.style_layer_weights)))
    return float(np.mean(losses))


def chroma(outputs: list[np.ndarray], contents: list[np.ndarray]) -> float:
    return float(np.mean([float(color.chroma_difference(io.to_tensor(o), io.to_tensor(c)))
                          for o, c in zip(outputs, contents)]))


def photo_rows(photo: Path, style: Path, config: Config, work: Path) -> tuple[dict, list[np.ndarray]]:
    rows, images = {}, []
    for mode in MODES:
        output = work / f"photo-{mode}.png"
        start = time.perf_counter()
        summary = run.stylize_image(photo, [style], output, replace(config, preserve_colors=mode), overwrite=True)
        seconds = time.perf_counter() - start
        content = io.read_image(photo, max_side=config.max_side)
        result = io.read_image(output)
        rows[mode] = {"ab": chroma([result], [content]), "style": luminance_style_loss([result], style, config),
                      "matched": luminance_style_loss([result], style, config, matched_to=content),
                      "seconds": seconds, "iterations": summary.frames[0].iterations,
                      "size": f"{summary.width}x{summary.height}"}
        images.append(result)
    return rows, [io.read_image(photo, max_side=config.max_side), *images]


def codec_floor(clip: Path, config: Config, work: Path) -> float:
    """a*b* difference of the content clip itself after the writer `video` uses (H.264 at CRF 0,
    4:2:0) and back: what the encoding alone costs the colours."""
    frames = list(io.read_video(clip, max_side=config.max_side))
    height, width = frames[0].image.shape[:2]
    output = work / "codec-floor.mp4"
    with io.VideoWriter(output, width=width, height=height, time_base=frames[0].time_base, rate=None, crf=0,
                        audio_from=None) as writer:
        for frame in frames:
            writer.write(frame.image, frame.pts)
    return chroma([frame.image for frame in io.read_video(output, max_side=None)], [frame.image for frame in frames])


def clip_rows(clip: Path, style: Path, config: Config, work: Path) -> dict:
    rows, floor = {}, codec_floor(clip, config, work)
    for mode in MODES:
        output = work / f"clip-{mode}.mp4"
        start = time.perf_counter()
        summary = run.stylize_video(clip, [style], output, replace(config, preserve_colors=mode, crf=0), overwrite=True)
        seconds = time.perf_counter() - start
        outputs = [frame.image for frame in io.read_video(output, max_side=None)]
        contents = [frame.image for frame in io.read_video(clip, max_side=config.max_side)]
        rows[mode] = {"ab": chroma(outputs, contents), "style": luminance_style_loss(outputs, style, config),
                      "codec": floor,
                      "matched": luminance_style_loss(outputs, style, config, matched_to=contents[0]),
                      "warp": warp_error(outputs, contents), "content_warp": warp_error(contents, contents),
                      "seconds": seconds, "iterations": sum(f.iterations for f in summary.frames),
                      "size": f"{summary.width}x{summary.height}x{summary.n_frames}"}
    return rows


def print_table(title: str, rows: dict) -> None:
    print(f"\n{title}\n")
    warp = "warp" in rows["none"]
    print("| mode | a*b* difference | x none | style loss on luminance | ... against the matched luminance |"
          + (" warp error |" if warp else "") + " iterations | seconds |")
    print("|---|---|---|---|---|" + ("---|" if warp else "") + "---|---|")
    for mode, row in rows.items():
        cells = [mode, f"{row['ab']:.2f}", f"{row['ab'] / rows['none']['ab']:.2f}", f"{row['style']:.4g}",
                 f"{row['matched']:.4g}"]
        if warp:
            cells.append(f"{row['warp']:.6f}")
        cells += [str(row["iterations"]), f"{row['seconds']:.0f}"]
        print("| " + " | ".join(cells) + " |")
    if warp:
        print(f"\ncontent warp error (the flow's floor): {rows['none']['content_warp']:.6f}; "
              f"a*b* difference of the content through the H.264 writer alone: {rows['none']['codec']:.2f}; "
              f"size {rows['none']['size']}")
    else:
        print(f"\nsize {rows['none']['size']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("photo", type=Path, help="An image, or a video with --photo-frame.")
    parser.add_argument("-s", "--style", type=Path, required=True)
    parser.add_argument("--photo-frame", type=int, default=None, help="Use this frame of PHOTO (a video).")
    parser.add_argument("--clip", type=Path, default=None)
    parser.add_argument("--start", type=int, default=110)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("-c", "--config", type=Path, default=None, help="Preset for the photo and the clip.")
    parser.add_argument("--clip-config", type=Path, default=None, help="Preset for the clip (default: --config).")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="Override a config key.")
    parser.add_argument("--picture", type=Path, default=None, help="Write the photo's side-by-side PNG here.")
    args = parser.parse_args()
    overrides = {key: _value(value) for key, value in (item.split("=", 1) for item in args.set)}
    config = load_config(args.config, device="cpu", **overrides)
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        photo = args.photo
        if args.photo_frame is not None:
            frame = next(f.image for i, f in enumerate(io.read_video(photo, max_side=None)) if i == args.photo_frame)
            photo = work / "photo.png"
            io.write_image(photo, frame)
        rows, images = photo_rows(photo, args.style, config, work)
        print_table(f"photo {args.photo}" + (f" frame {args.photo_frame}" if args.photo_frame is not None else ""), rows)
        if args.picture:
            labels = [["content"], *([f"--preserve-colors {mode}"] for mode in MODES)]
            io.write_image(args.picture, preview.grid(images, labels, columns=len(images)))
        if args.clip:
            clip_config = load_config(args.clip_config or args.config, device="cpu", **overrides)
            clip = work / "clip.mkv"
            cut_clip(args.clip, clip, start=args.start, n_frames=args.frames, max_side=clip_config.max_side)
            print_table(f"clip {args.clip} frames {args.start}-{args.start + args.frames - 1}",
                        clip_rows(clip, args.style, clip_config, work))


def _value(text: str) -> object:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


if __name__ == "__main__":
    main()
