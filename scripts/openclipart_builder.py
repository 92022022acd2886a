"""Builder of the embedded dataset pddlib/data/openclipart64.npz (maintainers only).

Used by scripts/build_openclipart.py; needs Debian's apt-get/dpkg and cairosvg (the `build`
extra). It lives outside the runtime package: learners only ever load the built file
(pddlib.data.embedded).
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import rasterise

from pddlib.data.embedded import SOURCE

PACKAGE = "openclipart-svg"
VERSION = "1:0.18+dfsg-19"
# SHA256 of openclipart-svg_1%3a0.18+dfsg-19_all.deb as listed in the Debian archive index.
SHA256 = "989712d90d57dfa3230049f553bb43b76c30ee4d4b8c5f6e106e33f7db5cbdc5"
SVG_ROOT = "usr/share/openclipart/svg"
LICENSE = "Public Domain (Creative Commons Public Domain Dedication)"
LICENSE_URL = "https://creativecommons.org/licenses/publicdomain/"

# Licence URLs that mean public domain (compared without scheme, "www." and trailing "/").
PD_URLS = frozenset({
    "web.resource.org/cc/publicdomain",
    "creativecommons.org/licenses/publicdomain",
    "creativecommons.org/publicdomain/zero/1.0",
    "creativecommons.org/publicdomain/mark/1.0",
    "public domain",  # a few files write the words instead of a URL
})
_NS = {
    "dc": "http://purl.org/dc/elements/1.1/",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
}
_CC_NAMESPACES = ("http://web.resource.org/cc/", "http://creativecommons.org/ns#")
# Licence URLs written anywhere in the file (comments, descriptions): a second licence signal.
_LICENSE_MENTION = re.compile(
    rb"(?:creativecommons\.org/(?:licenses|publicdomain)|gnu\.org/licenses)/[A-Za-z0-9.\-/]+"
)

# (class name, folders under usr/share/openclipart/svg, searched recursively). Chosen to stay
# recognisable at 32-64 px with >= 30 images after dedupe; not taken: shapes/stars (mostly
# generated spirograph rings that collapse to ~30 near-duplicates) and people/smilies (< 30).
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("bird", ("animals/birds",)),
    ("bug", ("animals/bugs",)),
    ("mammal", ("animals/mammals",)),
    ("fruit", ("food/fruit",)),
    ("dessert", ("food/desserts",)),
    ("drink", ("food/beverages",)),
    ("flag", ("signs_and_symbols/flags",)),
    ("arrow", ("shapes/arrows",)),
    ("vehicle", ("transportation/vehicles",)),
    ("roadsign", ("transportation/roadsigns",)),
    ("building", ("buildings",)),
    ("plant", ("plants",)),
    ("music", ("recreation/music",)),
    ("card", ("recreation/games/cards",)),
    ("computer", ("computer/hardware",)),
    ("pictogram", ("transportation/aiga-symbols",)),
)


def normalise_url(url: str) -> str:
    """Lower-case a URL without scheme, "www." and trailing slash, for comparing licences."""
    u = re.sub(r"^[a-z]+://", "", url.strip().lower())
    return u.removeprefix("www.").rstrip("/")


def _local(tag: str) -> tuple[str, str]:
    """Split an ElementTree tag "{ns}name" into (ns, name)."""
    return (tag[1:].split("}", 1)[0], tag.split("}", 1)[1]) if tag.startswith("{") else ("", tag)


def _text(el: ET.Element | None) -> str:
    """Whitespace-collapsed text of an element (empty string for None)."""
    return " ".join("".join(el.itertext()).split()) if el is not None else ""


def parse_svg_metadata(svg: bytes) -> dict:
    """Read {"title", "author", "licenses", "mentions"} from an SVG's RDF metadata.

    licenses: the rdf:resource of every cc:license element ("" when empty); mentions: licence
    URLs written anywhere in the file. Raises ET.ParseError for malformed XML.
    """
    root = ET.fromstring(svg)
    work = next((el for el in root.iter() if _local(el.tag) in
                 [(ns, "Work") for ns in _CC_NAMESPACES]), None)
    title = _text(work.find("dc:title", _NS)) if work is not None else ""
    creator = work.find("dc:creator", _NS) if work is not None else None
    author = ""
    if creator is not None:
        agent_title = creator.find(".//dc:title", _NS)
        author = _text(agent_title) if agent_title is not None else _text(creator)
    licenses = [el.get(f"{{{_NS['rdf']}}}resource", "").strip() for el in root.iter()
                if _local(el.tag) in [(ns, "license") for ns in _CC_NAMESPACES]]
    mentions = sorted({m.decode("ascii") for m in _LICENSE_MENTION.findall(svg)})
    return {"title": title, "author": author, "licenses": licenses, "mentions": mentions}


def decide_license(meta: dict) -> tuple[bool, str]:
    """Decide one clip-art file's licence: (accepted, reason).

    The package's copyright file is the CC Public Domain Dedication for every file; a file
    is rejected when its own metadata or text names any other licence (contradictory signal).
    """
    base = "package copyright file: Creative Commons Public Domain Dedication"
    for url in meta["licenses"]:
        if url and normalise_url(url) not in PD_URLS:
            return False, f"rejected: svg cc:license declares {url}, not public domain"
    for url in meta["mentions"]:
        if normalise_url(url) not in PD_URLS:
            return False, f"rejected: svg text names licence {url}, contradicting the dedication"
    declared = [u for u in meta["licenses"] if u]
    if declared:
        return True, f"{base}; svg cc:license {declared[0]} agrees"
    return True, f"{base}; svg declares no licence of its own"


def verify_sha256(path: str | Path, expected: str = SHA256) -> str:
    """Return the file's SHA256 hex digest; raise ValueError if it differs from `expected`."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    digest = h.hexdigest()
    if digest != expected.lower():
        raise ValueError(
            f"Refusing {path}: its SHA256 is {digest}, expected {expected} for "
            f"{PACKAGE}={VERSION}. Download the pinned version again (apt-get download "
            f"{PACKAGE}={VERSION}) or pass the right --deb."
        )
    return digest


