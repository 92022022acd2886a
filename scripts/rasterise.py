"""SVG to small square thumbnails: size parsing, bounded rendering, white compositing, dedupe.

Pure functions used by the openclipart builder (scripts/build_openclipart.py). Only
`render_svg` needs cairosvg, a maintainer-only dependency imported inside the function.
"""

from __future__ import annotations

import multiprocessing
import re
import xml.etree.ElementTree as ET

import numpy as np
from PIL import Image

from pddlib.data.dedup import small_features

# CSS absolute units in px at 96 dpi, the resolution cairosvg and browsers use.
UNITS_PX = {"": 1.0, "px": 1.0, "pt": 96 / 72, "pc": 16.0, "in": 96.0, "cm": 96 / 2.54,
            "mm": 96 / 25.4, "em": 16.0, "ex": 8.0}
_LENGTH = re.compile(r"^\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*([a-z%]*)\s*$")
WHITE = (255, 255, 255)


def parse_length(text: str | None) -> float | None:
    """Parse an SVG length ("12", "3.5pt", "20mm") into px; None if absent, relative or bad."""
    if text is None:
        return None
    m = _LENGTH.match(text)
    if not m or m.group(2) not in UNITS_PX:  # "%" or unknown units: no absolute size.
        return None
    value = float(m.group(1)) * UNITS_PX[m.group(2)]
    return value if value > 0 else None


def svg_size(svg: bytes) -> tuple[float, float]:
    """Natural (width, height) in px of an SVG document, from width/height or its viewBox.

    Raises ValueError when neither gives a positive size (the file cannot be laid out).
    """
    root = ET.fromstring(svg)
    w, h = parse_length(root.get("width")), parse_length(root.get("height"))
    box = None
    if root.get("viewBox"):
        parts = [float(p) for p in re.split(r"[\s,]+", root.get("viewBox").strip()) if p]
        if len(parts) == 4 and parts[2] > 0 and parts[3] > 0:
            box = parts[2], parts[3]
    if w and h:
        return w, h
    if box and (w or h):  # One side given: the other follows the viewBox aspect ratio.
        return (w, w * box[1] / box[0]) if w else (h * box[0] / box[1], h)
    if box:
        return box
    raise ValueError("SVG has no usable width/height or viewBox")


def bounded_size(width: float, height: float, max_side: int) -> tuple[int, int]:
    """Render size (w, h) in px with the longest side exactly `max_side`, aspect kept.

    Rendering straight at this size bounds memory and time whatever the natural size (some
    clip art is > 100 megapixels at natural size) and upsamples tiny icons to full detail.
    """
    scale = max_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def render_svg(svg: bytes, width: int, height: int) -> Image.Image:
    """Rasterise SVG bytes to an RGBA image of exactly (width, height) with cairosvg."""
    import io

    import cairosvg  # maintainer-only dependency (the `build` extra)

    png = cairosvg.svg2png(bytestring=svg, output_width=width, output_height=height,
                           unsafe=False)
    return Image.open(io.BytesIO(png)).convert("RGBA")


def _render_child(conn, svg: bytes, width: int, height: int) -> None:
    """Child-process body of `render_svg_timeout`: send back (mode, size, bytes) or an error."""
    try:
        im = render_svg(svg, width, height)
        conn.send(("ok", im.size, im.tobytes()))
    except Exception as e:  # noqa: BLE001 - any failure is a skip reason, reported to the parent
        conn.send(("error", type(e).__name__, str(e)[:200]))
    finally:
        conn.close()


def render_svg_timeout(svg: bytes, width: int, height: int, timeout: float) -> Image.Image:
    """`render_svg` in a child process killed after `timeout` s (TimeoutError), so a
    pathological SVG cannot hang the build; render errors come back as RuntimeError."""
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_render_child, args=(child, svg, width, height), daemon=True)
    proc.start()
    child.close()
    try:
        if not parent.poll(timeout):
            raise TimeoutError(f"rendering took longer than {timeout:g} s")
        msg = parent.recv()
    except EOFError as e:  # the child died (e.g. a crash inside cairo)
        raise RuntimeError("renderer process died") from e
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join()
        parent.close()
    if msg[0] != "ok":
        raise RuntimeError(f"{msg[1]}: {msg[2]}")
    return Image.frombytes("RGBA", msg[1], msg[2])


def composite_on_white(image: Image.Image) -> Image.Image:
    """Flatten any transparency onto a white background and return RGB."""
    rgba = image.convert("RGBA")
    canvas = Image.new("RGBA", rgba.size, WHITE + (255,))
    return Image.alpha_composite(canvas, rgba).convert("RGB")


def content_box(image: Image.Image, threshold: int = 250) -> tuple[int, int, int, int] | None:
    """Bounding box (left, top, right, bottom) of non-white pixels of an RGB image, or None."""
    a = np.asarray(image.convert("RGB"))
    ink = (a < threshold).any(axis=2)
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    if rows.size == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def pad_square(image: Image.Image, margin: float = 0.0) -> Image.Image:
    """Centre an RGB image on a white square canvas (side = longest side * (1 + 2*margin))."""
    w, h = image.size
    side = round(max(w, h) * (1 + 2 * margin))
    canvas = Image.new("RGB", (side, side), WHITE)
    canvas.paste(image.convert("RGB"), ((side - w) // 2, (side - h) // 2))
    return canvas


def thumbnail(image: Image.Image, size: int = 64, margin: float = 0.04,
              crop: bool = True) -> Image.Image:
    """RGBA/RGB render -> RGB (size, size): on white, cropped to its content, padded square.

    Cropping to the drawing matters because many files sit on a page-sized canvas with a
    small drawing; at 64 px the drawing would otherwise shrink to a few pixels.
    """
    rgb = composite_on_white(image)
    box = content_box(rgb) if crop else None
    if box is not None:
        rgb = rgb.crop(box)
    return pad_square(rgb, margin).resize((size, size), Image.Resampling.LANCZOS)


def blank_fraction(image: Image.Image, threshold: int = 250) -> float:
    """Fraction of (near-)white pixels of an image, in [0, 1]."""
    a = np.asarray(image.convert("RGB"))
    return float((a >= threshold).all(axis=2).mean())


def near_duplicates(images: np.ndarray, threshold: float = 0.02,
                    side: int = 16) -> list[tuple[int, int]]:
    """Find near-duplicates in (N, H, W, 3) uint8 images, earliest row kept.

    Returns (dropped, kept) index pairs: row j is dropped when an earlier kept row i has mean
    absolute difference below `threshold` on `side` x `side` downsampled pixels (exact
    duplicates have distance 0). Deterministic given the row order.
    """
    feats = small_features(images, side)
    kept: list[int] = []
    pairs: list[tuple[int, int]] = []
    for j in range(len(feats)):
        if kept:
            d = np.abs(feats[kept] - feats[j]).mean(axis=1)
            i = int(np.argmin(d))
            if d[i] < threshold:
                pairs.append((j, kept[i]))
                continue
        kept.append(j)
    return pairs
