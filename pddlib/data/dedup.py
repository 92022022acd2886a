"""Near-duplicate pictures: a perceptual hash, and an index searched by Hamming distance."""

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


__all__ = ["HashIndex", "dhash"]