@dataclass(frozen=True)
class BuildConfig:
    """Settings of an embedded-dataset build (all recorded in meta["build"])."""

    categories: tuple[tuple[str, tuple[str, ...]], ...] = CATEGORIES
    size: int = 64  # side of the stored square images
    render_side: int = 256  # longest side the SVG is rendered at before cropping/resizing
    margin: float = 0.04  # white border around the cropped drawing, fraction of its side
    # Per-file render limit: only a hung or pathological file should reach it. The slowest file
    # kept needs ~20 s CPU, so a tighter limit would make the output depend on machine load.
    timeout_s: float = 120.0
    near_dup_threshold: float = 0.02  # mean abs difference on 16x16 pixels, in [0, 1]
    max_per_class: int = 120  # cap so no class dominates (flags, stars)
    min_per_class: int = 30  # a build with a smaller class fails


def fetch_deb(workdir: Path) -> Path:
    """Download the pinned package into `workdir` with `apt-get download`; return the .deb."""
    workdir.mkdir(parents=True, exist_ok=True)
    subprocess.run(["apt-get", "download", f"{PACKAGE}={VERSION}"], cwd=workdir, check=True)
    debs = sorted(workdir.glob(f"{PACKAGE}_*.deb"))
    if not debs:
        raise FileNotFoundError(f"apt-get download left no {PACKAGE}_*.deb in {workdir}")
    return debs[-1]


def unpack_deb(deb: Path, dest: Path) -> Path:
    """Unpack a .deb with `dpkg -x` into `dest`; return the folder holding the SVG tree."""
    subprocess.run(["dpkg", "-x", str(deb), str(dest)], check=True)
    return dest / SVG_ROOT


def _prepare(path: Path, rel: str, config: BuildConfig) -> tuple[dict | None, np.ndarray | None,
                                                                  str]:
    """Read, licence-check and rasterise one SVG: (record, image (S,S,3) uint8, skip reason)."""
    svg = path.read_bytes()
    try:
        meta = parse_svg_metadata(svg)
    except ET.ParseError:
        return None, None, "malformed XML"
    accepted, reason = decide_license(meta)
    if not accepted:
        return None, None, reason
    try:
        width, height = rasterise.svg_size(svg)
    except ValueError:
        return None, None, "no usable width/height/viewBox"
    try:
        rgba = rasterise.render_svg_timeout(
            svg, *rasterise.bounded_size(width, height, config.render_side), config.timeout_s)
    except TimeoutError:
        return None, None, f"render timeout (> {config.timeout_s:g} s)"
    except RuntimeError:
        return None, None, "render error"
    if rasterise.content_box(rasterise.composite_on_white(rgba)) is None:
        return None, None, "blank render"
    image = rasterise.thumbnail(rgba, config.size, config.margin)
    record = {
        "title": meta["title"] or path.stem.replace("_", " "),
        "source": SOURCE,
        "source_url": f"debian:{PACKAGE}={VERSION}:/{SVG_ROOT}/{rel}",
        "author": meta["author"] or "unknown",
        "license": LICENSE,
        "license_url": LICENSE_URL,
        "license_reason": reason,
        "sha1": hashlib.sha1(svg).hexdigest(),
        "width": round(width),
        "height": round(height),
    }
    return record, np.asarray(image, dtype=np.uint8), ""


