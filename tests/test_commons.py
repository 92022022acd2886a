"""The Commons scraper against a real HTTP server on 127.0.0.1 speaking the Action API."""

from __future__ import annotations

import io
import json
import os
import re
import struct
import time
import zlib
from email.utils import formatdate
from pathlib import Path

import datasets
import numpy as np
import pytest
from faultywiki import PD_META, Fault, FaultyCommons, FaultyFile
from PIL import Image

from pddlib.cli import main
from pddlib.data import COLUMNS, load_images
from pddlib.data.commons import Scraper, scrape
from pddlib.data.httpclient import retry_after_seconds, user_agent
from pddlib.data.mediawiki import STANDARD_WIDTHS
from pddlib.data.schema import DECISIONS, IMAGES, METADATA, STATE
from pddlib.data.scrapeconfig import ScrapeConfig, check_email

EMAIL = "course-tests@pd-diffusion.org"
ROOT = "PD-Art (PD-old-100)"
FAST = {"backoff_base": 0.5, "backoff_cap": 4.0, "max_retries": 3}


def picture(seed: int, size: tuple[int, int] = (400, 300), exif: bool = False,
            fmt: str = "JPEG") -> bytes:
    """A distinct smooth random picture (its perceptual hash differs from every other seed)."""
    rng = np.random.default_rng(seed)
    small = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8))
    img = small.resize(size, Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    kw = {}
    if exif:
        ex = Image.Exif()
        ex[0x010F] = "Camera maker"
        ex[0x8298] = "Someone's copyright notice"
        gps = ex.get_ifd(0x8825)
        gps[1], gps[2] = "N", (52.0, 22.0, 7.5)
        kw["exif"] = ex.tobytes()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims a huge size (a decompression bomb's calling card)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b""))


def pd_file(title: str, seed: int, cats: list[str] | None = None, **kw) -> FaultyFile:
    meta = dict(PD_META, Artist=f'<a href="/wiki/Creator:A{seed}">Painter&nbsp;{seed}</a>')
    return FaultyFile(title, kw.pop("image", None) or picture(seed), meta,
                    cats if cats is not None else [ROOT, "PD-old-100-expired"], **kw)


def good_files() -> tuple[list[FaultyFile], dict[str, list[str]]]:
    """Seven acceptable files in a root category and two subcategories that loop."""
    files = [pd_file(f"File:Landscape {i}.jpg", i) for i in range(4)]
    files += [FaultyFile(f"File:Portrait {i}.png", picture(10 + i, fmt="PNG"),
                       dict(PD_META, Artist="Anon"),
                       [ROOT, "PD-old-100-expired", "Portrait paintings", "Oil paintings"],
                       mime="image/png") for i in range(3)]
    cats = {
        ROOT: ["File:Landscape 0.jpg", "File:Landscape 1.jpg", "Category:Landscapes",
               "Category:Portraits"],
        "Landscapes": ["File:Landscape 1.jpg", "File:Landscape 2.jpg", "File:Landscape 3.jpg",
                       "Category:Portraits"],
        "Portraits": [f"File:Portrait {i}.png" for i in range(3)] + [f"Category:{ROOT}"],
    }
    return files, cats


def bad_files() -> list[FaultyFile]:
    """One file for every way a candidate must be turned away."""
    cc_by = {"License": "cc-by-sa-4.0", "LicenseShortName": "CC BY-SA 4.0",
             "Copyrighted": "True", "AttributionRequired": "true",
             "LicenseUrl": "https://creativecommons.org/licenses/by-sa/4.0"}
    dup = pd_file("File:Landscape 0 copy.jpg", 0)  # byte-identical to Landscape 0
    rescan = io.BytesIO()  # Landscape 3 a little brighter: other bytes, same picture
    Image.open(io.BytesIO(picture(3))).point(lambda v: min(255, v + 6)).save(rescan, "JPEG")
    return [
        FaultyFile("File:Museum photo.jpg", picture(30), cc_by, [ROOT, "CC-BY-SA-4.0"]),
        FaultyFile("File:Sitter.jpg", picture(31), dict(PD_META, Restrictions="personality"),
                 [ROOT]),
        FaultyFile("File:Attribution.jpg", picture(32), dict(PD_META, AttributionRequired="true"),
                 [ROOT]),
        FaultyFile("File:Logo.jpg", picture(33), dict(PD_META, NonFree="true"), [ROOT]),
        FaultyFile("File:Nuked.jpg", picture(34), dict(PD_META, DeletionReason="Copyvio"), [ROOT]),
        FaultyFile("File:No metadata.jpg", picture(35), {}, [ROOT]),
        FaultyFile("File:Catalogue.pdf", b"%PDF-1.4\n%%EOF\n", dict(PD_META), [ROOT],
                 mime="application/pdf"),
        pd_file("File:Gone.jpg", 36, missing=True),
        pd_file("File:Bomb.png", 37, thumb=png_claiming(8000, 8000)),
        pd_file("File:../../etc/Ünïcode ..\\evil.jpg", 38),
        pd_file("File:Holiday photo.jpg", 39, image=picture(39, exif=True)),
        dup,
        pd_file("File:Landscape 3 rescan.jpg", 3, image=rescan.getvalue()),
    ]


def wiki(extra: list[FaultyFile] = (), **kw) -> FaultyCommons:
    files, cats = good_files()
    files += list(extra)
    cats[ROOT] += [f.title for f in extra]
    return FaultyCommons(files, cats, **{"thumb_cap": 2, "cl_cap": 3, "subcat_cap": 1,
                                        "image_delay": 0.05, **kw})


class Sleeps(list):
    """An injectable sleep that records instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def run(server: FaultyCommons, out: Path, **kw):
    opts = {"depth": 3, "batch_size": 3, "progress": False, "sleep": Sleeps(), **FAST, **kw}
    return scrape(EMAIL, out, categories=[ROOT], api=server.api_url, **opts)


def rows(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / METADATA).read_text().splitlines()]


def decisions(out: Path) -> dict[str, dict]:
    lines = (out / DECISIONS).read_text().splitlines()
    return {d["title"]: d for d in map(json.loads, lines)}


def test_refuses_implausible_email(tmp_path: Path) -> None:
    for bad in ["", "nobody", "me@", "me@example.com", "a@EXAMPLE.org", "x@foo.test",
                "root@localhost", "a b@uni.edu"]:
        with pytest.raises(ValueError, match="contact e-mail"):
            check_email(bad)
        with pytest.raises(ValueError, match="contact e-mail"):
            ScrapeConfig(email=bad, out=tmp_path)
    assert main(["scrape", "--email", "me@example.com", "--out", str(tmp_path)]) == 2
    assert re.fullmatch(r"pddlib/\S+ \(course-tests@pd-diffusion\.org\) requests/\S+",
                        user_agent(EMAIL))


def test_config_refuses_impolite_settings(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="standard Commons thumbnail width"):
        ScrapeConfig(email=EMAIL, out=tmp_path, width=300)
    with pytest.raises(ValueError, match="max_downloads"):
        ScrapeConfig(email=EMAIL, out=tmp_path, max_downloads=4)
    with pytest.raises(ValueError, match="batch_size"):
        ScrapeConfig(email=EMAIL, out=tmp_path, batch_size=500)


def test_retry_after_forms() -> None:
    from datetime import datetime, timezone

    now = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)
    assert retry_after_seconds("5") == 5.0
    assert retry_after_seconds("0.25") == 0.25
    assert retry_after_seconds("Wed, 01 May 2024 12:00:30 GMT", now) == 30.0
    assert retry_after_seconds("Wed, 01 May 2024 11:00:00 GMT", now) == 0.0
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None


def test_protocol_decisions_and_output(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    with wiki(bad_files()) as server:
        summary = run(server, out, labels={"Landscapes": "landscape",
                                           "Portrait paintings": "portrait"})
        api, images = server.requests_of("api"), server.requests_of("image")
    # Etiquette on every request.
    for r in api + images:
        assert r.headers["User-Agent"] == user_agent(EMAIL)
        assert "gzip" in r.headers["Accept-Encoding"]
    for r in api:
        assert r.params["maxlag"] == "5" and r.params["formatversion"] == "2"
    gen = [r.params for r in api if r.params.get("generator") == "categorymembers"]
    assert all(int(p["gcmlimit"]) <= 50 and int(p["iiurlwidth"]) in STANDARD_WIDTHS
               for p in gen)
    assert any("iicontinue" in p for p in gen) and any("clcontinue" in p for p in gen)
    assert any("gcmcontinue" in p and "iicontinue" in p for p in gen)  # nested, same batch
    assert 1 <= server.max_concurrent_images <= 2
    # The category loop is walked once per category.
    subcat_roots = [r.params["cmtitle"] for r in api if r.params.get("list") == "categorymembers"
                    and "cmcontinue" not in r.params]
    assert sorted(subcat_roots) == sorted(f"Category:{c}" for c in (ROOT, "Landscapes",
                                                                   "Portraits"))
    # Decisions: every candidate once, with its reason.
    got = {t: d["decision"] + " / " + d["reason"].split(":")[0] for t, d in decisions(out).items()}
    bad = {
        "File:Museum photo.jpg": "rejected / attribution required",
        "File:Sitter.jpg": "rejected / restrictions",
        "File:Attribution.jpg": "rejected / attribution required",
        "File:Logo.jpg": "rejected / non-free",
        "File:Nuked.jpg": "rejected / deletion requested",
        "File:No metadata.jpg": "rejected / missing metadata",
        "File:Catalogue.pdf": "skipped / mime not allowed",
        "File:Gone.jpg": "skipped / missing page",
        "File:Bomb.png": "skipped / oversized",
        "File:Landscape 0.jpg": "skipped / duplicate",  # sorted after "Landscape 0 copy.jpg"
        "File:Landscape 3.jpg": "skipped / near-duplicate",  # the rescan came first (root)
    }
    for title, want in bad.items():
        assert got.pop(title) == want, title
    assert set(got.values()) == {"accepted / public domain"} and len(got) == 9
    assert summary.accepted == 9 and summary.complete
    assert summary.rejected == {"attribution required": 2, "restrictions": 1, "non-free": 1,
                                "deletion requested": 1, "missing metadata": 1}
    assert summary.skipped == {"mime not allowed": 1, "missing page": 1, "oversized": 1,
                               "duplicate": 1, "near-duplicate": 1}
    # Output rows: the common schema, labels from the mapping or the category found through.
    meta = rows(out)
    assert len(meta) == 9 == len({r["title"] for r in meta})
    by_title = {r["title"]: r for r in meta}
    assert by_title["Landscape 2.jpg"]["label"] == "landscape"
    assert by_title["Landscape 1.jpg"]["label"] == ROOT  # found through the root first
    assert by_title["Portrait 0.png"]["label"] == "portrait"  # via the file's own category
    r = by_title["Landscape 2.jpg"]
    assert r["author"] == "Painter 2" and r["license"] == "Public domain"
    assert r["source"] == "wikimedia-commons" and r["source_url"].endswith(
        "/wiki/File:Landscape_2.jpg")
    assert (r["width"], r["height"]) == (250, 188) and re.fullmatch(r"[0-9a-f]{40}", r["sha1"])
    # Safe names, inside images/, EXIF gone, nothing half-written.
    images_dir = out / IMAGES
    assert sorted(p.name for p in images_dir.iterdir()) == sorted(
        Path(r["file_name"]).name for r in meta)
    evil = next(r for r in meta if "evil" in r["title"])
    assert re.fullmatch(r"images/[A-Za-z0-9_-]+\.jpg", evil["file_name"])
    with Image.open(out / by_title["Holiday photo.jpg"]["file_name"]) as im:
        assert not im.getexif() and "exif" not in im.info
    # The loader contract: the common schema, labels as ClassLabel.
    ds = load_images(out)
    assert ds.column_names == list(COLUMNS) and len(ds) == 9
    assert set(ds.features["label"].names) == {"landscape", "portrait", ROOT}
    assert ds[0]["image"].mode == "RGB"
    plain = datasets.load_dataset("imagefolder", data_dir=str(out), split="train")
    assert len(plain) == 9


def test_waits_for_maxlag_429_and_5xx(tmp_path: Path) -> None:
    lag = {"error": {"code": "maxlag", "info": "Waiting for db1: 6 seconds lagged.", "lag": 6}}
    in_2s = formatdate(time.time() + 2, usegmt=True)
    with wiki() as server:
        server.faults = [
            Fault("api", status=200, body=lag, headers={"Retry-After": "5"}),
            Fault("api", status=429, headers={"Retry-After": "0.25"}),
            Fault("api", status=503),                                 # no hint: back off
            Fault("image", status=429, headers={"Retry-After": in_2s}),
            Fault("image", status=502),
        ]
        sleeps = Sleeps()
        summary = run(server, tmp_path / "ds", sleep=sleeps)
    assert summary.accepted == 7
    # Retry-After in seconds, as a float, then (no hint, 2nd try of that request) 0.5 * 2**1.
    assert sleeps[:3] == [5.0, 0.25, 1.0]
    assert 0.5 < sleeps[3] <= 2.0 or 0.5 < sleeps[4] <= 2.0  # HTTP date (either download)
    assert max(sleeps) <= 5.0


def test_gives_up_after_retry_limit_and_resumes(tmp_path: Path) -> None:
    """An interrupted scrape resumes: no refetch of accepted files, no duplicates."""
    out = tmp_path / "ds"
    with wiki() as server:
        server.faults = [Fault("api", status=500, times=99, when=lambda p: "gcmcontinue" in p)]
        sleeps = Sleeps()
        with pytest.raises(RuntimeError, match="still failing after 3 retries"):
            run(server, out, sleep=sleeps, batch_size=2)  # dies on a category's 2nd batch
        assert sleeps == [0.5, 1.0, 2.0]  # exponential, capped count
        first = rows(out)
        assert 0 < len(first) < 7
        server.faults = []
        summary = run(server, out, batch_size=2)
        fetched = [r.path for r in server.requests_of("image")]
    assert summary.accepted == 7 and summary.complete
    assert len(fetched) == len(set(fetched)) == 7  # every thumbnail downloaded exactly once
    again = rows(out)
    assert again[:len(first)] == first and len({r["title"] for r in again}) == 7
    reference = tmp_path / "ref"
    with wiki() as server:
        run(server, reference, batch_size=2)

    def strip(rs: list[dict]) -> list[dict]:
        return [{k: v for k, v in r.items() if k != "source_url"} for r in rs]

    assert strip(rows(reference)) == strip(again)


def test_limit_then_rerun(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    with wiki() as server:
        assert run(server, out, limit=2).accepted == 2
        assert len(rows(out)) == 2 and len(list((out / IMAGES).iterdir())) == 2
        assert not run(server, out, limit=2).complete
        summary = run(server, out)
        fetched = [r.path for r in server.requests_of("image")]
        with pytest.raises(ValueError, match="other settings"):
            scrape(EMAIL, out, categories=["Other"], api=server.api_url, progress=False)
    assert summary.accepted == 7 and len(fetched) == len(set(fetched)) == 7


def test_killed_mid_write_leaves_no_partial_file(tmp_path: Path, monkeypatch) -> None:
    """kill -9 at any moment: nothing half-written counts, and a rerun ends the same."""
    out = tmp_path / "ds"
    real_replace, calls, saved = os.replace, [], {}

    def dying_replace(src, dst):
        if Path(dst).parent.name == IMAGES:
            if len(calls) == 1:
                # Die mid-batch: the 1st image stored but not yet in the saved state, the 2nd
                # written to a temporary file but never renamed. Keep the state as it was on
                # disk at this moment: a hard kill runs no clean-up code.
                saved["state"] = (out / STATE).read_bytes()
                raise KeyboardInterrupt
            calls.append(dst)
        real_replace(src, dst)

    with wiki() as server:
        monkeypatch.setattr(os, "replace", dying_replace)
        with pytest.raises(KeyboardInterrupt):
            run(server, out)
        monkeypatch.setattr(os, "replace", real_replace)
        (out / STATE).write_bytes(saved["state"])
        finals = [p for p in (out / IMAGES).iterdir() if not p.name.startswith(".")]
        assert all(Image.open(p).verify() is None for p in finals)
        assert len(calls) == len(finals) == 1
        assert json.loads(saved["state"])["items"] == {}
        summary = run(server, out)
        fetched = [r.path for r in server.requests_of("image")]
    assert summary.accepted == 7 and len(rows(out)) == 7
    assert not list((out / IMAGES).glob(".*"))  # no temporary leftovers
    assert len(set(fetched)) == 7
    for stored in finals:  # an image stored before the kill is reused, not fetched again
        stem = stored.name.rsplit("-", 1)[0].replace("_", "%20")
        assert sum(stem in path for path in fetched) == 1, stored.name
    reference = tmp_path / "ref"
    with wiki() as server:
        run(server, reference)
    assert [r["sha1"] for r in rows(reference)] == [r["sha1"] for r in rows(out)]


def test_truncated_and_mismatching_downloads_are_never_kept(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    small = picture(50, size=(200, 150))  # narrower than 250: Commons serves the original
    extra = [pd_file("File:Truncated.jpg", 51, truncate=True),
             pd_file("File:Wrong sha1.jpg", 52, image=small, sha1="0" * 40),
             pd_file("File:Not an image.jpg", 53, thumb=b"\xff\xd8\xff garbage, not a jpeg")]
    with wiki(extra) as server:
        summary = run(server, out)
        tries = {t: sum(1 for r in server.requests_of("image") if t in r.path)
                 for t in ("Truncated", "Wrong", "Not")}
    got = decisions(out)
    assert got["File:Truncated.jpg"]["decision"] == "failed"
    assert got["File:Truncated.jpg"]["reason"].startswith("truncated download")
    assert got["File:Wrong sha1.jpg"]["reason"].startswith("checksum mismatch")
    assert got["File:Not an image.jpg"]["reason"].startswith("undecodable download")
    assert tries == {"Truncated": 3, "Wrong": 3, "Not": 3}  # retried, then recorded as failed
    assert summary.errors == {"truncated download": 1, "checksum mismatch": 1,
                              "undecodable download": 1}
    names = " ".join(p.name for p in (out / IMAGES).iterdir())
    assert "Truncated" not in names and "Wrong" not in names and "Not_an" not in names
    assert summary.accepted == 7


def test_cli_scrape_and_loader_errors(tmp_path: Path, capsys) -> None:
    out = tmp_path / "cli"
    with wiki() as server:
        rc = main(["scrape", "--email", EMAIL, "--out", str(out), "--category", ROOT,
                   "--depth", "0", "--limit", "1", "--width", "120", "--api", server.api_url,
                   "--labels", "PD-Art (PD-old-100)=painting"])
    assert rc == 0 and "1 accepted" in capsys.readouterr().out
    assert rows(out)[0]["label"] == "painting" and rows(out)[0]["width"] == 120
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="metadata.jsonl"):
        load_images(empty)


def test_scraper_reports_settings(tmp_path: Path) -> None:
    cfg = ScrapeConfig(email=EMAIL, out=tmp_path, categories=("Category:X",), labels="A=b;C=d")
    assert cfg.categories == ("X",) and cfg.labels == {"A": "b", "C": "d"}
    assert Scraper(cfg, progress=False).summary().accepted == 0
