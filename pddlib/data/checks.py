"""The trust boundary: every row is checked before anything trains on it, evaluates it or lists it.

What is checked, and what happens (the same for the embedded set, a scraped folder, a folder
edited by hand, and any dataset handed to the trainer):
- a row's licence decision: a licence naming public domain or CC0 (and no other licence), the
  reason it was accepted, its source, and a sha1 identity. A folder row that fails is EXCLUDED
  with its reason and reported; a dataset given straight to `train` that has one is REFUSED
  (it never passed a loader that could report it);
- the row's file: a path inside the folder (not absolute, no `..`, no symlink), present,
  a readable, complete image within the pixel limit (decompression bombs). Failures are
  EXCLUDED with their reason;
- duplicate sha1s: later rows are EXCLUDED as duplicates of the first;
- the metadata file itself: a line that is not a JSON object, or lacks schema columns, REFUSES
  the whole load with the file and line number, since a partial read must never pass for all.
Images in other modes (transparent, palette, greyscale, CMYK, 16-bit, EXIF-rotated) are
converted to RGB on white, as the embedded set is.
"""

from __future__ import annotations

import json
import re
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from pddlib.data.schema import COLUMNS

MAX_PIXELS = 40_000_000  # larger images are refused as possible decompression bombs
PD_WORDS = re.compile(r"public[ -]?domain|\bpd\b|\bcc0\b|cc-zero|publicdomain", re.IGNORECASE)
NON_PD_WORDS = re.compile(r"\bcc[- ]by\b|\bby-(sa|nc|nd)\b|gfdl|\bl?gpl\b|all rights reserved|"
                          r"non-?free|fair use|creativecommons\.org/licenses/by", re.IGNORECASE)
SHA1 = re.compile(r"^[0-9a-f]{40}$")
LICENCE_COLUMNS = ("source", "source_url", "license", "license_url", "license_reason", "sha1")


def row_problems(row: dict) -> list[str]:
    """Why one row lacks an accepted public-domain/CC0 decision ([] when it has one)."""
    problems = [f"no {f}" for f in ("source", "source_url", "license") if not row.get(f)]
    lic = f"{row.get('license') or ''} {row.get('license_url') or ''}"
    if row.get("license") and not PD_WORDS.search(lic):
        problems.append(f"licence {row['license']!r} is not public domain or CC0")
    if NON_PD_WORDS.search(lic):
        problems.append(f"licence names a non-public-domain licence: {lic.strip()!r}")
    if not str(row.get("license_reason") or "").strip():
        problems.append("no recorded reason why the licence was accepted")
    if not SHA1.match(str(row.get("sha1") or "")):
        problems.append(f"sha1 {row.get('sha1')!r} is not a 40-digit hex digest")
    return problems


@dataclass(frozen=True)
class Exclusion:
    """A row left out of a load, and why."""

    line: int  # 1-based line of metadata.jsonl (row number for other sources)
    file: str
    reason: str

    @property
    def code(self) -> str:
        """The kind of reason (what summaries count): the text before the first colon."""
        return self.reason.split(":", 1)[0]

    @property
    def detail(self) -> str:
        """The reason without its kind."""
        return self.reason.split(": ", 1)[-1]


@dataclass
class LoadReport:
    """What a load kept and what it left out."""

    source: str
    kept: int = 0
    excluded: list[Exclusion] = field(default_factory=list)
    empty_classes: list[str] = field(default_factory=list)

    def lines(self, first: int = 3) -> list[str]:
        """A short human summary: counts by reason, the first few files of each."""
        out = [f"{self.source}: {self.kept} images kept, {len(self.excluded)} excluded"]
        for code, n in Counter(e.code for e in self.excluded).most_common():
            some = [e for e in self.excluded if e.code == code][:first]
            out.append(f"  {n} x {code}: " + "; ".join(f"line {e.line} {e.file!r} ({e.detail})"
                                                       for e in some))
        if self.empty_classes:
            out.append(f"  classes with no images left (dropped): {self.empty_classes}")
        return out

    def warn(self) -> None:
        """Say what was excluded (a warning shows in notebooks and on the command line)."""
        if self.excluded or self.empty_classes:
            warnings.warn("\n".join(self.lines()), ExcludedRowsWarning, stacklevel=3)


class ExcludedRowsWarning(UserWarning):
    """Rows were left out of a load (their reasons are in the message)."""


