"""Build pdcorpus64, the multi-source public-domain corpus, with per-image provenance.

Pinned artefacts from the registries this project reaches, each checked against its SHA-256:

    source        registry  artefact                               licence decision
    openclipart   Debian    openclipart-svg 1:0.18+dfsg-19         copyright file: CC PD Dedication
    tango         Debian    tango-icon-theme 0.8.90-11             copyright file: public-domain
    kenney        PyPI      arcade 3.3.3 (assets/images/)          images/License.txt: CC0
    maki          npm       @mapbox/maki 8.2.0 (icons/)            LICENSE.txt: CC0 1.0 Universal
    healthicons   npm       healthicons 2.0.0 (public/icons/svg)   opt-in only: licence unclear

Maintainers only: needs dpkg (and apt-get/pip/npm to download), cairosvg (the `build` extra).

    python scripts/build_corpus.py --cache DIR --out DIR            # artefacts already in DIR
    python scripts/build_corpus.py --cache DIR --out DIR --download # fetch missing ones first
    python scripts/build_corpus.py ... --survey   # one class per source folder (for choosing)
    python scripts/build_corpus.py ... --classes embedded16   # today's 16 classes, for comparison
    python scripts/build_corpus.py ... --install  # copy the npz + datasheet into pddlib/data

Findings behind the pins, licence decisions and class map: docs/corpus_sources.md.

Stages: fetch + verify -> extract -> enumerate candidates with a licence decision per file ->
rasterise every accepted file exactly as scripts/openclipart_builder.py does (SVG rendered at
longest side 256, composited on white, cropped to the drawing, padded square with a 4 % margin,
64x64 Lanczos; PNG sprites the same from their pixels), cached per file SHA-1 so a re-run with
another class map renders nothing -> classes from the class map (first matching rule wins) ->
exact (SHA-1) and near-duplicate removal across all sources, mirror images included (mean abs
difference < 0.02 on 16x16 pixels, the embedded set's rule plus mirrors), in (source priority, class, path) order so Open Clip Art's
images win -> per-class cap (smallest SHA-1 kept) -> outputs in OUT:

    pdcorpus64.npz      images/labels/meta, the layout of pddlib/data/openclipart64.npz
    images/, metadata.jsonl   the same rows as a pddlib dataset folder (load_images(OUT) reads it)
    manifest.json       artefacts (name, version, sha256, size), settings, counts per class x
                        source, every skipped file with its reason
    DATASHEET.md        sources, licences, counts per class and source, biases (--install:
                        pddlib/data/PDCORPUS.md)
    contact_sheet.png   first 16 images of every class (review by eye)

Runs in one process: renders are bounded by SIGALRM, not by a child process.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import xml.etree.ElementTree as ET
import zipfile
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import openclipart_builder as oca  # same folder: the licence rule and constants are reused
import rasterise

from pddlib.checksums import sha256

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "pddlib" / "data"
NPZ = "pdcorpus64.npz"  # pddlib.data.embedded.SETS["pdcorpus"]
DATASHEET = "PDCORPUS.md"


# --------------------------------------------------------------------------- pinned artefacts
@dataclass(frozen=True)
class Artefact:
    """One pinned registry artefact."""

    source: str  # short name used in rows ("source" column)
    kind: str  # deb | wheel | npm
    name: str
    version: str
    file: str  # file name in the cache folder
    sha256: str
    size: int  # bytes
    root: str  # folder (inside the extracted artefact) that holds the images
    license: str
    license_url: str

    @property
    def spec(self) -> str:
        """Registry spec, e.g. debian:tango-icon-theme=0.8.90-11."""
        sep = {"deb": "=", "wheel": "==", "npm": "@"}[self.kind]
        reg = {"deb": "debian", "wheel": "pypi", "npm": "npm"}[self.kind]
        return f"{reg}:{self.name}{sep}{self.version}"


ARTEFACTS: dict[str, Artefact] = {a.source: a for a in (
    Artefact("openclipart", "deb", "openclipart-svg", "1:0.18+dfsg-19",
             "openclipart-svg_1%3a0.18+dfsg-19_all.deb",
             "989712d90d57dfa3230049f553bb43b76c30ee4d4b8c5f6e106e33f7db5cbdc5", 24919068,
             "usr/share/openclipart/svg", oca.LICENSE, oca.LICENSE_URL),
    Artefact("tango", "deb", "tango-icon-theme", "0.8.90-11",
             "tango-icon-theme_0.8.90-11_all.deb",
             "dff317aca52fde744b884a02dd9fc2702a0cc6aaecc22271b5abf6906cd90b94", 1249680,
             "usr/share/icons/Tango/scalable",
             "Public Domain (Creative Commons Public Domain Dedication)",
             "https://creativecommons.org/licenses/publicdomain/"),
    Artefact("kenney", "wheel", "arcade", "3.3.3", "arcade-3.3.3-py3-none-any.whl",
             "25f4e0e5b8bcbe7a7d087c0a23b19e9f423b0c70ec00945c8712c9a3e541ebd2", 42669158,
             "arcade/resources/assets/images",
             "CC0 1.0 Universal (Creative Commons Zero)",
             "https://creativecommons.org/publicdomain/zero/1.0/"),
    Artefact("maki", "npm", "@mapbox/maki", "8.2.0", "mapbox-maki-8.2.0.tgz",
             "f6e59156521117c311c0e73a6aeef8d5039daea9c7fbe1ff9264e18a3ebec87f", 524739, "package/icons",
             "CC0 1.0 Universal (Creative Commons Zero)",
             "https://creativecommons.org/publicdomain/zero/1.0/"),
    Artefact("healthicons", "npm", "healthicons", "2.0.0", "healthicons-2.0.0.tgz",
             "7d29cfc4ffb495319c27b34c9ac96ddc9781c7b3dc3b96eef3d34fe4d3ef9f03", 3260711,
             "package/public/icons/svg/filled",
             "Public Domain (healthicons README)", "https://healthicons.org/about"),
)}
SOURCE_ORDER = ("openclipart", "tango", "kenney", "maki", "healthicons")  # dedup priority
# Built by default. healthicons is not: its README says "public domain" but the package's only
# LICENSE file is MIT and covers the whole package, icons included (the CC0 statement is on the
# project's website only), so its licence is unclear by this course's rule; --sources opts in.
DEFAULT_SOURCES = ("openclipart", "tango", "kenney", "maki")

# Licence statements that must be present, verbatim, in each artefact (checked at build time).
STATEMENTS = {
    "openclipart": ("usr/share/doc/openclipart-svg/copyright",
                    "creative commons Public Domain Dedication"),
    "tango": ("usr/share/doc/tango-icon-theme/copyright",
              "The icons in this repository are herefore released into the Public Domain."),
    "kenney": ("arcade/resources/assets/images/License.txt",
               "Everything in this package is licensed CC0 (see below)."),
    "maki": ("package/LICENSE.txt", "CC0 1.0 Universal"),
    "healthicons": ("package/README.md",
                    "These icons are available in the public domain for use in any type of "
                    "project."),
}

# Kenney (arcade wheel): folders under assets/images/ and their decision. Anything not listed
# (a folder added by a later arcade) is rejected as "no licence decision for this folder".
KENNEY_ACCEPT = ("alien", "animated_characters", "cards", "enemies", "items", "space_shooter",
                 "tiles", "topdown_tanks")
KENNEY_REJECT = {
    "cybercity_background": "excepted: own public-license.txt (Luis Zuno, ansimuz), not CC0",
    "miami_synth_parallax": "excepted: own public-license.txt (Luis Zuno, ansimuz), not CC0",
    "backgrounds": "unstated: not identifiable as a Kenney pack asset",
    "spritesheets": "unstated: not identifiable as a Kenney pack asset",
    "test_textures": "unstated: arcade test textures, not a Kenney pack asset",
    "pinball": "unstated: not identifiable as a Kenney pack asset",
}
RASTER_EXT = (".png",)


# --------------------------------------------------------------------------- class map
# (class, rules); a rule is (source, path prefix relative to the artefact's image root); a prefix
# ending in "/*" takes only the files directly in that folder. First matching class wins;
# files matching no rule are skipped ("folder not used"). Open Clip Art folders are noisy
# (transportation/vehicles holds road signs, transportation/aiga-symbols is all symlinks into
# signs_and_symbols/map_symbols), so counts come from a build, never from folder sizes.
ClassMap = tuple[tuple[str, tuple[tuple[str, str], ...]], ...]
KENNEY_ANIMALS = tuple(("kenney", f"enemies/{n}") for n in
                       ("bee", "fish", "frog", "fly", "ladybug", "mouse", "worm"))
PDCORPUS: ClassMap = (
    ("mammal", (("openclipart", "animals/mammals/"), ("kenney", "enemies/mouse"))),
    ("animal", (("openclipart", "animals/"), *KENNEY_ANIMALS, ("healthicons", "zoonoses/"))),
    ("food", (("openclipart", "food/"), ("healthicons", "nutrition/"))),
    ("flag", (("openclipart", "signs_and_symbols/flags/*"),
              *[("openclipart", f"signs_and_symbols/flags/{r}/") for r in (
                  "africa", "america", "asia", "europe", "historic", "miscellany", "oceania")])),
    ("arrow", (("openclipart", "shapes/arrows/"), ("openclipart", "computer/buttons/"),
               ("tango", "actions/go-"), ("tango", "actions/gtk-go"))),
    ("pictogram", (("openclipart", "transportation/aiga-symbols/"),
                   ("openclipart", "signs_and_symbols/map_symbols/"),
                   ("openclipart", "people/stickmen/"), ("healthicons", "people/"),
                   ("maki", ""))),
    ("sign", (("openclipart", "transportation/roadsigns/"), ("openclipart", "transportation/*"),
              ("openclipart", "signs_and_symbols/*"),
              ("openclipart", "signs_and_symbols/hazard/"))),
    ("vehicle", (("openclipart", "transportation/vehicles/"), ("healthicons", "vehicles/"),
                 ("kenney", "space_shooter/playerShip"), ("kenney", "topdown_tanks/tank"))),
    ("building", (("openclipart", "buildings/*"), ("openclipart", "buildings/homes/"),
                  ("healthicons", "places/"))),
    ("plant", (("openclipart", "plants/"),)),
    ("music", (("openclipart", "recreation/music/"),)),
    ("card", (("openclipart", "recreation/games/cards/"), ("kenney", "cards/"))),
    ("device", (("openclipart", "computer/hardware/"), ("openclipart", "electronics/"),
                ("openclipart", "office/telephone/"), ("openclipart", "computer/connectors/"),
                ("tango", "devices/"))),
    ("person", (("openclipart", "people/*"),
                ("openclipart", "signs_and_symbols/flags/semaphore/"))),
    ("face", (("openclipart", "people/smilies/"), ("tango", "emotes/"),
              ("healthicons", "emotions/"))),
    ("body", (("openclipart", "people/bodypart/"), ("healthicons", "body/"),
              ("healthicons", "conditions/"))),
    ("clothing", (("openclipart", "people/clothing/"),)),
    ("tool", (("openclipart", "tools/"),)),
    ("office", (("openclipart", "office/"), ("openclipart", "education/"))),
    ("geography", (("openclipart", "geography/"), ("openclipart", "science/astronomy/"))),
    ("shape", (("openclipart", "shapes/*"), ("openclipart", "shapes/callouts/"),
               ("openclipart", "shapes/flowchart/"), ("openclipart", "shapes/jigsaw/"),
               ("healthicons", "shapes/"))),
    ("leisure", (("openclipart", "recreation/sports/"), ("openclipart", "recreation/toys/"),
                 ("openclipart", "recreation/party/"), ("openclipart", "recreation/holiday/"))),
    ("file icon", (("openclipart", "computer/icons/lemon-theme/mimetypes/"),
                   ("openclipart", "computer/icons/etiquette-theme/mimetypes/"),
                   ("openclipart", "computer/icons/lemon-theme/filesystems/"),
                   ("openclipart", "computer/icons/etiquette-theme/filesystems/"),
                   ("openclipart", "computer/folders/"), ("tango", "mimetypes/"),
                   ("tango", "places/"))),
    ("app icon", (("openclipart", "computer/icons/"), ("tango", ""))),
    ("medical", (("healthicons", "devices/"), ("healthicons", "diagnostics/"),
                 ("healthicons", "medications/"), ("healthicons", "ppe/"),
                 ("healthicons", "contraceptives/"), ("healthicons", "blood/"),
                 ("openclipart", "science/medicine/"))),
    ("health symbol", (("healthicons", "symbols/"), ("healthicons", "specialties/"))),
    ("game sprite", (("kenney", ""),)),
)
# Today's 16 classes (the embedded set's folders, recursive, symlinks followed as its builder
# does) plus what the new sources add to them.
EMBEDDED16: ClassMap = (
    ("bird", (("openclipart", "animals/birds/"),)),
    ("bug", (("openclipart", "animals/bugs/"), *[r for r in KENNEY_ANIMALS if r[1].split("/")[1]
             in ("bee", "fly", "ladybug", "worm")])),
    ("mammal", (("openclipart", "animals/mammals/"), ("kenney", "enemies/mouse"))),
    ("fruit", (("openclipart", "food/fruit/"),)),
    ("dessert", (("openclipart", "food/desserts/"),)),
    ("drink", (("openclipart", "food/beverages/"),)),
    ("flag", (("openclipart", "signs_and_symbols/flags/"),)),
    ("arrow", (("openclipart", "shapes/arrows/"), ("tango", "actions/go-"),
               ("tango", "actions/gtk-go"))),
    ("vehicle", (("openclipart", "transportation/vehicles/"), ("healthicons", "vehicles/"))),
    ("roadsign", (("openclipart", "transportation/roadsigns/"),)),
    ("building", (("openclipart", "buildings/"), ("healthicons", "places/"))),
    ("plant", (("openclipart", "plants/"),)),
    ("music", (("openclipart", "recreation/music/"),)),
    ("card", (("openclipart", "recreation/games/cards/"), ("kenney", "cards/"))),
    ("computer", (("openclipart", "computer/hardware/"), ("tango", "devices/"))),
    ("pictogram", (("openclipart", "transportation/aiga-symbols/"), ("healthicons", "people/"))),
)
CLASS_SETS = {"pdcorpus": PDCORPUS, "embedded16": EMBEDDED16}
# Never rendered (known not to make pictures a person can name at 32 px, or generated noise).
EXCLUDE_PREFIXES = (("openclipart", "shapes/stars/"), ("openclipart", "special/"))


def survey_class(source: str, rel: str) -> str:
    """--survey: one class per source folder (depth 3 for Open Clip Art, else depth 1)."""
    parts = rel.split("/")[:-1]
    depth = 3 if source == "openclipart" else 1
    return f"{source}:{'/'.join(parts[:depth]) or '.'}"


def _match(rel: str, prefix: str) -> bool:
    """A rule's prefix matches a path ("dir/*": files directly in dir only)."""
    if prefix.endswith("/*"):
        return rel.startswith(prefix[:-1]) and "/" not in rel[len(prefix) - 1:]
    return rel.startswith(prefix)


