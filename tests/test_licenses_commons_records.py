"""The licence decision on file pages shaped as the Commons API returns them.

Each record is one page of `prop=imageinfo|categories` (formatversion=2): `imageinfo[0]`'s
`extmetadata` as CommonsMetadata writes it ({"value", "source", "hidden"} per field, licence
fields from the file page's templates, `License` from the highest-priority licence template:
public domain before any CC licence; `Categories` a |-separated string from which
CommonsMetadata has removed the categories it reads as a licence, "CC-BY-SA-4.0" or "Public
domain" among them), and the page's own `categories` ({"ns": 14, "title": "Category:..."},
hidden licence categories included). The titles, people and subjects are made up; the field
values, category names and their combinations are those Commons uses.
"""

from __future__ import annotations

import pytest

from pddlib.data import licenses
from pddlib.data.candidates import screen
from pddlib.data.licenses import category_kind, decide, reason_code

SHA1 = "0a4d55a8d778e5022fab701977c5d840bbc486d0"


def field(value, source: str = "commons-desc-page") -> dict:
    return {"value": value, "source": source, "hidden": ""}


def extmetadata(*, categories: str, **licence: str) -> dict:
    """A full extmetadata block: file fields, `Categories`, then the licence fields."""
    meta = {
        "DateTime": field("2019-05-14 09:31:02", "mediawiki-metadata"),
        "ObjectName": field("Engraving", "mediawiki-metadata"),
        "CommonsMetadataExtension": field(1.2, "extension"),
        "Categories": field(categories, "commons-categories"),
        "Assessments": field("", "commons-categories"),
        "ImageDescription": field('<p>An engraving, <i>c.</i>&nbsp;1804.</p>'),
        "DateTimeOriginal": field("1804"),
        "Credit": field('<a href="https://archive.org/details/x">Internet Archive</a>'),
        "Artist": field('<div class="fn value"><span lang="en">Unknown author</span></div>'),
    }
    meta.update({k: field(v, "commons-templates" if k == "License" else "commons-desc-page")
                 for k, v in licence.items()})
    return meta


def page(title: str, meta: dict, categories: list[str]) -> dict:
    """One file page as `prop=imageinfo|categories` returns it (formatversion=2)."""
    name = title.removeprefix("File:").replace(" ", "_")
    return {
        "pageid": 98765432, "ns": 6, "title": title,
        "categories": [{"ns": 14, "title": f"Category:{c}"} for c in sorted(categories)],
        "imageinfo": [{
            "size": 184321, "width": 1200, "height": 900, "sha1": SHA1, "mime": "image/jpeg",
            "thumburl": f"https://upload.wikimedia.org/wikipedia/commons/thumb/a/ab/{name}/"
                        f"250px-{name}",
            "thumbwidth": 250, "thumbheight": 188,
            "url": f"https://upload.wikimedia.org/wikipedia/commons/a/ab/{name}",
            "descriptionurl": f"https://commons.wikimedia.org/wiki/File:{name}",
            "extmetadata": meta,
        }],
    }


# {{PD-old-100}} (or {{PD-old-70}}) as Commons renders it now: public domain, shown with the
# Public Domain Mark.
PD_TERMS = dict(LicenseShortName="Public domain", UsageTerms="Public domain",
                AttributionRequired="false", Copyrighted="False", Restrictions="",
                LicenseUrl="https://creativecommons.org/publicdomain/mark/1.0/", License="pd")
CC0_TERMS = dict(LicenseShortName="CC0", UsageTerms="Creative Commons Zero, Public Domain "
                 "Dedication", AttributionRequired="false", Copyrighted="True", Restrictions="",
                 LicenseUrl="http://creativecommons.org/publicdomain/zero/1.0/deed.en",
                 License="cc0")
LONG_PD = "Author died more than 100 years ago public domain images"


