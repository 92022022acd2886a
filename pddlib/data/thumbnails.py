"""Downloaded thumbnails: checked against what the API promised, stripped, safely named."""

from __future__ import annotations

import hashlib
import io
import re
import unicodedata

from PIL import Image

from pddlib.data.checks import to_rgb
from pddlib.data.httpclient import Refuse, Retry

THUMB_MIME = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
THUMB_FORMATS = frozenset({"JPEG", "PNG", "GIF", "WEBP"})


def slug(title: str, sha1: str) -> str:
    """A file stem that can never leave its folder: ASCII [A-Za-z0-9_-] of the title + sha1."""
    stem = title.removeprefix("File:").rsplit(".", 1)[0]
    ascii_ = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode()
    clean = re.sub(r"[^A-Za-z0-9_-]+", "_", ascii_).strip("_-")[:60] or "file"
    return f"{clean}-{sha1[:12]}"


def verify(data: bytes, size: tuple[int, int], max_pixels: int,
           sha1: str | None = None) -> Image.Image:
    """Decode a download fully and check its size (and `sha1`, for an original) as promised."""
    if sha1 is not None and hashlib.sha1(data).hexdigest() != sha1:
        raise Retry("checksum mismatch: sha1 differs from the one Commons reports")
    try:
        img = Image.open(io.BytesIO(data))
        if img.format not in THUMB_FORMATS:
            raise Refuse(f"mime not allowed: decoded as {img.format}")
        if img.width * img.height > max_pixels:
            raise Refuse(f"oversized: {img.width}x{img.height} px (decompression-bomb guard)")
        img.load()  # raises on truncated data; nothing is kept from a partial decode
    except Image.DecompressionBombError as e:
        raise Refuse(f"oversized: {e}") from e
    except (OSError, SyntaxError, ValueError) as e:
        raise Retry(f"undecodable download: {type(e).__name__}") from e
    tw, th = size
    if abs(img.width - tw) > 1 or abs(img.height - th) > 1:
        raise Retry(f"size mismatch: got {img.width}x{img.height}, Commons said {tw}x{th}")
    return img


def clean_image(img: Image.Image) -> tuple[Image.Image, str]:
    """Re-encodable copy without any metadata: orientation applied, RGB on white; and format."""
    fmt = "PNG" if img.format in ("PNG", "GIF") else "JPEG"
    rgb = to_rgb(img)  # keep what the viewer saw (orientation, white under transparency)
    # A fresh image carries no info dict: no EXIF/GPS, XMP, comments or ICC profile can leak.
    return Image.frombytes("RGB", rgb.size, rgb.tobytes()), fmt


def encode(img: Image.Image, fmt: str) -> bytes:
    """The bytes stored for a cleaned image: JPEG at quality 95, or optimised PNG."""
    buf = io.BytesIO()
    img.save(buf, fmt, **({"quality": 95} if fmt == "JPEG" else {"optimize": True}))
    return buf.getvalue()


__all__ = ["THUMB_FORMATS", "THUMB_MIME", "clean_image", "encode", "slug", "verify"]