def class_of(source: str, rel: str, survey: bool, class_map: ClassMap = PDCORPUS) -> str | None:
    """The class of one file, or None when no rule takes it."""
    if any(source == s and rel.startswith(p) for s, p in EXCLUDE_PREFIXES):
        return None
    if survey:
        return survey_class(source, rel)
    for name, rules in class_map:
        if any(source == s and _match(rel, p) for s, p in rules):
            return name
    return None


# --------------------------------------------------------------------------- fetch + extract
def download(a: Artefact, cache: Path) -> None:
    """Fetch one artefact into `cache` with the registry's ordinary client."""
    cache.mkdir(parents=True, exist_ok=True)
    if a.kind == "deb":
        cmd = ["apt-get", "download", f"{a.name}={a.version}"]
    elif a.kind == "wheel":
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "-d", ".", f"{a.name}=={a.version}"]
    else:
        cmd = ["npm", "pack", f"{a.name}@{a.version}"]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=cache, check=True)


def fetch(a: Artefact, cache: Path, allow_download: bool) -> Path:
    """Return the verified artefact path in `cache`; download it first if allowed."""
    path = cache / a.file
    if not path.is_file():
        if not allow_download:
            raise FileNotFoundError(f"{path} missing; pass --download or put {a.spec} there")
        download(a, cache)
    size = path.stat().st_size
    if size != a.size:
        raise ValueError(f"Refusing {path}: {size} bytes, expected {a.size} for {a.spec}")
    digest = sha256(path)
    if digest != a.sha256:
        raise ValueError(f"Refusing {path}: SHA256 {digest}, expected {a.sha256} for {a.spec}")
    return path


