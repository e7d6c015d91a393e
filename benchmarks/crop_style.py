"""Style loss of a whole frame against that of its crops: why the network engine trains on whole-frame Grams.

    python benchmarks/crop_style.py FRAME -s samples/styles/swirl.png --stylized OPTIMIZED.png
        [--model NETWORK.safetensors ...] [--crop 256] [--at TOP,LEFT ...]

FRAME is a content frame at the working size; each `--stylized` image is a result for it (say
`stylereel image FRAME -s STYLE -o OPTIMIZED.png`), and each `--model` paints FRAME with a kept
network (`engines.py --save-model`, `stylereel train`). Prints a Markdown table of each one's
style loss (the evaluator's: unweighted, the style read at the frame's long side x `style_scale`)
over the whole frame and over `--crop`-px squares of it at each `--at` (default: the top left, the
top right and the middle), each crop against the content of the same square. A result whose crops
all score far above its whole frame matches the style's Grams only as a whole: its regions carry
different parts of the style's statistics.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from stylereel.pipeline import io
from stylereel.pipeline.config import load_config
from stylereel.pipeline.evaluate import Evaluator, evaluator, frame_style_content
from stylereel.pipeline.network import load_network


def style_losses(judge: Evaluator, image: torch.Tensor, content: torch.Tensor, windows: list) -> list[float]:
    """The evaluator's style loss of `image` (1, 3, H, W) whole, then of each (top, left, side) window of it."""
    views = [(image, content)] + [(image[..., t : t + s, l : l + s], content[..., t : t + s, l : l + s])
                                  for t, l, s in windows]
    return [frame_style_content(judge, view, guide)[0] for view, guide in views]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("frame", type=Path)
    parser.add_argument("-s", "--style", type=Path, required=True)
    parser.add_argument("--stylized", type=Path, action="append", default=[])
    parser.add_argument("--model", type=Path, action="append", default=[])
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--at", action="append", default=[], metavar="TOP,LEFT")
    args = parser.parse_args()
    content = io.to_tensor(io.read_image(args.frame))
    h, w = content.shape[-2:]
    side = min(args.crop, h, w)
    corners = [tuple(map(int, at.split(","))) for at in args.at] or [(0, 0), (0, w - side), ((h - side) // 2, (w - side) // 2)]
    windows = [(top, left, side) for top, left in corners]
    judge = evaluator([args.style], load_config(None), long_side=max(h, w))
    results = {"content": content} | {path.name: io.to_tensor(io.read_image(path)) for path in args.stylized}
    for path in args.model:
        with torch.no_grad():
            results[path.name] = load_network(path)[0](content)
    print(f"{args.frame.name} ({w}x{h}), style {args.style.name}: style loss of the whole frame and of {side}-px crops")
    print("| image | whole | " + " | ".join(f"crop at {t},{l} (x whole)" for t, l, _ in windows) + " |")
    print("|---|---|" + "---|" * len(windows))
    for name, image in results.items():
        whole, *crops = style_losses(judge, image, content, windows)
        print(f"| {name} | {whole:.3e} | " + " | ".join(f"{loss:.3e} ({loss / whole:.2f}x)" for loss in crops) + " |")


if __name__ == "__main__":
    main()
