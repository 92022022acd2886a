"""Licence decisions: only public domain (and CC0 when allowed), both signals agreeing."""

from __future__ import annotations

import pytest

from pddlib.data.licenses import (
    category_signal,
    decide,
    license_url,
    metadata_signal,
    normalize_category,
    reason_code,
    strip_markup,
)

PD = {"License": "pd", "LicenseShortName": "Public domain", "Copyrighted": "False",
      "AttributionRequired": "false", "Restrictions": "", "UsageTerms": "Public domain"}
CC0 = {"License": "cc0", "LicenseShortName": "CC0", "Copyrighted": "True",
       "AttributionRequired": "false",
       "LicenseUrl": "http://creativecommons.org/publicdomain/zero/1.0/deed.en"}
PD_CATS = ["Category:PD-Art (PD-old-100)", "Category:Landscape paintings"]


def ext(fields: dict) -> dict:
    """Wrap plain values the way the API returns extmetadata."""
    return {k: {"value": v, "source": "commons-desc-page"} for k, v in fields.items()}


CASES = [
    # (id, extmetadata fields, categories, allow_cc0, accepted, reason code)
    ("pd", PD, PD_CATS, False, True, "public domain"),
    ("pd-html-and-case", {**PD, "License": "<span>PD</span>", "Copyrighted": " FALSE "},
     ["Category:pd-old-100"], False, True, "public domain"),
    ("pd-without-pd-category", PD, ["Category:Landscape paintings"], False, False,
     "no public-domain category"),
    ("pd-no-categories", PD, [], False, False, "no public-domain category"),
    ("cc0-not-allowed", CC0, ["Category:CC-Zero"], False, False, "cc0 not allowed"),
    ("cc0-allowed", CC0, ["Category:CC-Zero"], True, True, "cc0"),
    # CC0 and public domain both reserve no right: together they agree, whichever is named.
    ("cc0-allowed-and-only-pd-category", CC0, PD_CATS, True, True, "cc0"),
    ("cc0-not-allowed-and-only-pd-category", CC0, PD_CATS, False, False, "cc0 not allowed"),
    ("pd-and-only-cc0-category-allowed", PD, ["Category:CC-Zero"], True, True, "public domain"),
    ("pd-and-only-cc0-category", PD, ["Category:CC-Zero"], False, False, "cc0 not allowed"),
    ("pd-cc0-and-pd-mark", PD, [*PD_CATS, "Category:CC-Zero", "Category:CC-PD-Mark"], False,
     True, "public domain"),
    ("pd-long-form-category", PD,
     ["Category:Author died more than 100 years ago public domain images"], False, True,
     "public domain"),
    ("pd-only-pd-mark-category", PD, ["Category:CC-PD-Mark"], False, True, "public domain"),
    ("cc-by-in-pd-category",
     {"License": "cc-by-4.0", "LicenseShortName": "CC BY 4.0", "Copyrighted": "True",
      "AttributionRequired": "false"}, PD_CATS, True, False, "not public domain"),
    ("attribution-required", {**PD, "AttributionRequired": "true"}, PD_CATS, False, False,
     "attribution required"),
    ("attribution-required-markup", {**PD, "AttributionRequired": "<b>True</b>"}, PD_CATS,
     False, False, "attribution required"),
    ("non-free", {**PD, "NonFree": "true"}, PD_CATS, False, False, "non-free"),
    ("deletion-reason", {**PD, "DeletionReason": "Copyright violation"}, PD_CATS, False, False,
     "deletion requested"),
    ("personality-rights", {**PD, "Restrictions": "personality"}, PD_CATS, False, False,
     "restrictions"),
    ("trademark-and-insignia", {**PD, "Restrictions": "trademarked|insignia"}, PD_CATS, False,
     False, "restrictions"),
    ("missing-license", {"Artist": "Anon"}, PD_CATS, False, False, "missing metadata"),
    ("missing-copyrighted", {"License": "pd"}, PD_CATS, False, False, "missing metadata"),
    ("empty-metadata", {}, PD_CATS, False, False, "missing metadata"),
    ("pd-but-copyrighted", {**PD, "Copyrighted": "True"}, PD_CATS, False, False,
     "contradictory metadata"),
    ("pd-with-cc-url", {**PD, "LicenseUrl": "https://creativecommons.org/licenses/by/4.0"},
     PD_CATS, False, False, "contradictory metadata"),
    ("pd-and-cc-by-category", PD, [*PD_CATS, "Category:CC-BY-SA-4.0"], False, False,
     "contradictory categories"),
    ("pd-and-gfdl-category", PD, [*PD_CATS, "Category:GFDL"], False, False,
     "contradictory categories"),
    ("pd-and-not-pd-us", PD, [*PD_CATS, "Category:Not-PD-US-URAA"], False, False,
     "contradictory categories"),
    ("pd-and-deletion-category", PD, [*PD_CATS, "Category:Deletion requests May 2024"], False,
     False, "doubtful licence"),
    ("pd-and-possibly-pd-category", PD, [*PD_CATS, "Category:Possibly public domain"], False,
     False, "doubtful licence"),
]