def extract(a: Artefact, path: Path, dest: Path) -> Path:
    """Unpack an artefact (only what the build reads) into dest; return dest."""
    done = dest / ".extracted"
    if done.is_file() and done.read_text() == a.sha256:
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    if a.kind == "deb":
        subprocess.run(["dpkg", "-x", str(path), str(dest)], check=True)
    elif a.kind == "wheel":
        with zipfile.ZipFile(path) as z:
            z.extractall(dest, [n for n in z.namelist()
                                if n.startswith("arcade/resources/assets/images/")])
    else:
        with tarfile.open(path) as t:
            keep = [m for m in t.getmembers() if m.name in ("package/README.md", "package/LICENSE",
                    "package/LICENSE.txt",
                    "package/package.json", "package/public/icons/meta-data.json")
                    or m.name.startswith(a.root + "/")]
            t.extractall(dest, keep, filter="data")
    done.write_text(a.sha256)
    return dest


def check_statement(source: str, tree: Path) -> str:
    """Refuse the build unless the artefact still carries its licence statement verbatim."""
    rel, needle = STATEMENTS[source]
    text = " ".join((tree / rel).read_text(encoding="utf-8", errors="replace").split())
    if " ".join(needle.split()) not in text:
        raise ValueError(f"{source}: {rel} no longer says {needle!r}; re-check the licence")
    return rel


