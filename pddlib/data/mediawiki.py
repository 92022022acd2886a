"""The MediaWiki Action API as Commons speaks it: query parameters, paging, partial pages.

The protocol (https://www.mediawiki.org/wiki/API:Query): one request per batch of files,
generator=categorymembers (gcmtype=file, gcmlimit <= 50, because Commons renders at most 50
thumbnails per request) + prop=imageinfo|categories (iiprop=url|size|mime|sha1|extmetadata,
iiurlwidth = a standard thumbnail width); `continue` is merged back verbatim (its values are
opaque, nested iicontinue/clcontinue included) until `batchcomplete`; subcategories come from
list=categorymembers (cmtype=subcat). The functions here take the API as a callable (params ->
JSON), e.g. `Client.api`, so they know the protocol but nothing of HTTP.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

DEFAULT_API = "https://commons.wikimedia.org/w/api.php"
# Commons pre-renders these widths; other widths are refused or throttled.
STANDARD_WIDTHS = (20, 40, 60, 120, 250, 330, 500, 960, 1280, 1920, 3840)
EXTMETADATA_FIELDS = (
    "License|LicenseShortName|LicenseUrl|UsageTerms|Copyrighted|AttributionRequired|NonFree|"
    "DeletionReason|Restrictions|Artist|ObjectName"
)

Api = Callable[[dict[str, str]], dict]  # one Action API query -> its JSON answer


def file_batch_params(category: str, batch_size: int = 50, width: int = 250) -> dict[str, str]:
    """The query for one batch of a category's files with licence metadata and thumbnails."""
    return {"generator": "categorymembers", "gcmtitle": f"Category:{category}",
            "gcmtype": "file", "gcmlimit": str(batch_size),
            "prop": "imageinfo|categories", "iiprop": "url|size|mime|sha1|extmetadata",
            "iiurlwidth": str(width), "iiextmetadatafilter": EXTMETADATA_FIELDS,
            "iiextmetadatalanguage": "en", "cllimit": "max", "continue": ""}


def merge_page(into: dict, page: Mapping[str, Any]) -> None:
    """Merge one partial page of a continued query (imageinfo and categories arrive in parts)."""
    for key, value in page.items():
        if key == "categories":
            seen = {c["title"] for c in into.get("categories", [])}
            into.setdefault("categories", []).extend(c for c in value if c["title"] not in seen)
        elif key == "imageinfo":
            into.setdefault("imageinfo", value)
        else:
            into[key] = value


def file_batches(
    api: Api, category: str, batch_size: int, width: int,
    start: Mapping[str, Any] | None = None,
) -> Iterator[tuple[list[dict], dict | None]]:
    """Yield each complete batch of a category's file pages with the `continue` of the next.

    Pages come sorted by title (Commons sends them in no particular order); the `continue` is
    None after the last batch. `start` is a `continue` yielded earlier: the walk resumes there.
    The next request is sent only when the next batch is asked for.
    """
    base = file_batch_params(category, batch_size, width)
    cont = dict(start or {})
    pending: dict[str, dict] = {}
    while True:
        data = api({**base, **cont})
        for page in data.get("query", {}).get("pages", []):
            merge_page(pending.setdefault(page["title"], {"title": page["title"]}), page)
        if not data.get("batchcomplete"):
            if "continue" not in data:
                raise RuntimeError("Commons API answered neither batchcomplete nor continue")
            cont = data["continue"]  # nested iicontinue/clcontinue: same batch, more props
            continue
        after = data.get("continue")
        yield [pending[title] for title in sorted(pending)], after
        if not after:
            return
        pending, cont = {}, after


def subcategories(api: Api, category: str) -> list[str]:
    """All direct subcategories of a category (paged with cmcontinue)."""
    params = {"list": "categorymembers", "cmtitle": f"Category:{category}",
              "cmtype": "subcat", "cmlimit": "max", "continue": ""}
    names: list[str] = []
    while True:
        data = api(params)
        names += [m["title"].removeprefix("Category:")
                  for m in data.get("query", {}).get("categorymembers", [])]
        if "continue" not in data:
            return names
        params = {**params, **data["continue"]}


__all__ = [
    "DEFAULT_API", "EXTMETADATA_FIELDS", "STANDARD_WIDTHS", "Api", "file_batch_params",
    "file_batches", "merge_page", "subcategories",
]
