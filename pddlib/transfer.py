"""Copying a trained run onto other machines: one zip file out, checked on the way in.

A workshop trains the course model once and hands every laptop the same run folder. `pack`
zips a whole run (its checkpoints too: the notebooks reuse a run only when its newest checkpoint
has every step); `unpack` treats the zip as untrusted input: names that leave the folder, links
and oversized archives are refused, and the folder is checked (pddlib.folders, full hashes
against its record) in a hidden folder before it is renamed into runs/.
"""

from __future__ import annotations

import re
import shutil
import zipfile
from pathlib import Path

from pddlib.files import atomic_dir
from pddlib.folders import check_folder
from pddlib.runs import runs_dir

MAX_BYTES = 4 * 2**30  # far above a course run; stops a zip bomb filling the disk
FOLDER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def pack(run: str | Path, archive: str | Path) -> Path:
    """Zip the run folder `run` (after checking it is whole) into `archive`; return its path."""
    run, archive = Path(run), Path(archive)
    check_folder(run, full=True)  # never hand out a damaged copy
    archive.parent.mkdir(parents=True, exist_ok=True)
    tmp = archive.with_name(archive.name + ".part")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for path in sorted(p for p in run.rglob("*") if p.is_file()):
            z.write(path, f"{run.name}/{path.relative_to(run).as_posix()}")
    tmp.replace(archive)  # a cut-short zip never carries the final name
    return archive


def folder_of(z: zipfile.ZipFile, archive: Path) -> str:
    """The one top-level folder every member of `z` lies in; refuses anything else, naming it."""
    names = z.infolist()
    if not names:
        raise ValueError(f"{archive} is empty: make it again with `pddlib pack`.")
    if sum(i.file_size for i in names) > MAX_BYTES:
        raise ValueError(f"{archive} would unpack to more than {MAX_BYTES >> 30} GB: refused.")
    tops = {i.filename.split("/", 1)[0] for i in names}
    for info in names:
        name = info.filename
        link = (info.external_attr >> 16) & 0o170000 == 0o120000
        if name.startswith("/") or "\\" in name or ".." in name.split("/") or link:
            raise ValueError(f"{archive} holds {name!r}, which would land outside its folder: "
                             "refused. Make the zip again with `pddlib pack`.")
    if len(tops) != 1 or not FOLDER_NAME.match(next(iter(tops))):
        raise ValueError(f"{archive} does not hold exactly one run folder ({sorted(tops)[:3]}): "
                         "make it with `pddlib pack`.")
    return tops.pop()


def unpack(archive: str | Path, root: str | Path | None = None) -> Path:
    """Unzip a packed run into `root` (default runs/), checked before it takes its name."""
    archive = Path(archive)
    if not zipfile.is_zipfile(archive):
        raise ValueError(f"{archive} is not a zip file (or it was cut short): copy it again.")
    root = Path(root) if root is not None else runs_dir()
    with zipfile.ZipFile(archive) as z:
        name = folder_of(z, archive)
        final = root / name
        if final.exists():
            raise ValueError(f"{final} exists already: delete it first to replace it.")
        with atomic_dir(final) as tmp:
            for info in z.infolist():
                inner = info.filename.split("/", 1)[1] if "/" in info.filename else ""
                if inner and not info.is_dir():
                    (tmp / inner).parent.mkdir(parents=True, exist_ok=True)
                    with z.open(info) as src, open(tmp / inner, "wb") as dst:
                        shutil.copyfileobj(src, dst)
            check_folder(tmp, full=True)
    return final
