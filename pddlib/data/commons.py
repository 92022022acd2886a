"""The Wikimedia Commons scraper: public-domain images into an HF imagefolder, politely.

Protocol (the real MediaWiki Action API, https://www.mediawiki.org/wiki/API:Query):
  one request per batch of files: generator=categorymembers (gcmtype=file, gcmlimit <= 50,
  because Commons renders at most 50 thumbnails per request) + prop=imageinfo|categories
  (iiprop=url|size|mime|sha1|extmetadata, iiurlwidth = a standard thumbnail width);
  `continue` is merged back verbatim (values are opaque, nested iicontinue/clcontinue included)
  until `batchcomplete`; subcategories come from list=categorymembers (cmtype=subcat), walked
  breadth-first to `depth` with a visited set because category graphs contain loops.
Etiquette: a User-Agent with a contact e-mail, maxlag=5 on every API request, Retry-After
  honoured (seconds, float or HTTP date) on maxlag / 429 / 5xx, otherwise exponential backoff
  with a cap and a retry limit; API requests serial; at most 2 image downloads at once; gzip.
Output (the contract with `pddlib.data.load_images(DIR)`):
  DIR/images/<slug>-<sha1[:12]>.jpg|png   re-encoded thumbnails, EXIF/GPS and all metadata gone
  DIR/metadata.jsonl   one row per accepted image: file_name + every common-schema column; `sha1`
                       is Commons' sha1 of the ORIGINAL upload (the file's identity on Commons,
                       searchable with list=allimages&aisha1=), not of our re-encoded thumbnail
  DIR/decisions.jsonl  every candidate with its decision (accepted/rejected/skipped/failed) and why
  DIR/scrape_state.json  walk position + per-item status, written atomically: a rerun resumes
Licence decisions live in `pddlib.data.licenses` (pure functions).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import socket
import threading
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import requests
from PIL import Image

from pddlib import __version__
from pddlib.data import licenses
from pddlib.data.checks import to_rgb
from pddlib.files import atomic_write

DEFAULT_API = "https://commons.wikimedia.org/w/api.php"
DEFAULT_CATEGORY = "PD-Art (PD-old-100)"
SOURCE = "wikimedia-commons"
# Commons pre-renders these widths; other widths are refused or throttled.
STANDARD_WIDTHS = (20, 40, 60, 120, 250, 330, 500, 960, 1280, 1920, 3840)
ALLOWED_MIME = frozenset({"image/jpeg", "image/png", "image/gif", "image/tiff", "image/webp"})
THUMB_MIME = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
THUMB_FORMATS = frozenset({"JPEG", "PNG", "GIF", "WEBP"})
EXTMETADATA_FIELDS = (
    "License|LicenseShortName|LicenseUrl|UsageTerms|Copyrighted|AttributionRequired|NonFree|"
    "DeletionReason|Restrictions|Artist|ObjectName"
)
# RFC 2606/6761 names that can never reach a person.
RESERVED_DOMAINS = re.compile(r"(^|\.)(example\.(com|org|net)|example|test|invalid|localhost)$")
EMAIL = re.compile(r"^[^@\s<>()]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
STATE, METADATA, DECISIONS, IMAGES = (
    "scrape_state.json", "metadata.jsonl", "decisions.jsonl", "images")


def check_email(email: str | None) -> str:
    """Return the address if it is a plausible contact e-mail, else raise a clear ValueError."""
    address = (email or "").strip()
    domain = address.rpartition("@")[2].lower()
    if not EMAIL.match(address) or RESERVED_DOMAINS.search(domain):
        raise ValueError(
            f"{address!r} is not a contact e-mail Wikimedia can reach. Commons asks every bot to "
            "identify itself: pass your real address, e.g. `pddlib scrape --email you@uni.edu`."
        )
    return address


def user_agent(email: str) -> str:
    """The User-Agent Wikimedia's policy asks for: client/version (contact) library/version."""
    return f"pddlib/{__version__} ({check_email(email)}) requests/{requests.__version__}"


