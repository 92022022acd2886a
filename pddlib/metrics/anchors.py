"""Sanity anchors for a quality score: real images degraded in known ways, to read a number against.

A score means little alone. Held-out real images against training images give its floor (the
best any model could do at that sample size). Two families of degraded real images then test
whether a feature network sees what a person sees:
  - `MILD`: degradations that keep an image recognisable (slight blur, JPEG, a small shift, a
    small colour change) -- a person still names every class;
  - `DESTRUCTIVE`: degradations that keep colours and rough layout but destroy shape (heavy blur,
    block-averaging, shuffled patches, colour blobs) -- a person names almost none.
A judge worth tuning against scores every mild anchor closer to the real images than every
destructive one; pure noise is the far ceiling.
"""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter

from pddlib.data.transforms import as_uint8


def _per_image(arr: np.ndarray, fn) -> np.ndarray:
    """Apply fn (PIL image -> PIL image) to each image of a uint8 (N, S, S, 3) array."""
    if not len(arr):
        return arr
    return np.stack([np.asarray(fn(Image.fromarray(a)).convert("RGB"), dtype=np.uint8) for a in arr])


def blurred(images, radius: float = 2.0, size: int | None = None) -> np.ndarray:
    """Gaussian-blurred copies (uint8 (N, S, S, 3)) of an image collection, blurred at `size` px."""
    return _per_image(as_uint8(images, size=size), lambda im: im.filter(ImageFilter.GaussianBlur(radius)))


def jpeg(images, quality: int = 75, size: int | None = None) -> np.ndarray:
    """Copies re-encoded as JPEG at `quality` (block artefacts, chroma loss)."""
    def encode(im: Image.Image) -> Image.Image:
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=quality)
        return Image.open(io.BytesIO(buf.getvalue()))
    return _per_image(as_uint8(images, size=size), encode)


def shifted(images, pixels: int = 2, size: int | None = None) -> np.ndarray:
    """Copies moved `pixels` right and down, the uncovered border filled white like the data."""
    arr = as_uint8(images, size=size)
    out = np.full_like(arr, 255)
    out[:, pixels:, pixels:] = arr[:, :arr.shape[1] - pixels, :arr.shape[2] - pixels]
    return out


def hue_rotation(angle: float) -> np.ndarray:
    """3x3 matrix rotating RGB colours by `angle` radians about the grey axis (greys stay put)."""
    k = np.ones(3) / np.sqrt(3)
    cross = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * cross @ cross


def recoloured(images, angle: float = 0.25, size: int | None = None) -> np.ndarray:
    """Copies with a small colour change: hues turned by `angle` radians, white and greys kept."""
    arr = as_uint8(images, size=size).astype(np.float32)
    return np.clip(arr @ hue_rotation(angle).T.astype(np.float32), 0, 255).round().astype(np.uint8)


def block_averaged(images, blocks: int = 4, size: int | None = None) -> np.ndarray:
    """Copies reduced to a blocks x blocks mosaic of mean colours (layout and palette, no shape)."""
    arr = as_uint8(images, size=size)
    n, s = arr.shape[0], arr.shape[1]
    if s % blocks:
        raise ValueError(f"block_averaged needs a size divisible by {blocks}, got {s} px")
    b = s // blocks
    means = arr.reshape(n, blocks, b, blocks, b, 3).astype(np.float32).mean(axis=(2, 4))
    return np.repeat(np.repeat(means, b, axis=1), b, axis=2).round().astype(np.uint8)


def patch_shuffled(images, patches: int = 4, seed: int = 0, size: int | None = None) -> np.ndarray:
    """Copies cut into patches x patches tiles, the tiles of each image put back in random order."""
    arr = as_uint8(images, size=size)
    n, s = arr.shape[0], arr.shape[1]
    if s % patches:
        raise ValueError(f"patch_shuffled needs a size divisible by {patches}, got {s} px")
    b = s // patches
    tiles = arr.reshape(n, patches, b, patches, b, 3).transpose(0, 1, 3, 2, 4, 5).reshape(
        n, patches * patches, b, b, 3)
    rng = np.random.default_rng(seed)
    tiles = np.stack([t[rng.permutation(len(t))] for t in tiles])
    return tiles.reshape(n, patches, patches, b, b, 3).transpose(0, 1, 3, 2, 4, 5).reshape(arr.shape)


def colour_blobs(images, blobs: int = 5, seed: int = 0, size: int | None = None) -> np.ndarray:
    """Per image, soft ellipses on white in colours drawn from its own non-white pixels."""
    arr = as_uint8(images, size=size)
    rng = np.random.default_rng(seed)
    out = []
    for a in arr:
        s = a.shape[0]
        pixels = a.reshape(-1, 3)
        ink = pixels[pixels.min(axis=1) < 240]
        ink = ink if len(ink) else pixels
        im = Image.new("RGB", (s, s), (255, 255, 255))
        draw = ImageDraw.Draw(im)
        for _ in range(blobs):
            cx, cy = rng.uniform(0.2, 0.8, 2) * s
            rx, ry = rng.uniform(0.1, 0.3, 2) * s
            draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry),
                         fill=tuple(int(c) for c in ink[rng.integers(len(ink))]))
        out.append(np.asarray(im.filter(ImageFilter.GaussianBlur(s / 32)), dtype=np.uint8))
    return np.stack(out) if out else arr


def noise_images(n: int, size: int, generator: torch.Generator | None = None) -> np.ndarray:
    """n images of uniform random pixels, uint8 (n, size, size, 3)."""
    x = torch.randint(0, 256, (n, size, size, 3), generator=generator, dtype=torch.uint8)
    return x.numpy()


# name -> degradation (uint8 (N, S, S, 3) -> uint8), at the course's 32 px.
MILD = {
    "mild blur (r 0.5)": lambda a: blurred(a, radius=0.5),
    "JPEG q 75": lambda a: jpeg(a, quality=75),
    "shift 2 px": lambda a: shifted(a, pixels=2),
    "hue turned 15 deg": lambda a: recoloured(a, angle=0.25),
}
DESTRUCTIVE = {
    "heavy blur (r 3)": lambda a: blurred(a, radius=3.0),
    "block average 4x4": lambda a: block_averaged(a, blocks=4),
    "patch shuffle 4x4": lambda a: patch_shuffled(a, patches=4),
    "colour blobs": lambda a: colour_blobs(a),
}


def degradation_anchors(images, size: int = 32) -> dict[str, np.ndarray]:
    """{anchor name: degraded uint8 copies} of images at `size` px, MILD then DESTRUCTIVE."""
    arr = as_uint8(images, size=size)
    return {name: fn(arr) for name, fn in {**MILD, **DESTRUCTIVE}.items()}
