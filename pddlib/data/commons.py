"""The resumable Wikimedia Commons scrape: public-domain images into an HF imagefolder, politely.

The walk: categories breadth-first to `depth`, with a visited set because category graphs
contain loops; each category's files batch by batch (`pddlib.data.mediawiki`); each file page
screened on its metadata (`pddlib.data.candidates`, licence decisions in
`pddlib.data.licenses`), its thumbnail downloaded and verified (`pddlib.data.httpclient`,
`pddlib.data.thumbnails`), exact and near duplicates skipped (`pddlib.data.dedup`). API
requests are serial; at most 2 image downloads run at once.
Output (the contract with `pddlib.data.load_images(DIR)`; names in `pddlib.data.schema`):
  DIR/images/<slug>-<sha1[:12]>.jpg|png   re-encoded thumbnails, EXIF/GPS and all metadata gone
  DIR/metadata.jsonl   one row per accepted image: file_name + every common-schema column; `sha1`
                       is Commons' sha1 of the ORIGINAL upload (the file's identity on Commons,
                       searchable with list=allimages&aisha1=), not of our re-encoded thumbnail
  DIR/decisions.jsonl  every candidate with its decision (accepted/rejected/skipped/failed) and why
  DIR/scrape_state.json  walk position + per-item status, written atomically: a rerun resumes
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from pddlib.data import licenses
from pddlib.data.candidates import Candidate, label_for, screen
from pddlib.data.dedup import HashIndex, dhash
from pddlib.data.httpclient import Client, Refuse, Retry, backoff_seconds, can_reach
from pddlib.data.mediawiki import (
    DEFAULT_API,
    STANDARD_WIDTHS,
    file_batch_params,
    file_batches,
    subcategories,
)
from pddlib.data.schema import DECISIONS, IMAGES, METADATA, STATE
from pddlib.data.scrapeconfig import DEFAULT_CATEGORY, ScrapeConfig
from pddlib.data.thumbnails import THUMB_MIME, clean_image, encode, verify
from pddlib.files import atomic_write
from pddlib.progress import progress_bar

SOURCE = "wikimedia-commons"


@dataclass(frozen=True)
class ScrapeSummary:
    """Counts over the whole scrape folder (all runs): accepted, and the rest by reason."""

    out: Path
    accepted: int
    rejected: dict[str, int]      # licence decisions, by reason code
    skipped: dict[str, int]       # policy: missing page, MIME, size, duplicates
    errors: dict[str, int]        # downloads that failed verification after retries
    complete: bool                # the walk finished (False when stopped by --limit)

    def __str__(self) -> str:
        lines = [f"{self.out}: {self.accepted} accepted"
                 + ("" if self.complete else " (stopped at --limit; rerun to continue)")]
        for name in ("rejected", "skipped", "errors"):
            for reason, n in sorted(getattr(self, name).items(), key=lambda kv: -kv[1]):
                lines.append(f"  {name:8s} {n:5d}  {reason}")
        return "\n".join(lines)


@dataclass(frozen=True)
class Download:
    """What getting one candidate's thumbnail gave: an image, or why there is none."""

    kind: str                          # "fetched", "stored", "skipped" or "failed"
    image: Image.Image | None = None   # fetched, or stored by an earlier run
    name: str = ""                     # the stored file's name ("stored" only)
    reason: str = ""                   # why not ("skipped", "failed")