def record(cats: list[str], *, listed: list[str] | None = None, **terms: str) -> dict:
    """A page whose extmetadata `Categories` is `listed` (default: `cats` less the licence
    categories CommonsMetadata recognises, as it writes them)."""
    if listed is None:
        listed = [c for c in cats if c.lower() not in ("public domain", "cc0")
                  and not c.lower().startswith(("cc-by", "gfdl"))]
    return page("File:Old engraving.jpg", extmetadata(categories="|".join(listed), **terms),
                cats)


def run(rec: dict, *, allow_cc0: bool = False) -> tuple[bool, str]:
    """The decision exactly as the scraper makes it (`candidates.screen`)."""
    cand, refusal = screen(rec, "Engravings", allow_cc0=allow_cc0, max_pixels=40_000_000)
    if refusal is None:
        return True, cand.license_reason
    assert refusal[0] == "rejected", refusal
    return False, refusal[1]


# ---------------------------------------------------------------- accepted: PD signals agreeing
ACCEPTED = [
    # The file that was rejected as "contradictory": its PD status only in the long form, with
    # the Public Domain Mark and an uploader's CC0 beside it.
    ("long-form-pd-with-cc0-and-pd-mark",
     [LONG_PD, "CC-PD-Mark", "CC-Zero", "Ghosts in art", "Template Unknown (author)"],
     PD_TERMS, "public-domain category " + repr(LONG_PD)),
    ("long-form-70-with-pd-us",
     ["Author died more than 70 years ago public domain images", "CC-PD-Mark", "PD US",
      "Engravings of Istanbul", "Template Unknown (author)"],
     PD_TERMS, "public-domain category 'Author died more than 70 years ago public domain "
               "images'"),
    ("pd-art-short-and-long-form",  # the first in the API's (alphabetical) order is named
     ["PD-Art (PD-old-100)", LONG_PD, "PD US expired", "Landscape paintings"],
     PD_TERMS, "public-domain category " + repr(LONG_PD)),
    ("pd-self-with-cc0",  # {{PD-self}} + {{cc-zero}}: License=pd wins CommonsMetadata's priority
     ["PD-self", "CC-Zero", "Self-published work", "Line drawings of cats"],
     dict(PD_TERMS, LicenseUrl=""), "public-domain category 'PD-self'"),
    ("only-the-pd-mark", ["CC-PD-Mark", "Woodcuts"], PD_TERMS,
     "public domain mark category 'CC-PD-Mark'"),
]


@pytest.mark.parametrize("allow_cc0", [False, True], ids=["pd-only", "allow-cc0"])
@pytest.mark.parametrize("name,cats,terms,names", ACCEPTED, ids=[a[0] for a in ACCEPTED])
def test_public_domain_with_agreeing_signals_is_accepted(name, cats, terms, names,
                                                          allow_cc0) -> None:
    ok, reason = run(record(cats, **terms), allow_cc0=allow_cc0)
    assert ok, reason
    assert reason_code(reason) == "public domain" and names in reason, reason


def test_the_reported_file_names_all_three_signals() -> None:
    ok, reason = run(record(ACCEPTED[0][1], **PD_TERMS))
    assert ok and reason == (
        "public domain: License=pd, Copyrighted=False; public-domain category "
        f"{LONG_PD!r} (also public domain mark 'CC-PD-Mark', cc0 'CC-Zero')")


def test_cc0_file_with_public_domain_categories_too() -> None:
    rec = record(["CC-Zero", "CC-PD-Mark", "Public domain", "Icons"], **CC0_TERMS)
    assert run(rec, allow_cc0=True) == (True, (
        "cc0: License=cc0; cc0 category 'CC-Zero' (also public-domain 'Public domain', "
        "public domain mark 'CC-PD-Mark')"))
    ok, reason = run(rec)  # CC0 stays off unless asked for, whatever else the page says
    assert not ok and reason_code(reason) == "cc0 not allowed"


