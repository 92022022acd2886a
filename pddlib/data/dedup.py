"""Near-duplicate pictures: a perceptual hash searched by Hamming distance, and small-pixel matches."""

from __future__ import annotations

import numpy as np
from PIL import Image


def dhash(img: Image.Image) -> int:
    """64-bit difference hash: near-identical pictures differ in few bits."""
    g = np.asarray(img.convert("L").resize((9, 8), Image.Resampling.LANCZOS), dtype=np.int16)
    bits = (g[:, 1:] > g[:, :-1]).flatten()
    return int("".join("1" if b else "0" for b in bits), 2)


class HashIndex:
    """Perceptual hashes of accepted images, searched by Hamming distance in one numpy pass."""

    def __init__(self) -> None:
        self.hashes = np.zeros(64, dtype=np.uint64)
        self.titles: list[str] = []

    def add(self, h: int, title: str) -> None:
        """Remember the hash of one accepted image."""
        if len(self.titles) == len(self.hashes):
            self.hashes = np.concatenate([self.hashes, np.zeros_like(self.hashes)])
        self.hashes[len(self.titles)] = h
        self.titles.append(title)

    def nearest(self, h: int, max_bits: int) -> tuple[str, int] | None:
        """(title, distance) of the closest stored hash within max_bits, else None."""
        n = len(self.titles)
        if n == 0:
            return None
        xor = (self.hashes[:n] ^ np.uint64(h)).view(np.uint8).reshape(n, 8)
        dist = np.unpackbits(xor, axis=1).sum(axis=1)
        i = int(dist.argmin())
        return (self.titles[i], int(dist[i])) if dist[i] <= max_bits else None


def small_features(images: np.ndarray, side: int = 16) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N, side*side*3) float32 in [0, 1]: box-downsampled pixels."""
    n, h, w, _ = images.shape
    if h % side or w % side:
        raise ValueError(f"image size {h}x{w} is not a multiple of {side}")
    x = images.astype(np.float32).reshape(n, side, h // side, side, w // side, 3).mean((2, 4))
    return (x / 255.0).reshape(n, -1)


# The embedded sets' near-duplicate rule: mean absolute difference on 16 x 16 pixels.
NEAR_DUPLICATE = 0.02


def duplicates_in(queries: np.ndarray, reference: np.ndarray, threshold: float = NEAR_DUPLICATE,
                  side: int = 16, mirrors: bool = True) -> np.ndarray:
    """For each query image, the row of a near-duplicate in `reference` (its mirror counts), else -1.

    Both uint8 (N, S, S, 3) at one size. What leaks across a split: a held-out drawing whose
    twin, or mirror image, is a training image is no control for copying.
    """
    r = small_features(reference, side)
    rf = small_features(np.ascontiguousarray(reference[:, :, ::-1]), side) if mirrors else r
    rows = np.full(len(queries), -1)
    for i, q in enumerate(small_features(queries, side)):  # one query at a time: bounded memory
        d = np.minimum(np.abs(r - q).mean(1), np.abs(rf - q).mean(1))
        if d.min() < threshold:
            rows[i] = int(d.argmin())
    return rows


__all__ = ["NEAR_DUPLICATE", "HashIndex", "dhash", "duplicates_in", "small_features"]