# --------------------------------------------------------------------------- candidates
@dataclass
class Candidate:
    """One file of one artefact, with its licence decision."""

    source: str
    rel: str  # path relative to the artefact's image root
    path: Path
    accepted: bool
    reason: str
    title: str = ""
    author: str = "unknown"
    sha1: str = ""
    width: int = 0
    height: int = 0


def _svg_decision(data: bytes, base: str) -> tuple[bool, str, dict]:
    """Open Clip Art's rule (openclipart_builder.decide_license) under another package base."""
    try:
        meta = oca.parse_svg_metadata(data)
    except ET.ParseError:
        return False, "malformed XML", {}
    ok, reason = oca.decide_license(meta)
    return ok, reason.replace("package copyright file: Creative Commons Public Domain "
                              "Dedication", base), meta


def candidates(source: str, tree: Path) -> list[Candidate]:
    """Every image file of one extracted artefact, sorted, with its licence decision."""
    a = ARTEFACTS[source]
    root = tree / a.root
    statement = check_statement(source, tree)
    out: list[Candidate] = []
    if source in ("openclipart", "tango"):
        base = (f"package copyright file ({statement}): "
                + ("Creative Commons Public Domain Dedication" if source == "openclipart"
                   else "Files: * License: public-domain"))
        for p in sorted(root.rglob("*.svg")):
            if p.is_symlink() and not p.resolve().is_relative_to(root):
                continue  # never follow a link out of the image tree
            data = p.read_bytes()
            ok, reason, meta = _svg_decision(data, base)
            if p.is_symlink():  # Debian's dedup links / Tango's alias names: same bytes
                reason += f"; symlink to {p.resolve().relative_to(root).as_posix()}"
            out.append(Candidate(source, p.relative_to(root).as_posix(), p, ok, reason,
                                 meta.get("title") or p.stem.replace("_", " "),
                                 meta.get("author") or "unknown", hashlib.sha1(data).hexdigest()))
    elif source == "kenney":
        for p in sorted(root.rglob("*")):
            if not p.is_file() or p.is_symlink():
                continue
            rel = p.relative_to(root).as_posix()
            if p.suffix.lower() not in RASTER_EXT:
                continue  # .txt/.url/.jpg backgrounds/.gif: not sprites
            top = rel.split("/")[0]
            if top in KENNEY_REJECT:
                ok, reason = False, f"rejected: {KENNEY_REJECT[top]}"
            elif top in KENNEY_ACCEPT and "/" in rel:
                ok, reason = True, (f"{statement}: 'Everything in this package is licensed CC0'"
                                    "; readme.txt: a subset of Kenney.nl assets")
            else:
                ok, reason = False, "rejected: no licence decision for this folder"
            out.append(Candidate(source, rel, p, ok, reason, p.stem.replace("_", " "),
                                 "Kenney (kenney.nl)", hashlib.sha1(p.read_bytes()).hexdigest()))
    elif source == "maki":
        for p in sorted(root.glob("*.svg")):
            data = p.read_bytes()
            ok = b"licen" not in data.lower()
            reason = (f"{statement}: CC0 1.0 Universal, the package's only licence file"
                      if ok else "rejected: svg names a licence of its own")
            out.append(Candidate(source, p.name, p, ok, reason, p.stem.replace("-", " "),
                                 "Mapbox (Maki)", hashlib.sha1(data).hexdigest()))
    else:  # healthicons
        meta_file = tree / "package/public/icons/meta-data.json"
        titles = {m["path"]: m["title"] for m in json.loads(meta_file.read_text())}
        for p in sorted(root.rglob("*.svg")):
            rel = p.relative_to(root).as_posix()
            data = p.read_bytes()
            ok = b"licen" not in data.lower()  # no per-file licence text in any icon today
            reason = (f"{statement}: 'These icons are available in the public domain for use in "
                      "any type of project.'; package LICENSE (MIT) read as covering the code"
                      if ok else "rejected: svg names a licence of its own")
            out.append(Candidate(source, rel, p, ok, reason,
                                 titles.get(rel.removesuffix(".svg"), p.stem.replace("_", " ")),
                                 "Health Icons (Resolve to Save Lives)",
                                 hashlib.sha1(data).hexdigest()))
    return out


