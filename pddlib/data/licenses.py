"""Licence decisions for Wikimedia Commons files: pure functions returning (accepted, reason).

Commons describes each file's licence twice, and we only accept a file when both agree:
  (a) `extmetadata` (extension CommonsMetadata), parsed from the licence templates on the file
      page: `License` ("pd", "cc0", "cc-by-sa-4.0", ...), `Copyrighted` ("False" only when the
      template's usage terms are "Public domain"), `AttributionRequired`, `NonFree`,
      `DeletionReason`, `Restrictions` ("personality|trademarked|...");
  (b) the file's categories, which licence templates add (e.g. "PD-Art (PD-old-100)", "CC-Zero").
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
# Licence-template categories that say "public domain" (normalised: lower case, spaces).
PD_CATEGORY = re.compile(r"^(pd[- ].+|public domain)$")
CC0_CATEGORY = re.compile(r"^(cc-zero|cc0.*)$")
# Categories that say the file is under a licence that is not public domain; a file carrying
# one of them next to a PD template is contradictory, so it is rejected.
NON_PD_CATEGORY = re.compile(
    r"^(cc-by.*|cc by.*|gfdl.*|gpl.*|lgpl.*|free art license.*|fal\b.*|copyrighted.*|"
    r"non-free.*|fair use.*|attribution.*|.*copyright violations?.*|"
    r"deletion requests.*|.*possible copyright.*|.*with unknown (source|author|license).*)$"
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


def category_signal(categories: Iterable[str], *, allow_cc0: bool = False) -> tuple[bool, str]:
    """Signal (b): is the file in a public-domain licence category (CC-Zero if allowed)?"""
    names = [(normalize_category(c), strip_markup(c).removeprefix("Category:")) for c in categories]
    conflict = next((orig for n, orig in names if NON_PD_CATEGORY.match(n)), None)
    if conflict:
        return False, f"contradictory categories: in category {conflict!r}"
    pd = next((orig for n, orig in names if PD_CATEGORY.match(n)), None)
    if pd:
        return True, f"public-domain category {pd!r}"
    cc0 = next((orig for n, orig in names if CC0_CATEGORY.match(n)), None)
    if cc0 and allow_cc0:
        return True, f"cc0 category {cc0!r}"
    if cc0:
        return False, "cc0 not allowed: only a CC0 category (pass --allow-cc0 to accept it)"
    return False, "no public-domain category: none of the file's categories is a PD licence"


def decide(
    extmetadata: Mapping[str, Any] | None, categories: Iterable[str], *, allow_cc0: bool = False
) -> tuple[bool, str]:
    """Accept a file only when its extmetadata and its categories both say public domain."""
    ok_meta, why_meta = metadata_signal(extmetadata, allow_cc0=allow_cc0)
    if not ok_meta:
        return False, why_meta
    ok_cat, why_cat = category_signal(categories, allow_cc0=allow_cc0)
    if not ok_cat:
        return False, why_cat
    if why_meta.startswith("cc0") != why_cat.startswith("cc0"):
        # e.g. License=cc0 but only a PD-old category: the two signals name different licences.
        return False, f"contradictory metadata: {why_meta} but {why_cat}"
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