def parse_labels(spec: str | Mapping[str, str] | None) -> dict[str, str]:
    """Parse a category->label mapping: a dict, a JSON file, JSON text, or "Cat=label;Cat=label"."""
    if spec is None or spec == "":
        return {}
    if isinstance(spec, Mapping):
        return {str(k): str(v) for k, v in spec.items()}
    text = spec.strip()
    if not text.startswith("{") and Path(text).is_file():
        text = Path(text).read_text(encoding="utf-8")
    if text.startswith("{"):
        return {str(k): str(v) for k, v in json.loads(text).items()}
    pairs = [p.split("=", 1) for p in text.split(";") if p.strip()]
    if any(len(p) != 2 for p in pairs):
        raise ValueError(f"--labels {spec!r}: expected a JSON file or 'Category=label;...'")
    return {k.strip(): v.strip() for k, v in pairs}


@dataclass(frozen=True)
class ScrapeConfig:
    """Everything a scrape needs; defaults are the polite ones for commons.wikimedia.org."""

    email: str
    out: Path
    categories: tuple[str, ...] = (DEFAULT_CATEGORY,)
    depth: int = 0                  # subcategory levels below each category
    limit: int | None = None        # stop once the dataset holds this many images
    width: int = 250                # thumbnail width, one of STANDARD_WIDTHS
    labels: Mapping[str, str] = field(default_factory=dict)  # category -> class name
    allow_cc0: bool = False
    api: str = DEFAULT_API
    batch_size: int = 50            # gcmlimit; Commons renders <= 50 thumbnails per request
    maxlag: int = 5
    max_retries: int = 6            # per request, for maxlag / 429 / 5xx / network errors
    backoff_base: float = 1.0       # seconds; doubles each retry ...
    backoff_cap: float = 60.0       # ... up to this
    max_wait: float = 900.0         # longest Retry-After we honour before giving up
    max_downloads: int = 2          # concurrent image downloads
    download_attempts: int = 3      # for truncated / corrupt / mismatching downloads
    timeout: float = 60.0
    max_pixels: int = 40_000_000    # decompression-bomb guard
    max_bytes: int = 30_000_000
    near_duplicate_bits: int = 4    # dHash Hamming distance counted as the same picture

    def __post_init__(self) -> None:
        check_email(self.email)
        object.__setattr__(self, "out", Path(self.out))
        object.__setattr__(self, "categories", tuple(
            c.removeprefix("Category:").strip() for c in self.categories))
        object.__setattr__(self, "labels", parse_labels(self.labels))
        if self.width not in STANDARD_WIDTHS:
            raise ValueError(f"width {self.width} is not a standard Commons thumbnail width; "
                             f"use one of {STANDARD_WIDTHS}")
        if not 1 <= self.batch_size <= 50:
            raise ValueError("batch_size must be 1..50 (Commons renders <= 50 thumbs a request)")
        if not 1 <= self.max_downloads <= 2:
            raise ValueError("max_downloads must be 1 or 2 (Wikimedia's limit for bots)")
        if self.depth < 0 or (self.limit is not None and self.limit < 1) or not self.categories:
            raise ValueError("need depth >= 0, limit >= 1 (or None) and at least one category")

    def settings(self) -> dict[str, Any]:
        """What must match for a rerun to resume a scrape folder."""
        return {"api": self.api, "categories": list(self.categories), "depth": self.depth,
                "width": self.width, "labels": dict(self.labels), "allow_cc0": self.allow_cc0}


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


class Retry(Exception):
    """A download went wrong in a way that may not happen again (truncated, corrupt)."""


class Refuse(Exception):
    """A download is not acceptable and retrying will not change that (MIME, size)."""


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Parse Retry-After: delta seconds ("5", "0.5") or an HTTP date; None when absent/bad."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())


def backoff_seconds(attempt: int, base: float, cap: float) -> float:
    """Exponential backoff: base * 2**attempt, capped."""
    return min(cap, base * 2.0 ** attempt)


def slug(title: str, sha1: str) -> str:
    """A file stem that can never leave its folder: ASCII [A-Za-z0-9_-] of the title + sha1."""
    stem = title.removeprefix("File:").rsplit(".", 1)[0]
    ascii_ = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode()
    clean = re.sub(r"[^A-Za-z0-9_-]+", "_", ascii_).strip("_-")[:60] or "file"
    return f"{clean}-{sha1[:12]}"


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


def clean_image(img: Image.Image) -> tuple[Image.Image, str]:
    """Re-encodable copy without any metadata: orientation applied, RGB on white; and format."""
    fmt = "PNG" if img.format in ("PNG", "GIF") else "JPEG"
    rgb = to_rgb(img)  # keep what the viewer saw (orientation, white under transparency)
    # A fresh image carries no info dict: no EXIF/GPS, XMP, comments or ICC profile can leak.
    return Image.frombytes("RGB", rgb.size, rgb.tobytes()), fmt