# --------------------------------------------------------------------------- rasterise
@dataclass(frozen=True)
class Settings:
    """Build settings (recorded in the manifest)."""

    size: int = 64
    render_side: int = 256
    margin: float = 0.04
    timeout_s: float = 120.0
    near_dup_threshold: float = 0.02
    max_per_class: int = 500
    min_per_class: int = 100
    min_content_px: int = 24  # raster sprites whose drawing is smaller are too small to use


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout


def render_one(c: Candidate, s: Settings) -> tuple[np.ndarray | None, str]:
    """(64x64x3 uint8, "") or (None, skip reason). SVG via cairosvg, PNG via Pillow."""
    data = c.path.read_bytes()
    if c.path.suffix.lower() == ".svg":
        try:
            w, h = rasterise.svg_size(data)
        except (ValueError, ET.ParseError):
            return None, "no usable width/height/viewBox"
        c.width, c.height = round(w), round(h)
        old = signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, s.timeout_s)
        try:
            rgba = rasterise.render_svg(data, *rasterise.bounded_size(w, h, s.render_side))
        except _Timeout:
            return None, f"render timeout (> {s.timeout_s:g} s)"
        except Exception:  # noqa: BLE001 - any renderer failure is a skip reason
            return None, "render error"
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
    else:
        try:
            im = Image.open(io.BytesIO(data))
            im.load()
        except Exception:  # noqa: BLE001
            return None, "unreadable image"
        c.width, c.height = im.size
        rgba = im.convert("RGBA")
        box = rasterise.content_box(rasterise.composite_on_white(rgba))
        if box is not None and max(box[2] - box[0], box[3] - box[1]) < s.min_content_px:
            return None, f"too small (drawing < {s.min_content_px} px)"
    if rasterise.content_box(rasterise.composite_on_white(rgba)) is None:
        return None, "blank render"
    return np.asarray(rasterise.thumbnail(rgba, s.size, s.margin), dtype=np.uint8), ""


def render_cached(c: Candidate, s: Settings, cache: Path) -> tuple[np.ndarray | None, str]:
    """render_one, remembered per (file SHA-1, settings) as a PNG or a .skip text file."""
    key = cache / f"{c.sha1}"
    if key.with_suffix(".png").is_file():
        meta = json.loads(key.with_suffix(".json").read_text())
        c.width, c.height = meta["width"], meta["height"]
        return np.asarray(Image.open(key.with_suffix(".png")).convert("RGB")), ""
    if key.with_suffix(".skip").is_file():
        return None, key.with_suffix(".skip").read_text()
    img, why = render_one(c, s)
    if img is None:
        key.with_suffix(".skip").write_text(why)
    else:
        Image.fromarray(img).save(key.with_suffix(".png"), optimize=True)
        key.with_suffix(".json").write_text(json.dumps({"width": c.width, "height": c.height}))
    return img, why


def near_duplicates(images: np.ndarray, threshold: float, side: int = 16,
                    mirrors: bool = True) -> list[tuple[int, int]]:
    """rasterise.near_duplicates, mirror images counted as duplicates too (earliest row kept).

    A left-right mirror of a kept drawing is the same drawing to a person (and to a model trained
    with flips), so a split that holds one in training and its mirror held out leaks; the
    embedded set's rule missed them (issue 37).
    """
    feats = rasterise.small_features(images, side)
    flipped = rasterise.small_features(np.ascontiguousarray(images[:, :, ::-1]), side)
    buf = np.empty_like(feats)
    ids: list[int] = []
    pairs: list[tuple[int, int]] = []
    for j in range(len(feats)):
        k = len(ids)
        if k:
            d = np.abs(buf[:k] - feats[j]).mean(axis=1)
            if mirrors:
                d = np.minimum(d, np.abs(buf[:k] - flipped[j]).mean(axis=1))
            i = int(np.argmin(d))
            if d[i] < threshold:
                pairs.append((j, ids[i]))
                continue
        buf[k] = feats[j]
        ids.append(j)
    return pairs


