"""Licence decisions for Wikimedia Commons files: pure functions returning (accepted, reason).

Commons describes each file's licence twice, and we only accept a file when both agree:
  (a) `extmetadata` (extension CommonsMetadata), parsed from the licence templates on the file
      page: `License` ("pd", "cc0", "cc-by-sa-4.0", ...), `Copyrighted` ("False" only when the
      template's usage terms are "Public domain"), `AttributionRequired`, `NonFree`,
      `DeletionReason`, `Restrictions` ("personality|trademarked|...");
  (b) the file's categories (`prop=categories`), which licence templates add, e.g.
      "PD-Art (PD-old-100)", "Author died more than 100 years ago public domain images",
      "CC-PD-Mark", "CC-Zero".
"Agree" means both name a status with no rights reserved that this run accepts: public domain
(the Public Domain Mark is a public-domain statement) or, when allowed, CC0. One file often
carries several of them ({{PD-old-100}}, which Commons shows with the Public Domain Mark, and
an uploader's {{CC-zero}}); that is not a contradiction. A contradiction is any other licence
(CC BY, CC BY-SA, GFDL, ...), or a non-free tag, beside them; a category that doubts the
status (deletion request, missing licence, review needed, "possibly public domain") rejects
the file too.

extmetadata has a `Categories` field as well, but CommonsMetadata removes from it every
category it reads as a licence ("CC-BY-SA-4.0", "Public domain", ...), and when a file has
several licence templates `License` names only the highest-priority one (public domain before
any CC licence). So a PD + CC BY-SA file shows `License`=pd and loses its CC BY-SA category
from `Categories`: that field (when present; the scraper's query does not ask for it) is
searched for contradictions and doubts, never counted as (b).

Values are HTML strings; every comparison strips markup and ignores case. A reason reads
"code: detail"; the code (before the colon) is what summaries count.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping
from typing import Any

PD_LICENSES = frozenset({"pd"})
CC0_LICENSES = frozenset({"cc0"})
# Categories that name a status with no rights reserved (normalised: lower case, spaces), by
# kind. Commons' licence templates name their categories in a short form ("PD-old-100",
# "PD US expired", "PD-Art (PD-old-100)", "PD-self", "PD ineligible") or, for the {{PD-old-N}}
# family, in a long form ("Author died more than 100 years ago public domain images"), hence
# any "... public domain images" (doubting ones are caught first, see DOUBT_CATEGORY).
PD_CATEGORY = re.compile(r"^(pd[- ].+|public domain|(.+ )?public domain images)$")
PD_MARK_CATEGORY = re.compile(r"^(cc-pd-mark|public domain mark( \d+(\.\d+)?)?|cc-pd)$")
CC0_CATEGORY = re.compile(r"^(cc-zero|cc0.*)$")
# Categories that say the file is under a licence that is not public domain or CC0, or not
# free at all; a file carrying one next to a PD or CC0 claim is contradictory, so rejected.
NON_PD_CATEGORY = re.compile(
    r"^(cc-by.*|cc by.*|gfdl.*|gpl.*|lgpl.*|free art license.*|fal\b.*|copyrighted.*|"
    r"non-free.*|fair use.*|attribution.*|not[- ]pd.*|"
    r".*\b(non|not)[- ](public domain|in the public domain).*)$"
)
# Categories that put the file's licence in doubt: deletion and copyright-problem tracking
# ("Deletion requests May 2024", "Copyright violations", "Media without a license as of ...",
# "Files with no machine-readable license"), a licence review not yet done ("License review
# needed", "Flickr review needed"), or a category that speaks of a licence or public domain
# while hedging it ("Possibly public domain", "Public domain works in need of review").
DOUBT_CATEGORY = re.compile(
    r"^(deletion requests.*|.*copyright violations?.*|.*possible copyright.*|"
    r".*with unknown (source|author|license|licence).*|"
    r"media (without|missing) .*|.*no machine-readable (license|licence).*|"
    r".*\breview needed\b.*|"
    r"(?=.*(\bpd\b|public domain|licen[cs]e|copyright)).*\b(possibly|probably|questionable|"
    r"disputed|unclear|uncertain|doubtful|unreviewed|needing review|needs review|"
    r"in need of review)\b.*)$"
)
FALSE_VALUES = frozenset({"", "false", "0", "no"})
TAG = re.compile(r"<[^>]*>")
SPACE = re.compile(r"\s+")


def strip_markup(value: Any) -> str:
    """Return the plain text of an extmetadata value: tags removed, entities decoded, trimmed."""
    if value is None:
        return ""
    if isinstance(value, Mapping):
        # Multi-language values ({"en": ..., "de": ..., "_type": "lang"}): prefer English.
        value = value.get("en", next((v for k, v in value.items() if k != "_type"), ""))
    text = html.unescape(TAG.sub(" ", str(value)))
    return SPACE.sub(" ", text).strip()


def meta_value(extmetadata: Mapping[str, Any] | None, key: str) -> str | None:
    """Return the plain-text value of one extmetadata field, or None when it is absent."""
    if not extmetadata or key not in extmetadata:
        return None
    field = extmetadata[key]
    value = field.get("value") if isinstance(field, Mapping) else field
    return None if value is None else strip_markup(value)


def normalize_category(name: str) -> str:
    """Return a category name without the "Category:" prefix, underscores, case or markup."""
    text = strip_markup(name).replace("_", " ")
    if text.lower().startswith("category:"):
        text = text[len("category:"):]
    return SPACE.sub(" ", text).strip().casefold()


def metadata_signal(
    extmetadata: Mapping[str, Any] | None, *, allow_cc0: bool = False
) -> tuple[bool, str]:
    """Signal (a): does extmetadata say public domain (or CC0 if allowed) with no strings?"""
    if not extmetadata:
        return False, "missing metadata: no extmetadata"
    deletion = meta_value(extmetadata, "DeletionReason")
    if deletion:
        return False, f"deletion requested: {deletion[:120]}"
    nonfree = meta_value(extmetadata, "NonFree")
    if nonfree is not None and nonfree.lower() not in FALSE_VALUES:
        return False, "non-free: NonFree is set"
    restrictions = meta_value(extmetadata, "Restrictions")
    if restrictions:
        return False, f"restrictions: {restrictions.lower()}"
    attribution = meta_value(extmetadata, "AttributionRequired")
    if attribution is not None and attribution.lower() not in FALSE_VALUES:
        return False, "attribution required: AttributionRequired is true"
    license_ = meta_value(extmetadata, "License")
    if not license_:
        short = meta_value(extmetadata, "LicenseShortName")
        detail = f" (LicenseShortName {short!r})" if short else ""
        return False, f"missing metadata: no License{detail}"
    license_ = license_.lower()
    copyrighted = (meta_value(extmetadata, "Copyrighted") or "").lower()
    url = (meta_value(extmetadata, "LicenseUrl") or "").lower()
    if license_ in PD_LICENSES:
        if not copyrighted:
            return False, "missing metadata: License is pd but Copyrighted is absent"
        if copyrighted != "false":
            return False, f"contradictory metadata: License is pd but Copyrighted is {copyrighted}"
        if "creativecommons.org/licenses/" in url:
            return False, f"contradictory metadata: License is pd but LicenseUrl is {url}"
        return True, "public domain: License=pd, Copyrighted=False"
    if license_ in CC0_LICENSES:
        if not allow_cc0:
            return False, "cc0 not allowed: License is cc0 (pass --allow-cc0 to accept it)"
        if url and "publicdomain/zero" not in url:
            return False, f"contradictory metadata: License is cc0 but LicenseUrl is {url}"
        return True, "cc0: License=cc0"
    return False, f"not public domain: License={license_}"


# How a category's kind reads in a reason.
KIND_LABEL = {"pd": "public-domain", "pd mark": "public domain mark", "cc0": "cc0"}


def category_kind(name: str) -> str | None:
    """What one category says: "contradictory", "doubtful", "pd", "pd mark", "cc0" or None.

    `name` may be raw ("Category:PD-old-100") or normalised; None means it is no licence
    category (a subject, a source, "Template Unknown (author)", ...)."""
    n = normalize_category(name)
    for kind, pattern in (("contradictory", NON_PD_CATEGORY), ("doubtful", DOUBT_CATEGORY),
                          ("pd", PD_CATEGORY), ("pd mark", PD_MARK_CATEGORY),
                          ("cc0", CC0_CATEGORY)):
        if pattern.match(n):
            return kind
    return None


def _shown(categories: Iterable[str]) -> list[str]:
    """Category names as a reason shows them: plain text, without the "Category:" prefix."""
    return [s.removeprefix("Category:") for s in map(strip_markup, categories) if s]


def category_signal(categories: Iterable[str], *, allow_cc0: bool = False, prefer: str = "pd",
                    also: Iterable[str] = ()) -> tuple[bool, str]:
    """Signal (b): is the file in a public-domain licence category (CC-Zero if allowed)?

    Public domain, the Public Domain Mark and CC0 may appear together; any other licence
    (or non-free) category rejects the file as contradictory, a doubting one as doubtful.
    `prefer` ("pd" or "cc0") is the kind the reason names first (the one extmetadata named);
    `also` are further names searched only for contradictions and doubts (extmetadata's
    `Categories`, which lacks the licence categories CommonsMetadata recognised)."""
    names = _shown(categories)
    kinds = [(category_kind(n), n) for n in names]
    extra = [(category_kind(n), n) for n in _shown(also)]
    for bad, code in (("contradictory", "contradictory categories"),
                      ("doubtful", "doubtful licence")):
        hit = next((n for k, n in [*kinds, *extra] if k == bad), None)
        if hit:
            return False, f"{code}: in category {hit!r}"
    found: dict[str, str] = {}
    for kind, n in kinds:
        if kind in KIND_LABEL:
            found.setdefault(kind, n)
    order = ("cc0", "pd", "pd mark") if prefer == "cc0" else ("pd", "pd mark", "cc0")
    usable = [k for k in order if k in found and (k != "cc0" or allow_cc0)]
    if not usable:
        if "cc0" in found:
            return False, "cc0 not allowed: only a CC0 category (pass --allow-cc0 to accept it)"
        return False, "no public-domain category: none of the file's categories is a PD licence"
    main = usable[0]
    reason = f"{KIND_LABEL[main]} category {found[main]!r}"
    others = [f"{KIND_LABEL[k]} {found[k]!r}" for k in KIND_LABEL if k in found and k != main]
    if others:
        reason += f" (also {', '.join(others)})"
    return True, reason


def decide(
    extmetadata: Mapping[str, Any] | None, categories: Iterable[str], *, allow_cc0: bool = False
) -> tuple[bool, str]:
    """Accept a file only when its extmetadata and its categories both say public domain (or
    CC0, if allowed) and no category names another licence or doubts the status."""
    ok_meta, why_meta = metadata_signal(extmetadata, allow_cc0=allow_cc0)
    if not ok_meta:
        return False, why_meta
    listed = (meta_value(extmetadata, "Categories") or "").split("|")
    ok_cat, why_cat = category_signal(
        categories, allow_cc0=allow_cc0, also=listed,
        prefer="cc0" if why_meta.startswith("cc0") else "pd")
    if not ok_cat:
        return False, why_cat
    return True, f"{why_meta}; {why_cat}"


def reason_code(reason: str) -> str:
    """Return the countable part of a reason ("restrictions: personality" -> "restrictions")."""
    return reason.split(":", 1)[0].strip()


def license_name(extmetadata: Mapping[str, Any] | None) -> str:
    """Return the human licence name (LicenseShortName, else License), e.g. "Public domain"."""
    return meta_value(extmetadata, "LicenseShortName") or meta_value(extmetadata, "License") or ""


def license_url(extmetadata: Mapping[str, Any] | None) -> str:
    """Return the licence URL, defaulting to the CC Public Domain Mark for plain "pd" files."""
    url = meta_value(extmetadata, "LicenseUrl")
    if url:
        return url
    if (meta_value(extmetadata, "License") or "").lower() in PD_LICENSES:
        return "https://creativecommons.org/publicdomain/mark/1.0/"
    return ""