class Client:
    """HTTP for one scrape: serial API calls, verified image downloads, retries done politely."""

    def __init__(self, cfg: ScrapeConfig, sleep: Callable[[float], None]) -> None:
        self.cfg, self.sleep = cfg, sleep
        self.headers = {"User-Agent": user_agent(cfg.email), "Accept-Encoding": "gzip"}
        self._local = threading.local()

    def session(self) -> requests.Session:
        """One keep-alive session per thread (requests sessions are not shared across threads)."""
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
            self._local.session.headers.update(self.headers)
        return self._local.session

    def _wait(self, attempt: int, response: requests.Response | None, what: str) -> None:
        cfg = self.cfg
        if attempt >= cfg.max_retries:
            raise RuntimeError(f"{what} still failing after {cfg.max_retries} retries; "
                               "Commons may be overloaded: try again later.")
        hint = (None if response is None  # (a 4xx/5xx Response is falsy)
                else retry_after_seconds(response.headers.get("Retry-After")))
        wait = backoff_seconds(attempt, cfg.backoff_base, cfg.backoff_cap) if hint is None else hint
        if wait > cfg.max_wait:
            raise RuntimeError(f"{what}: server asks to wait {wait:.0f} s; try again later.")
        self.sleep(wait)

    def get(self, url: str, params: dict[str, str] | None = None, stream: bool = False,
            what: str = "request") -> requests.Response:
        """GET with retries on network errors, 429 and 5xx (honouring Retry-After)."""
        for attempt in range(self.cfg.max_retries + 1):
            try:
                r = self.session().get(url, params=params, stream=stream, timeout=self.cfg.timeout)
            except (requests.ConnectionError, requests.Timeout):
                self._wait(attempt, None, what)
                continue
            if r.status_code == 429 or r.status_code >= 500:
                r.close()
                self._wait(attempt, r, what)
                continue
            return r
        raise AssertionError("unreachable")

    def api(self, params: dict[str, str]) -> dict:
        """One Action API request (maxlag set), retried on maxlag errors; returns the JSON."""
        full = {"action": "query", "format": "json", "formatversion": "2",
                "maxlag": str(self.cfg.maxlag), **params}
        for attempt in range(self.cfg.max_retries + 1):
            r = self.get(self.cfg.api, full, what="Commons API")
            if r.status_code != 200:
                raise RuntimeError(f"Commons API answered HTTP {r.status_code} for {params}")
            try:
                data = r.json()
            except ValueError:  # an HTML error page from a proxy: transient
                self._wait(attempt, r, "Commons API (answer is not JSON)")
                continue
            error = data.get("error")
            if error and error.get("code") in ("maxlag", "ratelimited"):
                self._wait(attempt, r, "Commons API (replication lag)")
                continue
            if error:
                raise RuntimeError(f"Commons API error {error.get('code')}: {error.get('info')}")
            return data
        raise AssertionError("unreachable")

    def fetch(self, url: str) -> tuple[bytes, str]:
        """Download one image into memory (size-capped); returns (bytes, content type)."""
        try:
            with self.get(url, stream=True, what=f"download {url}") as r:
                if r.status_code != 200:
                    raise Retry(f"http {r.status_code}")
                ctype = r.headers.get("Content-Type", "").split(";")[0].strip().lower()
                if ctype not in THUMB_MIME:
                    raise Refuse(f"mime not allowed: served as {ctype or 'nothing'}")
                buf = bytearray()
                for chunk in r.iter_content(1 << 16):
                    buf += chunk
                    if len(buf) > self.cfg.max_bytes:
                        raise Refuse(f"oversized: more than {self.cfg.max_bytes} bytes")
                return bytes(buf), ctype
        except (requests.exceptions.ChunkedEncodingError,
                requests.exceptions.ContentDecodingError, requests.ConnectionError) as e:
            raise Retry(f"truncated download: {type(e).__name__}") from e
        except RuntimeError as e:  # retries exhausted on 429/5xx
            raise Retry(str(e)) from e