def build(svg_root: Path, config: BuildConfig = BuildConfig(), sha256: str = SHA256,
          ) -> tuple[np.ndarray, np.ndarray, dict]:
    """Build (images (N,S,S,3) uint8, labels (N,) int64, meta) from an unpacked SVG tree.

    Files are visited in sorted order per class, so the output is deterministic. Needs cairosvg.
    """
    import cairosvg  # noqa: F401 - fail early with ImportError; the `build` extra provides it
    from tqdm.auto import tqdm

    names = [name for name, _ in config.categories]
    todo: list[tuple[int, Path, str]] = []
    for label, (_, folders) in enumerate(config.categories):
        for folder in folders:
            for path in sorted((svg_root / folder).rglob("*.svg")):
                todo.append((label, path, path.relative_to(svg_root).as_posix()))
    skipped: list[tuple[str, str]] = []
    rows: list[tuple[int, dict, np.ndarray]] = []
    seen_sha1: set[str] = set()
    for label, path, rel in tqdm(todo, desc="rasterising"):
        record, image, why = _prepare(path, rel, config)
        if record is not None and record["sha1"] in seen_sha1:
            record, why = None, "duplicate file (same SHA-1)"
        if record is None:
            skipped.append((rel, why))
            continue
        seen_sha1.add(record["sha1"])
        rows.append((label, record, image))

    # Near-duplicates across all classes; the first in (class, path) order is kept.
    images = np.stack([img for _, _, img in rows])
    dropped = dict(rasterise.near_duplicates(images, config.near_dup_threshold))
    for j, i in sorted(dropped.items()):
        same = np.array_equal(images[i], images[j])
        kind = "exact duplicate image" if same else "near duplicate"
        skipped.append((rows[j][1]["source_url"].split(f"/{SVG_ROOT}/")[1],
                        f"{kind} of {rows[i][1]['source_url'].split(f'/{SVG_ROOT}/')[1]}"))
    rows = [r for k, r in enumerate(rows) if k not in dropped]

    # Cap big classes: keep the files with the smallest SHA-1 (a fixed pseudo-random subset).
    kept: list[tuple[int, dict, np.ndarray]] = []
    for label in range(len(names)):
        members = sorted((r for r in rows if r[0] == label), key=lambda r: r[1]["sha1"])
        for r in members[config.max_per_class:]:
            skipped.append((r[1]["source_url"].split(f"/{SVG_ROOT}/")[1], "over the class cap"))
        kept.extend(sorted(members[: config.max_per_class], key=lambda r: r[1]["source_url"]))
    counts = {name: sum(r[0] == k for r in kept) for k, name in enumerate(names)}
    small = {n: c for n, c in counts.items() if c < config.min_per_class}
    if small:
        raise ValueError(f"classes below min_per_class={config.min_per_class}: {small}; "
                         "drop them from the categories or lower the minimum.")

    def reason_key(reason: str) -> str:
        """Group skip reasons for counting (drop the file-specific tail)."""
        return re.sub(r" (of|declares|names licence) .*", r" \1 ...", reason)

    skip_counts: dict[str, int] = {}
    for _, why in skipped:
        skip_counts[reason_key(why)] = skip_counts.get(reason_key(why), 0) + 1
    settings = asdict(config)
    settings["categories"] = {n: list(f) for n, f in config.categories}
    meta = {
        "class_names": names,
        "records": [r[1] for r in kept],
        "build": {
            "package": PACKAGE, "version": VERSION, "sha256": sha256,
            "settings": settings, "files_considered": len(todo), "counts": counts,
            "skip_counts": dict(sorted(skip_counts.items())), "skipped": sorted(skipped),
        },
    }
    labels = np.array([r[0] for r in kept], dtype=np.int64)
    return np.stack([r[2] for r in kept]), labels, meta


def save(path: Path, images: np.ndarray, labels: np.ndarray, meta: dict) -> None:
    """Write the embedded dataset file in the layout documented at the top of this module."""
    blob = np.frombuffer(json.dumps(meta, ensure_ascii=False, sort_keys=False).encode("utf-8"),
                         dtype=np.uint8)
    np.savez_compressed(path, images=images, labels=labels, meta=blob)