class Scraper:
    """One scrape folder: walks categories, decides, downloads, writes state and outputs.

    A Scraper runs once: its download pool and progress bar close when `run` ends.
    """

    def __init__(self, cfg: ScrapeConfig, sleep: Callable[[float], None] = time.sleep,
                 progress: bool = True) -> None:
        self.cfg = cfg
        self.client = Client(cfg, sleep)
        self.out = cfg.out
        self.images = self.out / IMAGES
        self.state = self._load_state()
        self.items: dict[str, dict] = self.state["items"]
        self.sha1s = {it["sha1"]: t for t, it in self.items.items() if it["status"] == "accepted"}
        self.hashes = HashIndex()
        for t, it in self.items.items():
            if it["status"] == "accepted":
                self.hashes.add(it["dhash"], t)
        self.counts = Counter(it["status"] for it in self.items.values())
        self._saves = 0
        self.pool = ThreadPoolExecutor(cfg.max_downloads)  # starts no thread until used
        self.bar = progress_bar(total=cfg.limit, initial=self.n_accepted, unit="img",
                                desc="scrape", disable=not progress)

    # -- state -----------------------------------------------------------------------------
    def _load_state(self) -> dict:
        """The folder's state if it has one made with these settings, else a fresh walk."""
        path = self.out / STATE
        settings = self.cfg.settings()
        if path.is_file():
            state = json.loads(path.read_text(encoding="utf-8"))
            if state["settings"] != settings:
                diff = sorted(k for k in settings if state["settings"].get(k) != settings[k])
                raise ValueError(
                    f"{self.out} holds a scrape made with other settings ({', '.join(diff)}); "
                    "rerun with the same settings to resume it, or choose a new --out.")
            return state
        return {"version": 1, "settings": settings, "done": False,
                "queue": [[c, 0] for c in self.cfg.categories],
                "visited": [licenses.normalize_category(c) for c in self.cfg.categories],
                "continue": None, "files_done": False, "items": {}}

    def save(self, views: bool = True) -> None:
        """Write the state, then (always if `views`, else every 10th call) the derived views.

        Each file is replaced atomically. The views are rebuilt from the state at the start
        and end of every run, so a view that lags behind after a kill is never a problem.
        """
        self.out.mkdir(parents=True, exist_ok=True)
        atomic_write(self.out / STATE, json.dumps(self.state, ensure_ascii=False).encode())
        self._saves += 1
        if not views and self._saves % 10:
            return
        rows = [it["row"] for it in self.items.values() if it["status"] == "accepted"]
        atomic_write(self.out / METADATA, "".join(
            json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode())
        log = [{"title": t, "decision": it["status"], "reason": it["reason"],
                "category": it["category"], "source_url": it["source_url"],
                "license": it.get("license", "")} for t, it in self.items.items()]
        atomic_write(self.out / DECISIONS, "".join(
            json.dumps(r, ensure_ascii=False) + "\n" for r in log).encode())

    def summary(self) -> ScrapeSummary:
        """Counts by decision and reason code over every item in the folder."""
        by: dict[str, Counter] = {s: Counter() for s in ("rejected", "skipped", "failed")}
        for it in self.items.values():
            if it["status"] in by:
                by[it["status"]][licenses.reason_code(it["reason"])] += 1
        return ScrapeSummary(self.out, self.n_accepted, dict(by["rejected"]),
                             dict(by["skipped"]), dict(by["failed"]), self.state["done"])

    @property
    def n_accepted(self) -> int:
        """Images accepted so far, over all runs."""
        return len(self.sha1s)

    def limit_reached(self) -> bool:
        """Whether the dataset holds the `limit` it was asked for."""
        return self.cfg.limit is not None and self.n_accepted >= self.cfg.limit

    def record(self, cand: Candidate, status: str, reason: str, **extra: Any) -> None:
        """Record one decision (every candidate gets exactly one)."""
        self.items[cand.title] = {"status": status, "reason": reason, "category": cand.category,
                                  "source_url": cand.source_url, "license": cand.license,
                                  "sha1": cand.sha1, **extra}
        self.counts[status] += 1
        self.bar.set_postfix(accepted=self.counts["accepted"], rejected=self.counts["rejected"],
                             skipped=self.counts["skipped"], failed=self.counts["failed"],
                             refresh=False)

    # -- the walk --------------------------------------------------------------------------
    def run(self) -> ScrapeSummary:
        """Scrape until the walk is done or the limit is reached; resumable at any point."""
        self.images.mkdir(parents=True, exist_ok=True)
        for stale in self.images.glob(".*.part"):  # left by a run killed mid-write
            stale.unlink()
        self.save()  # views catch up with the state if a run died between the two
        try:
            with self.bar, self.pool:
                self.walk()
            if self.state["done"]:
                self._remove_orphans()
        finally:
            self.save()  # the views, also when the run dies with an error
        return self.summary()

    def walk(self) -> None:
        """Work through the category queue: each category's files, then its subcategories."""
        st = self.state
        while st["queue"] and not self.limit_reached():
            category, depth = st["queue"][0]
            if not st["files_done"]:
                if not self.walk_files(category):
                    break  # limit reached mid-batch; the batch start stays in state
                st["files_done"] = True
                self.save(views=False)
            if depth < self.cfg.depth:
                for sub in subcategories(self.client.api, category):
                    key = licenses.normalize_category(sub)
                    if key not in st["visited"]:
                        st["visited"].append(key)
                        st["queue"].append([sub, depth + 1])
            st["queue"].pop(0)
            st["continue"], st["files_done"] = None, False
            self.save(views=False)
        st["done"] = not st["queue"]

    def walk_files(self, category: str) -> bool:
        """Process the files of one category batch by batch; False when the limit stopped it."""
        batches = file_batches(self.client.api, category, self.cfg.batch_size, self.cfg.width,
                               self.state["continue"])
        for pages, after in batches:
            if not self.process_batch(pages, category):
                self.save(views=False)  # keep the batch start: a rerun refetches it
                return False
            self.state["continue"] = after
            self.save(views=False)
            if not after:
                return True
            if self.limit_reached():
                return False
        return True

    # -- one batch -------------------------------------------------------------------------
    def process_batch(self, pages: list[dict], category: str) -> bool:
        """Decide every new page of a batch, download the accepted; False if the limit hit."""
        cands = []
        for page in pages:
            if page["title"] in self.items:
                continue  # decided in an earlier run or found through another category
            cand = self.candidate(page, category)
            if cand is not None:
                cands.append(cand)
        pos = 0
        while pos < len(cands):
            if self.limit_reached():
                return False
            room = len(cands) if self.cfg.limit is None else self.cfg.limit - self.n_accepted
            chunk = cands[pos:pos + min(self.cfg.max_downloads, room)]
            pos += len(chunk)
            # At most max_downloads requests in flight; the API waits meanwhile (serial).
            for cand, got in zip(chunk, self.pool.map(self.download, chunk), strict=True):
                self.finish(cand, got)
        return True

    def candidate(self, page: dict, category: str) -> Candidate | None:
        """Record pages that fail a cheap check; return the rest as download candidates."""
        cand, refusal = screen(page, category, allow_cc0=self.cfg.allow_cc0,
                               max_pixels=self.cfg.max_pixels)
        if refusal is None and cand.sha1 in self.sha1s:
            refusal = ("skipped", self._duplicate(cand))
        if refusal is not None:
            self.record(cand, *refusal)
            return None
        return cand

    def _duplicate(self, cand: Candidate) -> str:
        """The reason for skipping an exact copy (same sha1) of an accepted file."""
        return f"duplicate: same sha1 as {self.sha1s[cand.sha1]!r}"

    def _stored(self, cand: Candidate) -> Download | None:
        """The thumbnail a killed run stored completely, if any."""
        for ext in (".jpg", ".png"):
            done = self.images / (cand.stem + ext)
            if done.is_file():
                try:
                    with Image.open(done) as img:
                        img.load()
                        return Download("stored", img.copy(), done.name)
                except OSError:
                    done.unlink()  # cannot be ours complete: files only appear by rename
        return None

    def download(self, cand: Candidate) -> Download:
        """Fetch and verify one thumbnail (or reuse one a killed run already stored)."""
        stored = self._stored(cand)
        if stored is not None:
            return stored
        cfg, reason = self.cfg, ""
        sha1 = cand.sha1 if cand.is_original else None  # a resized thumbnail has other bytes
        for attempt in range(cfg.download_attempts):
            try:
                data, _ = self.client.fetch(cand.thumburl, THUMB_MIME)
                size = (cand.thumbwidth, cand.thumbheight)
                return Download("fetched", verify(data, size, cfg.max_pixels, sha1))
            except Refuse as e:
                return Download("skipped", reason=str(e))
            except Retry as e:
                reason = str(e)
                if attempt + 1 < cfg.download_attempts:
                    self.client.sleep(backoff_seconds(attempt, cfg.backoff_base, cfg.backoff_cap))
        return Download("failed", reason=f"{reason} ({cfg.download_attempts} attempts)")

    def finish(self, cand: Candidate, got: Download) -> None:
        """Deduplicate, store and record one downloaded candidate."""
        if got.image is None:  # skipped or failed: its reason is the decision
            self.record(cand, got.kind, got.reason)
            return
        if cand.sha1 in self.sha1s:  # an exact copy accepted earlier in the same batch
            self.record(cand, "skipped", self._duplicate(cand))
            return
        img, name, fmt = got.image, got.name, ""
        if got.kind == "fetched":
            img, fmt = clean_image(img)
            name = cand.stem + (".png" if fmt == "PNG" else ".jpg")
        h = dhash(img)
        near = self.hashes.nearest(h, self.cfg.near_duplicate_bits)
        if near:
            self.record(cand, "skipped",
                        f"near-duplicate: of {near[0]!r} (dHash distance {near[1]})")
            if got.kind == "stored":
                (self.images / name).unlink(missing_ok=True)
            return
        if got.kind == "fetched":
            atomic_write(self.images / name, encode(img, fmt))
        self.accept(cand, name, img, h)

    def accept(self, cand: Candidate, name: str, img: Image.Image, h: int) -> None:
        """Record a stored image as accepted, with its metadata row."""
        row = {"file_name": f"{IMAGES}/{name}", "label": label_for(cand, self.cfg.labels),
               "title": cand.title.removeprefix("File:"), "source": SOURCE,
               "source_url": cand.source_url,
               "author": licenses.meta_value(cand.meta, "Artist") or "unknown",
               "license": cand.license, "license_url": cand.license_url,
               "license_reason": cand.license_reason, "sha1": cand.sha1,
               "width": img.width, "height": img.height}
        self.sha1s[cand.sha1] = cand.title
        self.hashes.add(h, cand.title)
        self.record(cand, "accepted", cand.license_reason, row=row, dhash=h)
        self.bar.update(1)

    def _remove_orphans(self) -> None:
        """Delete stored images no accepted row points at (e.g. from an interrupted run)."""
        keep = {it["row"]["file_name"] for it in self.items.values() if it["status"] == "accepted"}
        for p in self.images.iterdir():
            if p.suffix in (".jpg", ".png") and f"{IMAGES}/{p.name}" not in keep:
                p.unlink()


def scrape(
    email: str,
    out: str | Path,
    *,
    categories: Iterable[str] = (DEFAULT_CATEGORY,),
    sleep: Callable[[float], None] = time.sleep,
    progress: bool = True,
    **options: Any,
) -> ScrapeSummary:
    """Scrape public-domain images from Commons into `out` (an HF imagefolder); resumable.

    Options are the fields of `ScrapeConfig` (depth, limit, width, labels, allow_cc0, api, ...).
    Returns counts of accepted, rejected (by licence reason), skipped and failed files.
    """
    cfg = ScrapeConfig(email=email, out=Path(out), categories=tuple(categories), **options)
    return Scraper(cfg, sleep=sleep, progress=progress).run()


# `pddlib scrape` and notebook 01 reach the scraper's settings and its client through here.
__all__ = [
    "DEFAULT_API", "DEFAULT_CATEGORY", "STANDARD_WIDTHS", "Client", "ScrapeConfig",
    "ScrapeSummary", "Scraper", "can_reach", "file_batch_params", "scrape",
]