# ------------------------------------------------- rejected: contradictions, non-free, doubt
REJECTED = [
    # A photograph of a PD painting with the photographer's CC BY-SA: License=pd (public
    # domain has CommonsMetadata's priority) and extmetadata's Categories has lost CC-BY-SA-4.0.
    ("pd-art-photo-under-cc-by-sa",
     [LONG_PD, "CC-BY-SA-4.0", "Self-published work", "Paintings in the Louvre"], PD_TERMS,
     "contradictory categories: in category 'CC-BY-SA-4.0'"),
    ("pd-with-gfdl-and-cc-by-sa-all",
     ["GFDL", "CC-BY-SA-3.0,2.5,2.0,1.0", "License migration redundant", "PD-old-70",
      "CC-Zero"], PD_TERMS, "contradictory categories: in category 'CC-BY-SA-3.0,2.5,2.0,1.0'"),
    ("pd-with-cc-by", [LONG_PD, "CC-PD-Mark", "CC-BY-4.0"], PD_TERMS,
     "contradictory categories: in category 'CC-BY-4.0'"),
    ("pd-in-source-country-not-in-us", ["PD-old-70", "Not-PD-US-URAA", "Posters"], PD_TERMS,
     "contradictory categories: in category 'Not-PD-US-URAA'"),
    ("copyrighted-free-use-beside-pd", ["PD-self", "Copyrighted free use"], PD_TERMS,
     "contradictory categories: in category 'Copyrighted free use'"),
    ("cc-by-sa-file-in-a-long-form-category",
     [LONG_PD, "CC-BY-SA-4.0"],
     dict(LicenseShortName="CC BY-SA 4.0", UsageTerms="Creative Commons Attribution-Share "
          "Alike 4.0", AttributionRequired="true", Copyrighted="True",
          LicenseUrl="https://creativecommons.org/licenses/by-sa/4.0", License="cc-by-sa-4.0"),
     "attribution required: AttributionRequired is true"),
    ("non-free-logo",
     ["Non-free logos", "CC-PD-Mark"],
     dict(LicenseShortName="Fair use", NonFree="true", UsageTerms="Fair use", License=""),
     "non-free: NonFree is set"),
    ("deletion-requested",
     [LONG_PD, "CC-PD-Mark", "Deletion requests May 2024"], PD_TERMS,
     "doubtful licence: in category 'Deletion requests May 2024'"),
    ("no-machine-readable-license", ["Files with no machine-readable license", LONG_PD],
     PD_TERMS, "doubtful licence: in category 'Files with no machine-readable license'"),
    ("media-without-a-license",
     ["Media without a license as of 12 May 2024", "PD-old-100"], PD_TERMS,
     "doubtful licence: in category 'Media without a license as of 12 May 2024'"),
    ("license-review-needed", ["License review needed", "PD-USGov"], PD_TERMS,
     "doubtful licence: in category 'License review needed'"),
    ("copyright-violations", ["Copyright violations", "PD-self"], PD_TERMS,
     "doubtful licence: in category 'Copyright violations'"),
    ("pd-in-need-of-review", ["Public domain works in need of review", "CC-PD-Mark"], PD_TERMS,
     "doubtful licence: in category 'Public domain works in need of review'"),
    ("possibly-public-domain", ["Possibly public domain", "CC-Zero"], PD_TERMS,
     "doubtful licence: in category 'Possibly public domain'"),
    # Categories that mention public domain without being a licence are no PD signal.
    ("only-a-subject-about-public-domain", ["Public Domain Day", "The Public Domain Review"],
     PD_TERMS, "no public-domain category"),
]


@pytest.mark.parametrize("allow_cc0", [False, True], ids=["pd-only", "allow-cc0"])
@pytest.mark.parametrize("name,cats,terms,want", REJECTED, ids=[r[0] for r in REJECTED])
def test_contradictions_non_free_and_doubt_are_rejected(name, cats, terms, want,
                                                        allow_cc0) -> None:
    ok, reason = run(record(cats, **terms), allow_cc0=allow_cc0)
    assert not ok
    assert reason == want or (reason_code(reason) == want and ":" not in want), reason


