"""A scrape's settings, checked up front: the contact e-mail, label mapping and polite limits."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pddlib.data.mediawiki import DEFAULT_API, STANDARD_WIDTHS

DEFAULT_CATEGORY = "PD-Art (PD-old-100)"
# RFC 2606/6761 names that can never reach a person.
RESERVED_DOMAINS = re.compile(r"(^|\.)(example\.(com|org|net)|example|test|invalid|localhost)$")
EMAIL = re.compile(r"^[^@\s<>()]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")


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


__all__ = ["DEFAULT_CATEGORY", "ScrapeConfig", "check_email", "parse_labels"]