# --------------------------------------------------------------------------- build
def row_of(c: Candidate, cls: str) -> dict:
    """The provenance row of one kept image (pddlib's schema columns + package/version/path)."""
    a = ARTEFACTS[c.source]
    return {
        "label": cls, "title": c.title, "source": c.source,
        "source_url": f"{a.spec}:/{a.root}/{c.rel}", "author": c.author,
        "license": a.license, "license_url": a.license_url, "license_reason": c.reason,
        "sha1": c.sha1, "width": int(c.width), "height": int(c.height),
        "package": a.name, "version": a.version, "path": f"{a.root}/{c.rel}",
    }


def build(cache: Path, work: Path, s: Settings, survey: bool, allow_download: bool,
          sources: tuple[str, ...], class_map: ClassMap = PDCORPUS,
          ) -> tuple[np.ndarray, list[dict], dict]:
    """Fetch, verify, extract, decide, render, dedupe, cap. Returns (images, rows, manifest)."""
    t0 = time.time()
    render_cache = work / f"render-{s.size}-{s.render_side}-{s.margin:g}"
    render_cache.mkdir(parents=True, exist_ok=True)
    skipped: list[tuple[str, str, str]] = []  # (source, rel, reason)
    items: list[tuple[int, str, Candidate, np.ndarray]] = []
    artefacts, considered = {}, Counter()
    for source in sources:
        a = ARTEFACTS[source]
        path = fetch(a, cache, allow_download)
        tree = extract(a, path, work / "unpacked" / source)
        artefacts[source] = {"registry_spec": a.spec, "file": a.file, "sha256": a.sha256,
                             "size": a.size, "image_root": a.root,
                             "licence_statement": list(STATEMENTS[source])}
        cands = candidates(source, tree)
        print(f"{source}: {len(cands)} image files", flush=True)
        for n, c in enumerate(cands):
            cls = class_of(source, c.rel, survey, class_map)
            if cls is None:
                skipped.append((source, c.rel, "folder not used"))
                continue
            considered[source] += 1
            if not c.accepted:
                skipped.append((source, c.rel, c.reason))
                continue
            img, why = render_cached(c, s, render_cache)
            if img is None:
                skipped.append((source, c.rel, why))
                continue
            items.append((SOURCE_ORDER.index(source), cls, c, img))
            if n % 500 == 0:
                print(f"  {source} {n}/{len(cands)} {time.time() - t0:.0f}s", flush=True)
    t_render = time.time() - t0

    # Exact duplicates (same file SHA-1), then near duplicates across all sources.
    order = [c for c, _ in class_map]
    items.sort(key=lambda it: (it[0], order.index(it[1]) if it[1] in order else len(order),
                               it[1], it[2].rel))
    seen: dict[str, Candidate] = {}
    unique = []
    for it in items:
        c = it[2]
        if c.sha1 in seen:
            skipped.append((c.source, c.rel, f"duplicate file (same SHA-1) of "
                                             f"{seen[c.sha1].source}:{seen[c.sha1].rel}"))
            continue
        seen[c.sha1] = c
        unique.append(it)
    images = np.stack([it[3] for it in unique])
    dropped = dict(near_duplicates(images, s.near_dup_threshold))
    for j, i in sorted(dropped.items()):
        a, b = rasterise.small_features(images[[i, j]]), rasterise.small_features(
            np.ascontiguousarray(images[[j], :, ::-1]))
        mirrored = np.abs(a[0] - b[0]).mean() < np.abs(a[0] - a[1]).mean()
        kind = ("exact duplicate image" if np.array_equal(images[i], images[j]) else
                "mirror image" if mirrored else "near duplicate")
        cj, ci = unique[j][2], unique[i][2]
        skipped.append((cj.source, cj.rel, f"{kind} of {ci.source}:{ci.rel}"))
    unique = [it for k, it in enumerate(unique) if k not in dropped]

    # Cap, then drop classes under the minimum.
    present = {it[1] for it in unique}
    names = sorted(present) if survey else [c for c in order if c in present]
    kept, small = [], {}
    for cls in names:
        members = sorted((it for it in unique if it[1] == cls), key=lambda it: it[2].sha1)
        for it in members[s.max_per_class:]:
            skipped.append((it[2].source, it[2].rel, "over the class cap"))
        members = members[: s.max_per_class]
        if len(members) < s.min_per_class and not survey:
            small[cls] = len(members)
            for it in members:
                skipped.append((it[2].source, it[2].rel, "class below the minimum"))
            continue
        kept.extend(sorted(members, key=lambda it: (it[0], it[2].rel)))
    rows = [row_of(it[2], it[1]) for it in kept]
    by = Counter((r["label"], r["source"]) for r in rows)
    classes = [n for n in names if n not in small]
    counts = {n: {src: by[(n, src)] for src in sources if by[(n, src)]} for n in classes}

    def reason_key(reason: str) -> str:
        return re.sub(r" (of|declares|names licence) .*", r" \1 ...", reason)

    skip_counts: dict[str, Counter] = {}
    for src, _, why in skipped:
        skip_counts.setdefault(src, Counter())[reason_key(why)] += 1
    manifest = {
        "artefacts": artefacts, "settings": asdict(s), "survey": survey,
        "class_map": {n: [list(r) for r in rules] for n, rules in class_map},
        "class_names": classes, "counts": counts,
        "totals_by_source": dict(Counter(r["source"] for r in rows)), "total": len(rows),
        "classes_below_minimum": small, "considered_by_source": dict(considered),
        "skip_counts": {k: dict(sorted(v.items())) for k, v in skip_counts.items()},
        "skipped": sorted(skipped), "seconds": {"render": round(t_render, 1),
                                                "total": round(time.time() - t0, 1)},
    }
    return np.stack([it[3] for it in kept]), rows, manifest