def verify(data: bytes, cand: dict, max_pixels: int) -> Image.Image:
    """Decode a download fully and check it against what the API promised."""
    if cand["is_original"] and hashlib.sha1(data).hexdigest() != cand["sha1"]:
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
    tw, th = cand["thumbwidth"], cand["thumbheight"]
    if abs(img.width - tw) > 1 or abs(img.height - th) > 1:
        raise Retry(f"size mismatch: got {img.width}x{img.height}, Commons said {tw}x{th}")
    return img


class Scraper:
    """One scrape folder: walks categories, decides, downloads, writes state and outputs."""

    def __init__(self, cfg: ScrapeConfig, sleep: Callable[[float], None] = time.sleep,
                 progress: bool = True) -> None:
        self.cfg = cfg
        self.client = Client(cfg, sleep)
        self.out = cfg.out
        self.images = self.out / IMAGES
        self.progress = progress
        self.state = self._load_state()
        self.items: dict[str, dict] = self.state["items"]
        self.sha1s = {it["sha1"]: t for t, it in self.items.items() if it["status"] == "accepted"}
        self.hashes = HashIndex()
        for t, it in self.items.items():
            if it["status"] == "accepted":
                self.hashes.add(it["dhash"], t)
        self.counts = Counter(it["status"] for it in self.items.values())
        self.bar: Any = None
        self._saves = 0

    # -- state -----------------------------------------------------------------------------
    def _load_state(self) -> dict:
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
        return len(self.sha1s)

    def limit_reached(self) -> bool:
        return self.cfg.limit is not None and self.n_accepted >= self.cfg.limit

    def record(self, title: str, status: str, reason: str, cand: dict, **extra: Any) -> None:
        """Record one decision (every candidate gets exactly one)."""
        self.items[title] = {"status": status, "reason": reason, "category": cand["category"],
                             "source_url": cand.get("source_url", ""),
                             "license": cand.get("license", ""), "sha1": cand.get("sha1", ""),
                             **extra}
        self.counts[status] += 1
        if self.bar is not None:
            self.bar.set_postfix(accepted=self.counts["accepted"],
                                 rejected=self.counts["rejected"],
                                 skipped=self.counts["skipped"], failed=self.counts["failed"],
                                 refresh=False)

    # -- the walk --------------------------------------------------------------------------
    def run(self) -> ScrapeSummary:
        """Scrape until the walk is done or the limit is reached; resumable at any point."""
        self.images.mkdir(parents=True, exist_ok=True)
        for stale in self.images.glob(".*.part"):  # left by a run killed mid-write
            stale.unlink()
        self.save()  # views catch up with the state if a run died between the two
        from tqdm.auto import tqdm

        st = self.state
        try:
            with tqdm(total=self.cfg.limit, initial=self.n_accepted, unit="img", desc="scrape",
                      disable=not self.progress) as self.bar, \
                    ThreadPoolExecutor(self.cfg.max_downloads) as self.pool:
                while st["queue"] and not self.limit_reached():
                    category, depth = st["queue"][0]
                    if not st["files_done"]:
                        if not self.walk_files(category):
                            break  # limit reached mid-batch; the batch start stays in state
                        st["files_done"] = True
                        self.save(views=False)
                    if depth < self.cfg.depth:
                        for sub in self.subcategories(category):
                            key = licenses.normalize_category(sub)
                            if key not in st["visited"]:
                                st["visited"].append(key)
                                st["queue"].append([sub, depth + 1])
                    st["queue"].pop(0)
                    st["continue"], st["files_done"] = None, False
                    self.save(views=False)
                st["done"] = not st["queue"]
            if st["done"]:
                self._remove_orphans()
        finally:
            self.bar = None
            self.save()  # the views, also when the run dies with an error
        return self.summary()

    def subcategories(self, category: str) -> list[str]:
        """All direct subcategories of a category (paged with cmcontinue)."""
        params = {"list": "categorymembers", "cmtitle": f"Category:{category}",
                  "cmtype": "subcat", "cmlimit": "max", "continue": ""}
        names: list[str] = []
        while True:
            data = self.client.api(params)
            names += [m["title"].removeprefix("Category:")
                      for m in data.get("query", {}).get("categorymembers", [])]
            if "continue" not in data:
                return names
            params = {**params, **data["continue"]}

    def walk_files(self, category: str) -> bool:
        """Process the files of one category batch by batch; False when the limit stopped it."""
        base = file_batch_params(category, self.cfg.batch_size, self.cfg.width)
        cont = self.state["continue"] or {}
        pending: dict[str, dict] = {}
        while True:
            data = self.client.api({**base, **cont})
            for page in data.get("query", {}).get("pages", []):
                merge_page(pending.setdefault(page["title"], {"title": page["title"]}), page)
            if not data.get("batchcomplete"):
                if "continue" not in data:
                    raise RuntimeError("Commons API answered neither batchcomplete nor continue")
                cont = data["continue"]  # nested iicontinue/clcontinue: same batch, more props
                continue
            if not self.process_batch(pending, category):
                self.save(views=False)  # keep the batch start: a rerun refetches it
                return False
            pending = {}
            self.state["continue"] = data.get("continue")
            self.save(views=False)
            if not self.state["continue"]:
                return True
            if self.limit_reached():
                return False
            cont = self.state["continue"]

    # -- one batch -------------------------------------------------------------------------
    def process_batch(self, pages: dict[str, dict], category: str) -> bool:
        """Decide every new page of a batch, download the accepted; False if the limit hit."""
        cands = []
        for title in sorted(pages):  # pages arrive in no particular order
            if title in self.items:
                continue  # decided in an earlier run or found through another category
            cand = self.candidate(pages[title], category)
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
            for cand, result in zip(chunk, self.pool.map(self.download, chunk)):
                self.finish(cand, result)
        return True

    def candidate(self, page: dict, category: str) -> dict | None:
        """Record pages that fail a cheap check; return the rest as download candidates."""
        title = page["title"]
        info = (page.get("imageinfo") or [{}])[0]
        cand = {"title": title, "category": category,
                "source_url": info.get("descriptionurl", ""), "sha1": info.get("sha1", "")}
        if page.get("missing") or page.get("invalid") or not info:
            self.record(title, "skipped", "missing page: no file page or no imageinfo", cand)
            return None
        meta = info.get("extmetadata") or {}
        cats = [c["title"] for c in page.get("categories", [])]
        cand.update(license=licenses.license_name(meta), license_url=licenses.license_url(meta),
                    meta=meta, categories=cats)
        ok, reason = licenses.decide(meta, cats, allow_cc0=self.cfg.allow_cc0)
        if not ok:
            self.record(title, "rejected", reason, cand)
            return None
        cand["license_reason"] = reason
        mime = info.get("mime", "")
        if mime not in ALLOWED_MIME:
            self.record(title, "skipped", f"mime not allowed: {mime}", cand)
            return None
        if not re.fullmatch(r"[0-9a-f]{40}", cand["sha1"]) or not info.get("thumburl"):
            self.record(title, "skipped", "missing metadata: no sha1 or thumburl", cand)
            return None
        tw, th = int(info.get("thumbwidth", 0)), int(info.get("thumbheight", 0))
        if not 0 < tw * th <= self.cfg.max_pixels:
            self.record(title, "skipped", f"oversized: thumbnail {tw}x{th}", cand)
            return None
        if cand["sha1"] in self.sha1s:
            self.record(title, "skipped",
                        f"duplicate: same sha1 as {self.sha1s[cand['sha1']]!r}", cand)
            return None
        cand.update(thumburl=info["thumburl"], thumbwidth=tw, thumbheight=th,
                    is_original=info["thumburl"] == info.get("url"),
                    stem=slug(title, cand["sha1"]))
        return cand

    def download(self, cand: dict) -> tuple[str, Any]:
        """Fetch and verify one thumbnail (or reuse one a killed run already stored)."""
        for ext in (".jpg", ".png"):
            done = self.images / (cand["stem"] + ext)
            if done.is_file():
                try:
                    with Image.open(done) as img:
                        img.load()
                        return "stored", (img.copy(), done.name)
                except OSError:
                    done.unlink()  # cannot be ours complete: files only appear by rename
        reason = ""
        for attempt in range(self.cfg.download_attempts):
            try:
                data, _ = self.client.fetch(cand["thumburl"])
                return "fetched", verify(data, cand, self.cfg.max_pixels)
            except Refuse as e:
                return "skipped", str(e)
            except Retry as e:
                reason = str(e)
                if attempt + 1 < self.cfg.download_attempts:
                    self.client.sleep(backoff_seconds(attempt, self.cfg.backoff_base,
                                                      self.cfg.backoff_cap))
        return "failed", f"{reason} ({self.cfg.download_attempts} attempts)"

    def finish(self, cand: dict, result: tuple[str, Any]) -> None:
        """Deduplicate, store and record one downloaded candidate."""
        kind, value = result
        title = cand["title"]
        if kind in ("skipped", "failed"):
            self.record(title, kind, value, cand)
            return
        if cand["sha1"] in self.sha1s:  # an exact copy accepted earlier in the same batch
            self.record(title, "skipped",
                        f"duplicate: same sha1 as {self.sha1s[cand['sha1']]!r}", cand)
            return
        if kind == "stored":
            img, name = value
        else:
            img, fmt = clean_image(value)
            name = cand["stem"] + (".png" if fmt == "PNG" else ".jpg")
        h = dhash(img)
        near = self.hashes.nearest(h, self.cfg.near_duplicate_bits)
        if near:
            self.record(title, "skipped",
                        f"near-duplicate: of {near[0]!r} (dHash distance {near[1]})", cand)
            if kind == "stored":
                (self.images / name).unlink(missing_ok=True)
            return
        if kind == "fetched":
            buf = io.BytesIO()
            img.save(buf, fmt, **({"quality": 95} if fmt == "JPEG" else {"optimize": True}))
            atomic_write(self.images / name, buf.getvalue())
        row = {"file_name": f"{IMAGES}/{name}", "label": self.label(cand), "title":
               title.removeprefix("File:"), "source": SOURCE, "source_url": cand["source_url"],
               "author": licenses.meta_value(cand["meta"], "Artist") or "unknown",
               "license": cand["license"], "license_url": cand["license_url"],
               "license_reason": cand["license_reason"], "sha1": cand["sha1"],
               "width": img.width, "height": img.height}
        self.sha1s[cand["sha1"]] = title
        self.hashes.add(h, title)
        self.record(title, "accepted", cand["license_reason"], cand, row=row, dhash=h)
        if self.bar is not None:
            self.bar.update(1)

    def label(self, cand: dict) -> str:
        """Class name: the first mapped category (found-through first), else found-through."""
        mapping = {licenses.normalize_category(k): v for k, v in self.cfg.labels.items()}
        for c in [cand["category"], *cand["categories"]]:
            if licenses.normalize_category(c) in mapping:
                return mapping[licenses.normalize_category(c)]
        return cand["category"]

    def _remove_orphans(self) -> None:
        """Delete stored images no accepted row points at (e.g. from an interrupted run)."""
        keep = {it["row"]["file_name"] for it in self.items.values() if it["status"] == "accepted"}
        for p in self.images.iterdir():
            if p.suffix in (".jpg", ".png") and f"{IMAGES}/{p.name}" not in keep:
                p.unlink()


