"""A folder's record of its own files: the size and SHA-256 of each, written when they are.

A checkpoint records every file it holds; a pipeline folder records the files a load reads (its
index, `train_config.json`, and everything in its unet/, scheduler/ and vae/). Every load
compares sizes, which costs a `stat` per file; hashes are compared on demand (`pddlib check`)
and on resume, which reads each file once. The record is untrusted input like the rest of the
folder: it may only name files inside it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from pddlib import runs
from pddlib.files import atomic_write

ABOUT = "size and SHA-256 of each file as it was written; `pddlib check --model DIR` compares them"
# What a pipeline folder's record covers: what `from_pretrained` reads, and the training config.
PIPELINE_PARTS = (runs.PIPELINE_INDEX, runs.CONFIG_FILE, runs.UNET, runs.SCHEDULER, runs.VAE)
SHA256 = re.compile(r"[0-9a-f]{64}")


class BadPart(Exception):
    """One part of a folder is wrong: which (a path inside it), what, and what to do if not the usual."""

    def __init__(self, part: str, problem: str, remedy: str | None = None) -> None:
        super().__init__(f"{part} {problem}")
        self.part, self.problem, self.remedy = part, problem, remedy


def sha256(path: Path) -> str:
    """The SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def measure(path: Path, full: bool) -> tuple[int, str | None]:
    """A file's size and (when full) SHA-256; JSON text with its line endings made "\n" first.

    Git on Windows may rewrite text files' line endings on checkout (core.autocrlf), and Python
    writes "\r\n" there: neither changes what a config says, so neither counts as damage.
    """
    if path.suffix != ".json":
        return path.stat().st_size, sha256(path) if full else None
    data = path.read_bytes().replace(b"\r\n", b"\n")
    return len(data), hashlib.sha256(data).hexdigest() if full else None


def files_under(folder: str | Path, names: Iterable[str]) -> list[str]:
    """Every file at or under `names` in folder (relative, "/"-separated), the record left out."""
    folder = Path(folder)
    found = set()
    for name in names:
        path = folder / name
        inside = [path] if path.is_file() else (p for p in path.rglob("*") if p.is_file())
        found |= {p.relative_to(folder).as_posix() for p in inside}
    return sorted(found - {runs.CHECKSUMS})


def write_record(folder: str | Path, names: Iterable[str]) -> Path:
    """Record the size and SHA-256 of `names` (paths inside folder) in folder's checksums.json."""
    folder = Path(folder)
    files = {n: dict(zip(("size", "sha256"), measure(folder / n, True), strict=True))
             for n in sorted(names)}
    record = {"about": ABOUT, "files": files}
    return atomic_write(folder / runs.CHECKSUMS, json.dumps(record, indent=1) + "\n")


def inside(name: object) -> bool:
    """Whether a recorded name is a plain relative path that stays inside its folder."""
    if not isinstance(name, str) or not name or "\\" in name:
        return False
    path = PurePosixPath(name)
    return not path.is_absolute() and ".." not in path.parts


def read_record(folder: Path) -> dict[str, dict] | None:
    """The files a folder's record lists ({name: {"size", "sha256"}}), or None when it has none."""
    path = folder / runs.CHECKSUMS
    if not path.is_file():
        return None
    try:
        files = json.loads(path.read_text("utf-8"))["files"]
    except (UnicodeDecodeError, ValueError, KeyError, TypeError):
        files = None
    if not isinstance(files, dict):
        raise BadPart(runs.CHECKSUMS, "is not a record pddlib wrote (not the JSON it writes)")
    for name, entry in files.items():
        if not (inside(name) and isinstance(entry, dict) and type(entry.get("size")) is int
                and SHA256.fullmatch(str(entry.get("sha256")))):
            raise BadPart(runs.CHECKSUMS, f"lists a file it cannot vouch for ({name!r})")
    return files


def verify_record(folder: Path, full: bool) -> int:
    """Compare the files with the folder's record (sizes; SHA-256 too when full); how many it lists."""
    files = read_record(folder)
    if files is None:
        return 0
    for name, entry in files.items():
        if not (folder / name).is_file():
            raise BadPart(name, f"is missing (the folder's {runs.CHECKSUMS} lists it)")
        size, _ = measure(folder / name, False)
        if size < entry["size"]:
            raise BadPart(name, f"holds {size} of the {entry['size']} bytes it was written with "
                                "(cut short, or changed since)")
        if size != entry["size"]:
            raise BadPart(name, f"holds {size} bytes, not the {entry['size']} it was written with "
                                "(changed since)")
    for name, entry in files.items() if full else ():
        if measure(folder / name, True)[1] != entry["sha256"]:
            raise BadPart(name, "differs from the file that was written (its SHA-256 does not "
                                f"match {runs.CHECKSUMS})")
    return len(files)