def write_outputs(out: Path, images: np.ndarray, rows: list[dict], manifest: dict) -> None:
    """pdcorpus64.npz, images/ + metadata.jsonl, manifest.json, DATASHEET.md, contact sheet."""
    out.mkdir(parents=True, exist_ok=True)
    names = manifest["class_names"]
    labels = np.array([names.index(r["label"]) for r in rows], dtype=np.int64)
    meta = {"class_names": names,
            "records": [{k: v for k, v in r.items() if k != "label"} for r in rows],
            "build": {k: v for k, v in manifest.items() if k != "skipped"}}
    blob = np.frombuffer(json.dumps(meta, ensure_ascii=False).encode(), dtype=np.uint8)
    np.savez_compressed(out / NPZ, images=images, labels=labels, meta=blob)
    with open(out / "metadata.jsonl", "w", encoding="utf-8") as f:
        for r, im in zip(rows, images, strict=True):
            rel = f"images/{r['label'].replace(' ', '_')}/{r['source']}-{r['sha1'][:16]}.png"
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(im).save(out / rel, optimize=True)
            f.write(json.dumps({"file_name": rel, **r}, ensure_ascii=False) + "\n")
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False))
    (out / "DATASHEET.md").write_text(datasheet(manifest, rows), encoding="utf-8")
    per = 16
    sheet = Image.new("RGB", (per * 64, len(names) * 64), (128, 128, 128))
    for k in range(len(names)):
        for j, i in enumerate(np.flatnonzero(labels == k)[:per]):
            sheet.paste(Image.fromarray(images[i]), (j * 64, k * 64))
    sheet.save(out / "contact_sheet.png")


# How each source draws (read from the contact sheets; the counts below are computed).
STYLES = {
    "openclipart": "vector clip art from mid-2000s editors: outlines, flat fills and gradients, "
                   "many authors and styles",
    "tango": "desktop icons in one shared palette and perspective (GNOME/Tango guidelines)",
    "kenney": "flat cartoon game sprites (PNG) with thick outlines; several are animation frames "
              "of the same few characters",
    "maki": "one-colour black map pictograms drawn on a 15 px grid",
    "healthicons": "one-colour health pictograms",
}