def file_batch_params(category: str, batch_size: int = 50, width: int = 250) -> dict[str, str]:
    """The query for one batch of a category's files with licence metadata and thumbnails."""
    return {"generator": "categorymembers", "gcmtitle": f"Category:{category}",
            "gcmtype": "file", "gcmlimit": str(batch_size),
            "prop": "imageinfo|categories", "iiprop": "url|size|mime|sha1|extmetadata",
            "iiurlwidth": str(width), "iiextmetadatafilter": EXTMETADATA_FIELDS,
            "iiextmetadatalanguage": "en", "cllimit": "max", "continue": ""}


def can_reach(url: str = DEFAULT_API, timeout: float = 3.0) -> bool:
    """True when a TCP connection to the URL's host opens (no HTTP request is sent)."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "", port), timeout=timeout):
            return True
    except OSError:
        return False


def merge_page(into: dict, page: dict) -> None:
    """Merge one partial page of a continued query (imageinfo and categories arrive in parts)."""
    for key, value in page.items():
        if key == "categories":
            seen = {c["title"] for c in into.get("categories", [])}
            into.setdefault("categories", []).extend(c for c in value if c["title"] not in seen)
        elif key == "imageinfo":
            into.setdefault("imageinfo", value)
        else:
            into[key] = value


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


__all__ = [
    "DEFAULT_API", "DEFAULT_CATEGORY", "STANDARD_WIDTHS", "Client", "ScrapeConfig",
    "ScrapeSummary", "Scraper", "can_reach", "check_email", "file_batch_params", "parse_labels",
    "retry_after_seconds", "scrape", "user_agent",
]