def read_metadata(meta_file: Path) -> list[tuple[int, dict]]:
    """(line number, row) of a metadata.jsonl; a bad line refuses the load, naming it."""
    rows = []
    with meta_file.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{meta_file} line {n} is not valid JSON ({e.msg}): fix or "
                                 "delete that line, or rescrape with `pddlib scrape`.") from None
            if not isinstance(row, dict):
                # ValueError, not TypeError: a user's file, reported in one line by the CLI.
                raise ValueError(  # noqa: TRY004
                    f"{meta_file} line {n} is not a JSON object: fix or delete that line.")
            missing = [c for c in (*COLUMNS, "file_name") if c not in row and c != "image"]
            if missing:
                raise ValueError(f"{meta_file} line {n} lacks the schema columns {missing}: every row "
                                 "needs file_name and the common schema (rescrape with pddlib).")
            rows.append((n, row))
    return rows


def inside(folder: Path, file_name: str) -> Path:
    """The file's path if it stays inside `folder` (no absolute path, `..` or symlink)."""
    rel = Path(str(file_name))
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise ValueError(f"path leaves the folder: {file_name!r}")
    path = folder / rel
    for part in [path, *path.parents]:
        if part == folder:
            break
        if part.is_symlink():
            raise ValueError(f"path leaves the folder: {file_name!r} goes through a symlink")
    return path


def to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL image as RGB: EXIF orientation applied, transparency on white, 16-bit scaled."""
    img = ImageOps.exif_transpose(img) or img
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img).astype(np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        img = Image.fromarray(np.clip(arr / top * 255 + 0.5, 0, 255).astype(np.uint8), "L")
    if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return img.convert("RGB")


def is_plain_rgb(img: Image.Image) -> bool:
    """True when the file decodes to what a viewer shows: RGB, no transparency, upright."""
    return (img.mode == "RGB" and "transparency" not in img.info
            and img.getexif().get(0x0112, 1) == 1)


def open_image(path: Path) -> tuple[Image.Image, bool]:
    """(a fully decoded RGB image, whether it had to be converted), or ValueError saying why
    the file cannot be used."""
    if not path.is_file():
        raise ValueError(f"missing file: {path.name} is not in the folder")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                if img.width * img.height > MAX_PIXELS:
                    raise ValueError(f"too large: {img.width}x{img.height} pixels "
                                     "(a possible decompression bomb)")
                img.load()  # decode it all now: a truncated file fails here, not in training
                return (img, False) if is_plain_rgb(img) else (to_rgb(img), True)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ValueError("too large: a possible decompression bomb") from None
    except UnidentifiedImageError:
        raise ValueError("not an image: the file is not in a format PIL can read") from None
    except OSError as e:
        raise ValueError(f"unreadable image: {e} (a truncated or corrupt file)") from None


def check_row(folder: Path, row: dict, seen: dict[str, int]) -> Image.Image | dict:
    """The row's image if the row passes every check, else ValueError with the reason.

    A file that already decodes to plain RGB is returned as {"path": ...} for `datasets` to
    read when needed (a large folder then never sits decoded in memory); any other is converted.
    """
    problems = row_problems(row)
    if problems:
        raise ValueError("licence not accepted: " + "; ".join(problems))
    if row["sha1"] in seen:
        raise ValueError(f"duplicate: same sha1 as line {seen[row['sha1']]}")
    path = inside(folder, row["file_name"])
    image, converted = open_image(path)
    return image if converted else {"path": str(path), "bytes": None}


def require_accepted(dataset) -> None:
    """Refuse a dataset with any row lacking an accepted licence decision, naming the rows."""
    cols = [c for c in ("title", *LICENCE_COLUMNS) if c in dataset.column_names]
    rows = dataset.select_columns(cols).to_list() if cols else [{}] * len(dataset)
    bad = [(i, r, p) for i, r in enumerate(rows) if (p := row_problems(r))]
    if bad:
        i, r, p = bad[0]
        raise ValueError(
            f"{len(bad)} of {len(rows)} rows have no accepted public-domain/CC0 licence "
            f"decision, e.g. row {i} ({r.get('title') or 'untitled'!r}): {'; '.join(p)}. Nothing "
            "is trained on without one: load images with pddlib.data.load_images, which leaves "
            "such rows out and says why.")