def datasheet(m: dict, rows: list[dict]) -> str:
    """The corpus's datasheet: sources and licences, counts per class x source, biases."""
    srcs = [s for s in SOURCE_ORDER if s in m["artefacts"]]
    head = "| class | " + " | ".join(srcs) + " | total |\n|---|" + "---|" * (len(srcs) + 1)
    table = "\n".join(f"| {n} | " + " | ".join(str(m["counts"][n].get(s, 0)) for s in srcs)
                      + f" | {sum(m['counts'][n].values())} |" for n in m["class_names"])
    arts = "\n".join(f"- **{src}**: `{a['registry_spec']}` ({a['file']}, {a['size']} bytes, "
                     f"SHA-256 `{a['sha256']}`); `{a['licence_statement'][0]}` says "
                     f"\"{a['licence_statement'][1]}\". Style: {STYLES[src]}."
                     for src, a in m["artefacts"].items())
    skips = "\n".join(f"| {src} | {why} | {n} |" for src, d in m["skip_counts"].items()
                      for why, n in d.items())
    total = m["total"]
    share = ", ".join(f"{src} {n} ({100 * n / total:.0f} %)"
                      for src, n in sorted(m["totals_by_source"].items(), key=lambda x: -x[1]))
    styled = [n for n in m["class_names"] if set(m["counts"][n]) - {"openclipart"}
              and len(m["counts"][n]) == 1]
    mixed = [n for n in m["class_names"] if len(m["counts"][n]) > 1]
    authors = Counter(r["author"] for r in rows if r["source"] == "openclipart").most_common(5)
    n_oca = m["totals_by_source"].get("openclipart", 1)
    top = ", ".join(f"{a} ({k})" for a, k in authors)
    top_share = 100 * sum(k for _, k in authors) / n_oca
    mirrors = sum(n for d in m["skip_counts"].values() for why, n in d.items()
                  if why.startswith("mirror"))
    s = m["settings"]
    return f"""# Datasheet: pdcorpus64 (the multi-source public-domain corpus)

Generated by `scripts/build_corpus.py`; do not edit by hand, rebuild instead:

```
python scripts/build_corpus.py --cache DIR --out DIR --download --install
```

## Sources and licences
Every artefact is pinned by size and SHA-256 (the build refuses any other file) and must still
carry its licence statement verbatim. Each row records its own decision: `source_url` names the
registry, package, version and path of the file inside the package; `license`,
`license_url` and `license_reason` say why it was accepted; `sha1` is the SHA-1 of the file.

{arts}

Per-file rules: an Open Clip Art or Tango SVG whose own RDF metadata or text names another
licence is rejected; Kenney sprites are taken only from the folders the wheel's licence file
covers (its excepted and unidentified folders are rejected, listed below); an icon whose SVG
names a licence of its own is rejected. Not built: Health Icons (npm `healthicons` 2.0.0): its
README says "public domain" but its only licence file is MIT over the whole package
(`--sources ...,healthicons` opts in); Temaki (npm `@rapideditor/temaki`): CC0, but its README
says many icons came from another icon set under other licences.

## How it was built
Every accepted file rendered as the embedded set is (SVG at longest side {s['render_side']},
composited on white, cropped to the drawing, padded square with a {s['margin']} margin,
{s['size']}x{s['size']} Lanczos; sprites the same from their pixels); then exact duplicates (same
SHA-1) and near duplicates across all sources, mirror images included (mean absolute
difference below {s['near_dup_threshold']} on 16x16 pixels; {mirrors} mirror images removed),
first kept in source order ({", ".join(SOURCE_ORDER)}); classes capped at {s['max_per_class']}
(smallest SHA-1 kept); classes under {s['min_per_class']} dropped.

## Counts
{total} images in {len(m['class_names'])} classes, from {len(srcs)} sources: {share}.

{head}
{table}

Classes dropped below the minimum: {m['classes_below_minimum'] or 'none'}.

## Known biases and limits
- One source dominates: Open Clip Art gives {100 * n_oca / total:.0f} % of the images; its five
  most frequent authors made {top_share:.0f} % of them ({top}).
- Some classes are a style more than a thing: `app icon` and `file icon` are desktop-icon
  styles, and {", ".join(f"`{n}`" for n in styled) or "no class"} \
{"comes" if len(styled) < 2 else "each come"} from one source other than Open Clip Art, so a
  classifier can name them by style alone. {len(mixed)} of {len(m['class_names'])} classes mix
  sources ({", ".join(mixed)}); `pictogram` mixes Open Clip Art's AIGA symbols and stickmen with
  Maki's black map symbols.
- Broad classes are heterogeneous: they follow the libraries' folders, so `tool`, `leisure`,
  `office`, `device`, `sign`, `shape` and `animal` gather many kinds of object (a truck filed
  under transportation is a `sign`); a 32 px classifier names them worst (benchmarks/RESULTS.md).
- Clip-art and icon styles only, all on white: no photographs, textures or scenes.
- Western and English-language bias: signs, flags, pictograms and symbols follow European and US
  designs; titles are mostly English.
- Near-duplicates are removed only up to the threshold above: Kenney's animation frames of the
  same characters and recoloured variants of one drawing remain, which matters when measuring
  copying.
- `flag` and `app icon` are capped; without the cap app icons alone would be a third of the set.

## Intended use
Teaching and measurement in the PD-Diffusion course: more public-domain images than the
embedded 16-class set, for "does it learn or copy?" at larger N and for training judges. Not a
benchmark of image quality, nor evidence about real-world recognition.

## Files not included
| source | reason | files |
|---|---|---|
{skips}
"""


def main(argv: list[str] | None = None) -> int:
    """Command-line entry."""
    d = Settings()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cache", type=Path, required=True, help="folder of the pinned artefacts")
    p.add_argument("--work", type=Path, help="unpack/render cache (default CACHE/../work)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--download", action="store_true", help="fetch missing artefacts")
    p.add_argument("--survey", action="store_true", help="one class per source folder")
    p.add_argument("--classes", choices=sorted(CLASS_SETS), default="pdcorpus",
                   help="pdcorpus: the corpus's classes; embedded16: the workshop's 16 classes")
    p.add_argument("--install", action="store_true",
                   help=f"also copy {NPZ} and its datasheet into pddlib/data (the shipped corpus)")
    p.add_argument("--sources", default=",".join(DEFAULT_SOURCES),
                   help=f"comma-separated, from {','.join(SOURCE_ORDER)}")
    p.add_argument("--max-per-class", type=int, default=d.max_per_class)
    p.add_argument("--min-per-class", type=int, default=d.min_per_class)
    args = p.parse_args(argv)
    s = Settings(max_per_class=args.max_per_class, min_per_class=args.min_per_class)
    work = args.work or args.cache.parent / "work"
    sources = tuple(x for x in SOURCE_ORDER if x in args.sources.split(","))
    try:
        images, rows, manifest = build(args.cache.resolve(), work.resolve(), s, args.survey,
                                       args.download, sources, CLASS_SETS[args.classes])
    except (ValueError, FileNotFoundError, tarfile.TarError) as e:  # FilterError: escapes
        print(f"error: {e}", file=sys.stderr)
        return 1
    write_outputs(args.out, images, rows, manifest)
    if args.install:
        shutil.copyfile(args.out / NPZ, DATA / NPZ)
        shutil.copyfile(args.out / "DATASHEET.md", DATA / DATASHEET)
        print(f"installed {DATA / NPZ} and {DATA / DATASHEET}")
    print(json.dumps({"total": manifest["total"], "by_source": manifest["totals_by_source"],
                      "counts": manifest["counts"], "below_min": manifest["classes_below_minimum"],
                      "seconds": manifest["seconds"]}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
