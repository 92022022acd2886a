"""A file page as a download candidate: its typed record and the checks made before downloading."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from pddlib.data import licenses
from pddlib.data.thumbnails import slug

ALLOWED_MIME = frozenset({"image/jpeg", "image/png", "image/gif", "image/tiff", "image/webp"})

Refusal = tuple[str, str]  # (decision: "rejected" or "skipped", reason)


@dataclass(frozen=True)
class Candidate:
    """One file page on its way to a decision; fields past `sha1` are filled as checks pass."""

    title: str                      # "File:..."
    category: str                   # the category it was found through
    source_url: str = ""            # its file page on Commons
    sha1: str = ""                  # Commons' sha1 of the original upload
    license: str = ""
    license_url: str = ""
    license_reason: str = ""        # why the licence was accepted
    meta: Mapping[str, Any] = field(default_factory=dict)  # the API's extmetadata
    categories: tuple[str, ...] = ()  # the file's own categories
    thumburl: str = ""
    thumbwidth: int = 0
    thumbheight: int = 0
    is_original: bool = False       # the thumbnail URL is the original: its sha1 must match
    stem: str = ""                  # the stored file's name, without extension


def screen(page: Mapping[str, Any], category: str, *, allow_cc0: bool,
           max_pixels: int) -> tuple[Candidate, Refusal | None]:
    """Check one merged file page: the candidate, and why it goes no further (None: download)."""
    title = page["title"]
    info = (page.get("imageinfo") or [{}])[0]
    cand = Candidate(title, category, source_url=info.get("descriptionurl", ""),
                     sha1=info.get("sha1", ""))
    if page.get("missing") or page.get("invalid") or not info:
        return cand, ("skipped", "missing page: no file page or no imageinfo")
    meta = info.get("extmetadata") or {}
    cats = [c["title"] for c in page.get("categories", [])]
    cand = replace(cand, license=licenses.license_name(meta),
                   license_url=licenses.license_url(meta), meta=meta, categories=tuple(cats))
    ok, reason = licenses.decide(meta, cats, allow_cc0=allow_cc0)
    if not ok:
        return cand, ("rejected", reason)
    cand = replace(cand, license_reason=reason)
    mime = info.get("mime", "")
    if mime not in ALLOWED_MIME:
        return cand, ("skipped", f"mime not allowed: {mime}")
    if not re.fullmatch(r"[0-9a-f]{40}", cand.sha1) or not info.get("thumburl"):
        return cand, ("skipped", "missing metadata: no sha1 or thumburl")
    tw, th = int(info.get("thumbwidth", 0)), int(info.get("thumbheight", 0))
    if not 0 < tw * th <= max_pixels:
        return cand, ("skipped", f"oversized: thumbnail {tw}x{th}")
    return replace(cand, thumburl=info["thumburl"], thumbwidth=tw, thumbheight=th,
                   is_original=info["thumburl"] == info.get("url"),
                   stem=slug(title, cand.sha1)), None


def label_for(cand: Candidate, labels: Mapping[str, str]) -> str:
    """Class name: the first mapped category (found-through first), else found-through."""
    mapping = {licenses.normalize_category(k): v for k, v in labels.items()}
    for c in [cand.category, *cand.categories]:
        if licenses.normalize_category(c) in mapping:
            return mapping[licenses.normalize_category(c)]
    return cand.category


__all__ = ["ALLOWED_MIME", "Candidate", "Refusal", "label_for", "screen"]
