"""Every sample beside its nearest training image, closest first: the look that replication needs.

    python benchmarks/judge_samples.py --model reference --n 256 --name reference-9000
    python benchmarks/closest_pairs.py reference-9000 [--bands 1 65 129 193 241] [--per-band 16]

Reads the samples judge_samples.py kept in runs/judged/NAME.npz, finds each one's nearest
training image in pixels (mirrors included, as the trainer flips), and writes
runs/judged/NAME-closest.png: one band of pairs per starting rank (sample above, its nearest
training image below, 3x enlarged), so the whole range of distances can be looked at.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from pddlib.data import load_images
from pddlib.metrics import replication
from pddlib.metrics.features import as_uint8


def pairs_figure(samples: np.ndarray, train: np.ndarray, order: np.ndarray, nearest: np.ndarray,
                 flipped: np.ndarray, distance: np.ndarray, bands: list[int],
                 per_band: int) -> Image.Image:
    """Bands of (sample, nearest training image) columns, each labelled with rank and distance."""
    s, pad, label = samples.shape[1] * 3, 4, 12
    band_h = label + 2 * s + pad * 3
    sheet = Image.new("RGB", (per_band * (s + pad) + pad, len(bands) * band_h), "white")
    draw = ImageDraw.Draw(sheet)
    for b, start in enumerate(bands):
        for k, rank in enumerate(range(start - 1, min(start - 1 + per_band, len(order)))):
            i = order[rank]
            match = train[nearest[i]][:, ::-1] if flipped[i] else train[nearest[i]]
            x, y = pad + k * (s + pad), b * band_h
            draw.text((x, y), f"#{rank + 1} d={distance[i]:.3f}", fill="black")
            for row, im in enumerate((samples[i], match)):
                big = Image.fromarray(im).resize((s, s), Image.Resampling.NEAREST)
                sheet.paste(big, (x, y + label + row * (s + pad)))
    return sheet


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("name", help="a judge_samples.py run in runs/judged")
    ap.add_argument("--bands", type=int, nargs="+", default=[1, 65, 129, 193, 241])
    ap.add_argument("--per-band", type=int, default=16)
    args = ap.parse_args()
    kept = np.load(Path("runs/judged") / f"{args.name}.npz")
    samples = kept["images"]
    train = as_uint8(load_images("openclipart", split="train"), size=samples.shape[1])
    nb = replication(samples, train, spaces=("pixel",), background=False,
                     progress=False)["pixel"].neighbours
    distance = nb.distance[:, 0]
    order = np.argsort(distance)
    print(f"{len(samples)} samples; nearest-image pixel distance quantiles (0, 25, 50, 75, 100 %): "
          f"{np.quantile(distance, [0, .25, .5, .75, 1]).round(3).tolist()}")
    out = Path("runs/judged") / f"{args.name}-closest.png"
    pairs_figure(samples, train, order, nb.index[:, 0], nb.flipped[:, 0], distance, args.bands,
                 args.per_band).save(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