def test_extmetadata_categories_find_contradictions_but_never_accept() -> None:
    # A conflict listed only in extmetadata's Categories (the page's list came back short)...
    rec = record(["PD-old-100"], listed=["PD-old-100", "Attribution only license"], **PD_TERMS)
    assert run(rec) == (False, "contradictory categories: in category 'Attribution only license'")
    # ...but PD names there are not the category signal: CommonsMetadata drops CC licence
    # categories from that field, so it cannot show that nothing contradicts them.
    rec = record([], listed=[LONG_PD, "CC-PD-Mark"], **PD_TERMS)
    ok, reason = run(rec)
    assert not ok and reason_code(reason) == "no public-domain category"


def test_no_non_free_or_non_pd_record_is_ever_accepted() -> None:
    """Every record that carries another licence, a non-free tag or a doubt is rejected,
    whichever free signals sit beside it and whether CC0 is allowed."""
    free = [LONG_PD, "CC-PD-Mark", "CC-Zero", "PD-old-100", "Public domain"]
    bad = ["CC-BY-SA-4.0", "CC-BY-4.0", "GFDL", "FAL", "GPL", "Non-free logos", "Fair use images",
           "Not-PD-US-URAA", "Copyright violations", "Deletion requests June 2024",
           "Media missing permission as of 3 June 2024", "Possibly public domain",
           "Attribution only license", "Copyrighted free use"]
    for b in bad:
        for allow_cc0 in (False, True):
            for terms in (PD_TERMS, CC0_TERMS):
                ok, reason = run(record([*free, b], **terms), allow_cc0=allow_cc0)
                assert not ok, (b, reason)
                # It names the category, unless a CC0 file is already out with CC0 not allowed.
                assert b in reason or reason_code(reason) == "cc0 not allowed", (b, reason)


@pytest.mark.parametrize("name,kind", [
    ("Author died more than 100 years ago public domain images", "pd"),
    ("Author died more than 70 years ago public domain images", "pd"),
    ("Category:Author_died_more_than_80_years_ago_public_domain_images", "pd"),
    ("Public domain images", "pd"),
    ("Public domain", "pd"),
    ("PD-old-100", "pd"), ("PD-old-100-expired", "pd"), ("PD-US-expired", "pd"),
    ("PD US expired", "pd"), ("PD Old", "pd"), ("PD-Art (PD-old-100)", "pd"),
    ("PD-Art (PD-old default)", "pd"), ("PD ineligible", "pd"), ("PD-self", "pd"),
    ("PD US no notice", "pd"), ("PD US not renewed", "pd"), ("PD-USGov-NASA", "pd"),
    ("CC-PD-Mark", "pd mark"), ("Public Domain Mark 1.0", "pd mark"),
    ("CC-Zero", "cc0"), ("CC0", "cc0"),
    ("CC-BY-SA-4.0", "contradictory"), ("CC-BY-SA-3.0,2.5,2.0,1.0", "contradictory"),
    ("GFDL", "contradictory"), ("Not-PD-US-URAA", "contradictory"),
    ("Non-public domain images", "contradictory"), ("Non-free logos", "contradictory"),
    ("Public domain works in need of review", "doubtful"),
    ("Possibly public domain", "doubtful"), ("Possibly public domain images", "doubtful"),
    ("Files with no machine-readable license", "doubtful"),
    ("Copyright violations", "doubtful"), ("Deletion requests May 2024", "doubtful"),
    ("Media without a source as of 3 June 2024", "doubtful"),
    ("License review needed", "doubtful"), ("Flickr review needed", "doubtful"),
    ("Files with unknown source", "doubtful"),
    ("Template Unknown (author)", None), ("Self-published work", None),
    ("Public Domain Day", None), ("The Public Domain Review", None),
    ("Flickr images reviewed by FlickreviewR 2", None), ("Possibly Rembrandt", None),
    ("Ghosts in art", None),
])
def test_how_each_category_reads(name, kind) -> None:
    assert category_kind(name) == kind


def test_reasons_stay_readable() -> None:
    ok, reason = decide(record(ACCEPTED[0][1], **PD_TERMS)["imageinfo"][0]["extmetadata"],
                        [f"Category:{c}" for c in ACCEPTED[0][1]])
    assert ok and "Category:" not in reason and "<" not in reason
    assert licenses.reason_code(reason) == "public domain"