@pytest.mark.parametrize("name,fields,cats,allow_cc0,accepted,code", CASES,
                         ids=[c[0] for c in CASES])
def test_decide(name, fields, cats, allow_cc0, accepted, code) -> None:
    ok, reason = decide(ext(fields), cats, allow_cc0=allow_cc0)
    assert ok is accepted, reason
    assert reason_code(reason) == code, reason


def test_no_extmetadata_at_all() -> None:
    assert decide(None, PD_CATS) == (False, "missing metadata: no extmetadata")


def test_each_signal_alone_is_not_enough() -> None:
    assert metadata_signal(ext(PD))[0] and not decide(ext(PD), [])[0]
    assert category_signal(PD_CATS)[0] and not decide(ext({"License": "cc-by-4.0"}), PD_CATS)[0]


def test_reasons_name_what_was_seen() -> None:
    assert decide(ext({**PD, "Restrictions": "Personality"}), PD_CATS)[1] == \
        "restrictions: personality"
    assert decide(ext(PD), PD_CATS)[1] == (
        "public domain: License=pd, Copyrighted=False; "
        "public-domain category 'PD-Art (PD-old-100)'")


def test_reasons_name_every_agreeing_category() -> None:
    cats = ["Category:Author died more than 100 years ago public domain images",
            "Category:CC-PD-Mark", "Category:CC-Zero", "Category:Ghosts in art"]
    assert decide(ext(PD), cats) == (True, (
        "public domain: License=pd, Copyrighted=False; public-domain category "
        "'Author died more than 100 years ago public domain images' "
        "(also public domain mark 'CC-PD-Mark', cc0 'CC-Zero')"))
    assert decide(ext(CC0), ["Category:PD-self", "Category:CC-Zero"], allow_cc0=True)[1] == (
        "cc0: License=cc0; cc0 category 'CC-Zero' (also public-domain 'PD-self')")
    assert decide(ext(PD), [*PD_CATS, "Category:CC-BY-SA-4.0"])[1] == (
        "contradictory categories: in category 'CC-BY-SA-4.0'")


def test_markup_and_names() -> None:
    assert strip_markup('<a href="x">Jan&nbsp;van <i>Eyck</i></a>\n') == "Jan van Eyck"
    assert strip_markup({"en": "<b>Yes</b>", "de": "Ja", "_type": "lang"}) == "Yes"
    assert normalize_category("Category:PD-Art_(PD-old-100)") == "pd-art (pd-old-100)"
    assert license_url(ext(PD)) == "https://creativecommons.org/publicdomain/mark/1.0/"
    assert license_url(ext(CC0)).startswith("http://creativecommons.org/publicdomain/zero/")
