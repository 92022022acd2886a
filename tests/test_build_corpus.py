"""The multi-source corpus builder (scripts/build_corpus.py): its trust boundary and its honesty.

Every artefact here is a small real file fabricated in tmp_path with the real layout (a zip
wheel, an npm .tgz, a .deb from dpkg-deb); the pin table (data) is pointed at them with
monkeypatch. No function of ours is mocked.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import zipfile
from dataclasses import replace
from pathlib import Path

import build_corpus as bc
import numpy as np
import openclipart_builder as oca
import pytest
import rasterise
from PIL import Image, ImageDraw, PngImagePlugin

HAVE_DPKG = shutil.which("dpkg-deb") is not None and shutil.which("dpkg") is not None
needs_dpkg = pytest.mark.skipif(
    not HAVE_DPKG, reason="dpkg-deb/dpkg not on this machine: cannot build or unpack a .deb")

# Licence files as the real artefacts have them (verbatim excerpts, docs/corpus_sources.md).
KENNEY_LICENSE = (
    "Everything in this package is licensed CC0 (see below).\n\n------------------------------\n\n"
    "License (Creative Commons Zero, CC0)\nhttp://creativecommons.org/publicdomain/zero/1.0/\n\n"
    "You may use these graphics in personal and commercial projects.\n"
    "Credit (Kenney or www.kenney.nl) would be nice but is not mandatory.\n")
TANGO_COPYRIGHT = (
    "Files: *\nCopyright: 2005-2009 Jakub Steiner\nLicense: public-domain\n\n"
    "License: public-domain\n In the preparation of the 0.8.90 release Novell took care of\n"
    " tracking down all the contributors.\n .\n The COPYING file of the tarball states the "
    "following:\n | The icons in this repository are herefore released into the Public Domain.\n"
    " .\n")
OCA_COPYRIGHT = (
    "Copyright:\n\ncreative commons Public Domain Dedication\n\nCopyright-Only Dedication "
    "(based on United States law) or Public Domain Certification\n")
HEALTH_README = (
    "# Health Icons\n\nUse for your next commercial or personal project. You don't need to give "
    "credit and you can edit the icons however you want.\n\nHealth Icons is a volunteer effort "
    "to create a 'global good' for health projects all over the\nworld. These icons are "
    "available in the public domain for use in any type of project.\n\n## MIT License\n")
# Each licence file with its statement sentence changed (the rest kept): must be refused.
WITHOUT_STATEMENT = {
    "kenney": KENNEY_LICENSE.replace("licensed CC0 (see below)", "licensed CC-BY (see below)"),
    "tango": TANGO_COPYRIGHT.replace("herefore released into the Public Domain.",
                                     "licensed under the GPL."),
    "openclipart": OCA_COPYRIGHT.replace("creative commons Public Domain Dedication\n", ""),
    "healthicons": HEALTH_README.replace("These icons are available in the public domain for "
                                         "use in any type of project.", ""),
}

SVG_NS = 'xmlns="http://www.w3.org/2000/svg"'
PD = "http://creativecommons.org/licenses/publicdomain/"
GPL = "http://creativecommons.org/licenses/GPL/2.0/"


def clipart(license_url: str | None = PD, colour: str = "#ff0000", shape: str = "rect",
            comment: str = "") -> bytes:
    """An Open Clip Art / Tango style SVG with RDF metadata and one shape."""
    lic = f'<cc:license rdf:resource="{license_url}"/>' if license_url else ""
    body = ('<rect x="0" y="0" width="40" height="40"' if shape == "rect"
            else '<circle cx="20" cy="20" r="18"')
    return (f'<svg {SVG_NS} width="40" height="40"><metadata><rdf:RDF '
            'xmlns:cc="http://web.resource.org/cc/" xmlns:dc="http://purl.org/dc/elements/1.1/" '
            'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><cc:Work rdf:about="">'
            f"<dc:title>A shape</dc:title>{lic}</cc:Work></rdf:RDF></metadata>{comment}"
            f'{body} fill="{colour}"/></svg>').encode()


def health_svg(shape: str = "rect", extra: str = "") -> bytes:
    """A Health Icons style SVG (48 viewBox, currentColor)."""
    body = ('<rect x="8" y="8" width="32" height="20"' if shape == "rect"
            else '<circle cx="24" cy="24" r="16"')
    return (f'<svg {SVG_NS} width="48" height="48" viewBox="0 0 48 48">{extra}'
            f'{body} fill="currentColor"/></svg>').encode()


def sprite(shape: str, colour: tuple[int, int, int], dot: tuple[int, int, int] | None = None,
           note: str = "") -> bytes:
    """A 64x64 RGBA PNG sprite with one shape on transparency (a Kenney-like asset)."""
    im = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    d = ImageDraw.Draw(im)
    if shape == "rect":
        d.rectangle((12, 12, 51, 51), fill=colour + (255,))
    elif shape == "ellipse":
        d.ellipse((8, 16, 56, 48), fill=colour + (255,))
    else:
        d.polygon([(32, 6), (58, 58), (6, 58)], fill=colour + (255,))
    if dot is not None:  # a tiny perturbation inside the shape
        d.rectangle((30, 30, 31, 31), fill=dot + (255,))
    info = PngImagePlugin.PngInfo()
    if note:  # same pixels, different bytes
        info.add_text("Comment", note)
    buf = io.BytesIO()
    im.save(buf, "PNG", pnginfo=info)
    return buf.getvalue()


def write_tree(root: Path, files: dict[str, bytes | str]) -> Path:
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data.encode() if isinstance(data, str) else data)
    return root


# ------------------------------------------------------------------------- artefact makers
def make_wheel(path: Path, images: dict[str, bytes | str]) -> Path:
    """A zip wheel whose arcade/resources/assets/images/ holds `images` (plus some code)."""
    root = bc.ARTEFACTS["kenney"].root
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("arcade/__init__.py", "VERSION = '3.3.3'\n")
        z.writestr("arcade-3.3.3.dist-info/METADATA", "Name: arcade\n")
        for rel, data in images.items():
            z.writestr(f"{root}/{rel}", data)
    return path


def make_npm(path: Path, files: dict[str, bytes | str], extra: list[tarfile.TarInfo] = ()) -> Path:
    """An npm pack .tgz: `files` relative to package/ (plus raw members in `extra`)."""
    with tarfile.open(path, "w:gz") as t:
        for rel, data in files.items():
            raw = data.encode() if isinstance(data, str) else data
            info = tarfile.TarInfo(f"package/{rel}")
            info.size = len(raw)
            t.addfile(info, io.BytesIO(raw))
        for info in extra:
            t.addfile(info, io.BytesIO(b"x" * info.size) if info.isfile() else None)
    return path


def make_deb(path: Path, name: str, files: dict[str, bytes | str],
             links: dict[str, str] | None = None) -> Path:
    """A real .deb (dpkg-deb --build) holding `files` and symlinks `links` (rel -> target)."""
    src = path.parent / f"{name}-debroot"
    write_tree(src, files)
    for rel, target in (links or {}).items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, src / rel)
    (src / "DEBIAN").mkdir()
    (src / "DEBIAN/control").write_text(
        f"Package: {name}\nVersion: 1.0\nArchitecture: all\nMaintainer: T <t@example.org>\n"
        "Description: test\n")
    subprocess.run(["dpkg-deb", "-Zgzip", "-z1", "--root-owner-group", "--build", str(src),
                    str(path)], check=True, capture_output=True)
    shutil.rmtree(src)
    return path


def pin(monkeypatch, source: str, path: Path) -> bc.Artefact:
    """Point the pin table's `source` entry at `path` (its real SHA-256, size and file name)."""
    a = replace(bc.ARTEFACTS[source], file=path.name, size=path.stat().st_size,
                sha256=hashlib.sha256(path.read_bytes()).hexdigest())
    monkeypatch.setitem(bc.ARTEFACTS, source, a)
    return a


def kenney_wheel(cache: Path, licence: str = KENNEY_LICENSE) -> Path:
    cache.mkdir(parents=True, exist_ok=True)
    return make_wheel(cache / bc.ARTEFACTS["kenney"].file, {
        "License.txt": licence,
        "readme.txt": "These assets are a subset of what is available from Kenney.nl.",
        "cards/cardClubs2.png": sprite("rect", (0, 120, 0)),
        "enemies/bee.png": sprite("triangle", (230, 200, 0)),
        "tiles/a_tile.png": sprite("ellipse", (0, 0, 200)),
        "tiles/b_same_pixels.png": sprite("ellipse", (0, 0, 200), note="other bytes"),
        "tiles/c_perturbed.png": sprite("ellipse", (0, 0, 200), dot=(0, 0, 190)),
        "tiles/red_square.png": solid((255, 0, 0)),  # looks like the Open Clip Art mammal
        "items/tiny.png": small_sprite(),
        "cybercity_background/back-buildings.png": sprite("triangle", (90, 0, 90)),
        "cybercity_background/public-license.txt": "Artwork created by Luis Zuno (@ansimuz)",
        "miami_synth_parallax/layers/sun.png": sprite("ellipse", (250, 120, 0)),
        "backgrounds/instructions_0.png": sprite("rect", (10, 10, 10)),
        "newpack/thing.png": sprite("triangle", (0, 200, 200)),
    })


def solid(colour: tuple[int, int, int], side: int = 256) -> bytes:
    """An opaque square tile of one colour (like Kenney's opaque RGB tiles)."""
    buf = io.BytesIO()
    Image.new("RGB", (side, side), colour).save(buf, "PNG")
    return buf.getvalue()


def small_sprite() -> bytes:
    """A sprite whose drawing is 10 px: too small to use."""
    im = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    ImageDraw.Draw(im).rectangle((20, 20, 29, 29), fill=(200, 0, 0, 255))
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def health_npm(cache: Path, readme: str = HEALTH_README, extra=()) -> Path:
    cache.mkdir(parents=True, exist_ok=True)
    icons = "public/icons/svg/filled"
    return make_npm(cache / bc.ARTEFACTS["healthicons"].file, {
        "README.md": readme, "LICENSE": "MIT License\n", "package.json": '{"license": "MIT"}',
        "public/icons/meta-data.json": json.dumps([{"path": "people/walking", "title": "Walk"}]),
        f"{icons}/people/walking.svg": health_svg("circle"),
        f"{icons}/places/clinic.svg": health_svg("rect"),
        f"{icons}/symbols/own_licence.svg": health_svg(extra="<!-- License: CC BY 4.0 -->"),
        "public/icons/svg/outline/people/walking.svg": health_svg("circle"),  # not extracted
    }, extra)


def maki_npm(cache: Path, licence: str = "CC0 1.0 Universal\n\nStatement of Purpose\n") -> Path:
    cache.mkdir(parents=True, exist_ok=True)
    return make_npm(cache / bc.ARTEFACTS["maki"].file, {
        "LICENSE.txt": licence, "package.json": '{"license": "CC0-1.0"}',
        "icons/bicycle.svg": health_svg("circle"),
        "icons/own-licence.svg": health_svg(extra="<!-- License: CC BY 4.0 -->"),
    })


def oca_deb(cache: Path, copyright_text: str = OCA_COPYRIGHT) -> Path:
    cache.mkdir(parents=True, exist_ok=True)
    svg = "usr/share/openclipart/svg"
    return make_deb(cache / bc.ARTEFACTS["openclipart"].file, "openclipart-svg", {
        "usr/share/doc/openclipart-svg/copyright": copyright_text,
        f"{svg}/animals/mammals/red_square.svg": clipart(PD, "#ff0000"),
        f"{svg}/animals/birds/blue_disc.svg": clipart(None, "#0000ff", "circle"),
        f"{svg}/computer/hardware/8port_switch_denco.svg": clipart(GPL, "#00ff00"),
        f"{svg}/signs_and_symbols/flags/europe/uk_kernow.svg": clipart(
            PD, "#000000", comment="<!-- creativecommons.org/licenses/by/2.0/ -->"),
        f"{svg}/signs_and_symbols/flags/signalflag_kilo.svg": clipart(PD, "#ffcc00", "circle"),
        f"{svg}/shapes/stars/spiro.svg": clipart(PD, "#ff00ff", "circle"),
        f"{svg}/computer/unsorted.svg": clipart(PD, "#00ffff"),
    }, links={f"{svg}/transportation/aiga-symbols/red_link.svg": "../../animals/mammals/"
                                                                 "red_square.svg"})


def tango_deb(cache: Path, outside: Path) -> Path:
    cache.mkdir(parents=True, exist_ok=True)
    sc = "usr/share/icons/Tango/scalable"
    return make_deb(cache / bc.ARTEFACTS["tango"].file, "tango-icon-theme", {
        "usr/share/doc/tango-icon-theme/copyright": TANGO_COPYRIGHT,
        f"{sc}/actions/go-next.svg": clipart(PD, "#884400", "circle"),
        f"{sc}/devices/computer.svg": clipart(PD, "#448800"),
    }, links={f"{sc}/actions/gtk-go-forward-ltr.svg": "go-next.svg",
              f"{sc}/apps/escape.svg": str(outside)})


# ------------------------------------------------------------------------- pins and refusal
def test_pinned_artefacts_have_unique_sources_and_full_digests():
    assert tuple(bc.ARTEFACTS) == bc.SOURCE_ORDER
    for a in bc.ARTEFACTS.values():
        assert len(a.sha256) == 64 and int(a.sha256, 16) >= 0 and a.size > 0
        assert bc.STATEMENTS[a.source][1].strip()


def test_real_cached_artefacts_match_their_pins():
    cache = Path(os.environ.get("PDD_CORPUS_CACHE", "/tmp/corpus/cache"))
    if not all((cache / a.file).is_file() for a in bc.ARTEFACTS.values()):
        pytest.skip(f"the four pinned artefacts are not in {cache} (set PDD_CORPUS_CACHE)")
    for a in bc.ARTEFACTS.values():
        assert (cache / a.file).stat().st_size == a.size, a.file
        assert bc.fetch(a, cache, allow_download=False) == cache / a.file


@pytest.mark.parametrize("tamper", ["flip one byte (same size)", "append one byte",
                                    "truncate"])
def test_artefact_differing_from_its_pin_is_refused_and_nothing_extracted(
        tmp_path, monkeypatch, tamper):
    cache, work = tmp_path / "cache", tmp_path / "work"
    wheel = kenney_wheel(cache)
    a = pin(monkeypatch, "kenney", wheel)
    data = bytearray(wheel.read_bytes())
    if tamper.startswith("flip"):
        data[len(data) // 2] ^= 0xFF
    elif tamper.startswith("append"):
        data += b"\0"
    else:
        data = data[:-1]
    wheel.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="Refusing") as e:
        bc.build(cache, work, bc.Settings(min_per_class=1), False, False, ("kenney",))
    # A size change is refused before hashing; a same-size change by its SHA-256.
    assert a.file in str(e.value)
    assert (a.sha256 in str(e.value)) if tamper.startswith("flip") else (str(a.size) in str(e.value))
    assert not (work / "unpacked").exists()
    # The command line says so and writes nothing.
    out = tmp_path / "out"
    assert bc.main(["--cache", str(cache), "--work", str(work), "--out", str(out),
                    "--sources", "kenney", "--min-per-class", "1"]) == 1
    assert not out.exists() and not (work / "unpacked").exists()


def test_missing_artefact_is_refused_without_download(tmp_path, capsys):
    a = bc.ARTEFACTS["tango"]
    with pytest.raises(FileNotFoundError, match=a.file.replace("+", r"\+")):
        bc.fetch(a, tmp_path, allow_download=False)
    assert bc.main(["--cache", str(tmp_path), "--out", str(tmp_path / "out"),
                    "--sources", "tango"]) == 1
    assert a.file in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("source", ["kenney", "healthicons", "openclipart", "tango"])
def test_artefact_without_its_licence_statement_is_refused(tmp_path, monkeypatch, source):
    cache, work = tmp_path / "cache", tmp_path / "work"
    if source in ("openclipart", "tango") and not HAVE_DPKG:
        pytest.skip("dpkg-deb/dpkg not on this machine: cannot build or unpack a .deb")
    if source == "kenney":
        path = kenney_wheel(cache, WITHOUT_STATEMENT["kenney"])
    elif source == "healthicons":
        path = health_npm(cache, WITHOUT_STATEMENT["healthicons"])
    elif source == "openclipart":
        path = oca_deb(cache, WITHOUT_STATEMENT["openclipart"])
    else:
        cache.mkdir()
        path = make_deb(cache / bc.ARTEFACTS["tango"].file, "tango-icon-theme", {
            "usr/share/doc/tango-icon-theme/copyright": WITHOUT_STATEMENT["tango"],
            "usr/share/icons/Tango/scalable/devices/computer.svg": clipart()})
    pin(monkeypatch, source, path)
    rel, needle = bc.STATEMENTS[source]
    with pytest.raises(ValueError, match="re-check the licence") as e:
        bc.build(cache, work, bc.Settings(min_per_class=1), False, False, (source,))
    assert rel in str(e.value) and needle in str(e.value)


def test_statement_check_ignores_rewrapping_only(tmp_path):
    rel, needle = bc.STATEMENTS["tango"]
    rewrapped = TANGO_COPYRIGHT.replace("into the Public Domain.", "into\n the  Public\tDomain.")
    tree = write_tree(tmp_path, {rel: rewrapped})
    assert bc.check_statement("tango", tree) == rel
    (tree / rel).write_text(TANGO_COPYRIGHT.replace("Public Domain", "public domain"))
    with pytest.raises(ValueError):
        bc.check_statement("tango", tree)
    (tree / rel).unlink()
    with pytest.raises(FileNotFoundError):
        bc.check_statement("tango", tree)


@pytest.mark.parametrize("member", ["../../../../../../../escaped.svg", "link"])
def test_npm_members_cannot_escape_the_unpack_folder(tmp_path, monkeypatch, member):
    root = bc.ARTEFACTS["healthicons"].root
    if member == "link":
        info = tarfile.TarInfo(f"{root}/people/link.svg")
        info.type, info.linkname = tarfile.SYMTYPE, str(tmp_path / "escaped.svg")
    else:
        info = tarfile.TarInfo(f"{root}/{member}")
        info.size = 3
    path = health_npm(tmp_path / "cache", extra=[info])
    a = pin(monkeypatch, "healthicons", path)
    with pytest.raises(tarfile.FilterError):
        bc.extract(a, path, tmp_path / "a" / "b" / "c" / "d" / "e" / "f" / "g" / "dest")
    assert not list(tmp_path.rglob("escaped.svg"))


def test_wheel_extracts_only_the_image_tree(tmp_path, monkeypatch):
    path = kenney_wheel(tmp_path / "cache")
    with zipfile.ZipFile(path, "a") as z:
        z.writestr(f"{bc.ARTEFACTS['kenney'].root}/../../../../../../escaped.png", b"x")
    a = pin(monkeypatch, "kenney", path)
    dest = bc.extract(a, path, tmp_path / "d1" / "d2" / "d3" / "d4" / "d5" / "dest")
    assert all(p.is_relative_to(dest) for p in tmp_path.rglob("escaped.png"))
    assert not (dest / "arcade/__init__.py").exists()
    assert (dest / bc.STATEMENTS["kenney"][0]).is_file()


# ------------------------------------------------------------------------- per-file decisions
def kenney_tree(tmp_path: Path) -> Path:
    root = bc.ARTEFACTS["kenney"].root
    tree = write_tree(tmp_path / "kenney", {
        f"{root}/License.txt": KENNEY_LICENSE,
        f"{root}/cards/cardClubs2.png": sprite("rect", (0, 120, 0)),
        f"{root}/enemies/bee.png": sprite("triangle", (230, 200, 0)),
        f"{root}/animated_characters/robot/robot_idle.png": sprite("rect", (9, 9, 9)),
        f"{root}/cybercity_background/back-buildings.png": sprite("rect", (1, 1, 1)),
        f"{root}/cybercity_background/public-license.txt": "Luis Zuno",
        f"{root}/miami_synth_parallax/layers/sun.png": sprite("rect", (2, 2, 2)),
        f"{root}/backgrounds/instructions_0.png": sprite("rect", (3, 3, 3)),
        f"{root}/pinball/bumper.png": sprite("rect", (4, 4, 4)),
        f"{root}/newpack/thing.png": sprite("rect", (5, 5, 5)),
        f"{root}/cards.png": sprite("rect", (6, 6, 6)),  # loose file, not in a folder
        f"{root}/items/readme.txt": "not an image",
        f"{root}/backgrounds/abstract.jpg": b"\xff\xd8",
    })
    secret = write_tree(tmp_path / "outside", {"secret.png": sprite("rect", (7, 7, 7))})
    os.symlink(secret / "secret.png", tree / root / "items" / "secret.png")
    return tree


def test_kenney_licence_decision_per_folder(tmp_path):
    got = {c.rel: c for c in bc.candidates("kenney", kenney_tree(tmp_path))}
    assert set(got) == {"cards/cardClubs2.png", "enemies/bee.png",
                        "animated_characters/robot/robot_idle.png",
                        "cybercity_background/back-buildings.png",
                        "miami_synth_parallax/layers/sun.png", "backgrounds/instructions_0.png",
                        "pinball/bumper.png", "newpack/thing.png", "cards.png"}  # no link, no .txt
    for rel in ("cards/cardClubs2.png", "enemies/bee.png",
                "animated_characters/robot/robot_idle.png"):
        assert got[rel].accepted, rel
        assert "License.txt" in got[rel].reason and "CC0" in got[rel].reason
        assert got[rel].sha1 == hashlib.sha1(got[rel].path.read_bytes()).hexdigest()
    for rel in ("cybercity_background/back-buildings.png", "miami_synth_parallax/layers/sun.png"):
        assert not got[rel].accepted
        assert got[rel].reason.startswith("rejected: excepted: own public-license.txt")
        assert "not CC0" in got[rel].reason
    for rel in ("backgrounds/instructions_0.png", "pinball/bumper.png"):
        assert not got[rel].accepted and got[rel].reason.startswith("rejected: unstated")
    for rel in ("newpack/thing.png", "cards.png"):
        assert not got[rel].accepted
        assert got[rel].reason == "rejected: no licence decision for this folder"


def oca_tree(tmp_path: Path, source: str = "openclipart") -> Path:
    a = bc.ARTEFACTS[source]
    rel, _ = bc.STATEMENTS[source]
    tree = write_tree(tmp_path / source, {
        rel: OCA_COPYRIGHT if source == "openclipart" else TANGO_COPYRIGHT,
        f"{a.root}/animals/mammals/pd.svg": clipart(PD),
        f"{a.root}/animals/mammals/zero.svg": clipart(
            "https://creativecommons.org/publicdomain/zero/1.0/"),
        f"{a.root}/animals/mammals/none.svg": clipart(None),
        f"{a.root}/computer/hardware/8port_switch_denco.svg": clipart(GPL),
        f"{a.root}/flags/uk_kernow.svg": clipart(
            PD, comment="<!-- http://creativecommons.org/licenses/by/2.0/ -->"),
        f"{a.root}/broken.svg": b"<svg><unclosed>",
    })
    write_tree(tmp_path / "outside", {"secret.svg": clipart(PD)})
    os.symlink("../animals/mammals/pd.svg", tree / a.root / "flags" / "alias.svg")
    os.symlink(tmp_path / "outside" / "secret.svg", tree / a.root / "flags" / "escape.svg")
    return tree


@pytest.mark.parametrize("source", ["openclipart", "tango"])
def test_svg_licence_decision_reuses_the_embedded_builders_rule(tmp_path, source):
    tree = oca_tree(tmp_path, source)
    got = {c.rel: c for c in bc.candidates(source, tree)}
    assert "flags/escape.svg" not in got  # a link out of the image tree is never followed
    for c in got.values():
        if c.rel == "broken.svg":
            assert (c.accepted, c.reason) == (False, "malformed XML")
            continue
        ok, reason = oca.decide_license(oca.parse_svg_metadata(c.path.read_bytes()))
        assert c.accepted == ok, c.rel
        if not ok:
            assert c.reason.startswith(reason), c.rel
    for rel in ("computer/hardware/8port_switch_denco.svg", "flags/uk_kernow.svg"):
        assert not got[rel].accepted and got[rel].reason.startswith("rejected: svg")
    assert GPL in got["computer/hardware/8port_switch_denco.svg"].reason
    for rel in ("animals/mammals/pd.svg", "animals/mammals/zero.svg", "animals/mammals/none.svg",
                "flags/alias.svg"):
        assert got[rel].accepted, rel
        assert got[rel].reason.startswith(f"package copyright file ({bc.STATEMENTS[source][0]})")
    assert ("Files: * License: public-domain" in got["animals/mammals/pd.svg"].reason) == (
        source == "tango")
    assert got["flags/alias.svg"].reason.endswith("; symlink to animals/mammals/pd.svg")
    assert got["flags/alias.svg"].sha1 == got["animals/mammals/pd.svg"].sha1


def test_healthicons_rejects_an_icon_naming_its_own_licence(tmp_path):
    a = bc.ARTEFACTS["healthicons"]
    tree = write_tree(tmp_path, {
        "package/README.md": HEALTH_README,
        "package/public/icons/meta-data.json": json.dumps([{"path": "people/walking",
                                                            "title": "Walking"}]),
        f"{a.root}/people/walking.svg": health_svg(),
        f"{a.root}/symbols/own.svg": health_svg(extra="<!-- Licensed CC BY 4.0 -->"),
    })
    got = {c.rel: c for c in bc.candidates("healthicons", tree)}
    assert got["people/walking.svg"].accepted and got["people/walking.svg"].title == "Walking"
    assert "package/README.md" in got["people/walking.svg"].reason
    assert not got["symbols/own.svg"].accepted
    assert got["symbols/own.svg"].reason.startswith("rejected")


# ------------------------------------------------------------------------- opt-in source
def test_healthicons_is_opt_in_only(capsys):
    assert "healthicons" in bc.SOURCE_ORDER and "healthicons" not in bc.DEFAULT_SOURCES
    assert set(bc.DEFAULT_SOURCES) == {"openclipart", "tango", "kenney", "maki"}
    with pytest.raises(SystemExit) as e:
        bc.main(["--help"])
    assert e.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--sources" in text and "healthicons" in text


# ------------------------------------------------------------------------- classes, duplicates
@pytest.mark.parametrize(("source", "rel", "want"), [
    ("openclipart", "animals/mammals/bears/bear.svg", "mammal"),
    ("openclipart", "animals/mosquito_peterm_01.svg", "animal"),
    ("openclipart", "food/meats_and_eggs/fried_eggs_bw.svg", "food"),
    ("openclipart", "signs_and_symbols/flags/signalflag_kilo.svg", "flag"),
    ("openclipart", "signs_and_symbols/flags/europe/united_kingdom/uk_kernow.svg", "flag"),
    ("openclipart", "signs_and_symbols/flags/semaphore/a.svg", "person"),
    ("openclipart", "signs_and_symbols/nuage_guillaume_boitel_.svg", "sign"),
    ("openclipart", "signs_and_symbols/clocks/clock.svg", None),
    ("openclipart", "people/head11.svg", "person"),
    ("openclipart", "people/stickmen/runner.svg", "pictogram"),
    ("openclipart", "computer/icons/lemon-theme/mimetypes/txt.svg", "file icon"),
    ("openclipart", "computer/icons/flat-theme/applications/kfm.svg", "app icon"),
    ("openclipart", "computer/connectors/connector-db25.svg", "device"),
    ("openclipart", "computer/8port_switch_denco.svg", None),
    ("openclipart", "education/note.svg", "office"),
    ("openclipart", "shapes/stars/spiro.svg", None),
    ("openclipart", "special/gradients/g.svg", None),
    ("tango", "actions/go-next.svg", "arrow"),
    ("tango", "devices/computer.svg", "device"),
    ("tango", "mimetypes/text-x-generic.svg", "file icon"),
    ("tango", "apps/internet-web-browser.svg", "app icon"),
    ("kenney", "enemies/mouse.png", "mammal"),
    ("kenney", "enemies/bee.png", "animal"),
    ("kenney", "cards/cardClubs2.png", "card"),
    ("kenney", "tiles/dirt.png", "game sprite"),
    ("healthicons", "people/walking.svg", "pictogram"),
    ("healthicons", "typography/a.svg", None),
    ("maki", "bicycle.svg", "pictogram"),
])
def test_class_of_pdcorpus_map(source, rel, want):
    assert bc.class_of(source, rel, survey=False) == want


def test_class_of_embedded16_and_survey():
    assert bc.class_of("openclipart", "transportation/aiga-symbols/x.svg", False,
                       bc.EMBEDDED16) == "pictogram"
    assert bc.class_of("openclipart", "animals/birds/penguin/p.svg", False,
                       bc.EMBEDDED16) == "bird"
    assert bc.class_of("kenney", "tiles/dirt.png", False, bc.EMBEDDED16) is None
    # EMBEDDED16's Open Clip Art rules are exactly the embedded set's 16 folders.
    assert [c for c, _ in bc.EMBEDDED16] == [c for c, _ in oca.CATEGORIES]
    for (cls, rules), (_, folders) in zip(bc.EMBEDDED16, oca.CATEGORIES, strict=True):
        assert [p for s, p in rules if s == "openclipart"] == [f + "/" for f in folders], cls
    assert bc.class_of("openclipart", "computer/icons/lemon-theme/mimetypes/txt.svg",
                       True) == "openclipart:computer/icons/lemon-theme"
    assert bc.class_of("kenney", "tiles/dirt.png", True) == "kenney:tiles"
    assert bc.class_of("openclipart", "shapes/stars/spiro.svg", True) is None


def _pattern(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    im = np.full((64, 64, 3), 255, np.uint8)
    for _ in range(6):
        y, x = rng.integers(0, 48, 2)
        im[y:y + 16, x:x + 16] = rng.integers(0, 200, 3)
    return im


def test_near_duplicates_finds_copies_and_perturbations_not_others():
    a, other = _pattern(0), _pattern(1)
    nudged = a.copy()
    nudged[30:34, 30:34] = np.clip(nudged[30:34, 30:34].astype(int) + 12, 0, 255)
    images = np.stack([a, other, a.copy(), nudged])
    pairs = bc.near_duplicates(images, 0.02)
    assert pairs == [(2, 0), (3, 0)]
    assert pairs == rasterise.near_duplicates(images, 0.02)
    assert bc.near_duplicates(np.stack([a, other]), 0.02) == []


def test_near_duplicates_count_mirror_images_unless_told_not_to():
    a, other = _pattern(0), _pattern(1)
    images = np.stack([a, other, np.ascontiguousarray(a[:, ::-1])])
    assert rasterise.near_duplicates(images, 0.02) == []  # the embedded set's rule missed them
    assert bc.near_duplicates(images, 0.02) == [(2, 0)]
    assert bc.near_duplicates(images, 0.02, mirrors=False) == []


# ------------------------------------------------------------------------- end to end
def check_outputs(out: Path, sources: set[str]) -> tuple[dict, list[dict]]:
    manifest = json.loads((out / "manifest.json").read_text())
    rows = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
    assert set(manifest["artefacts"]) == sources
    for src, art in manifest["artefacts"].items():
        a = bc.ARTEFACTS[src]  # the (monkeypatched) pin the build verified
        assert (art["sha256"], art["size"], art["file"]) == (a.sha256, a.size, a.file)
    assert manifest["skipped"], "the fabricated artefacts hold files that must be skipped"
    for src, rel, why in manifest["skipped"]:
        assert src in sources and rel and why.strip(), (src, rel, why)
    assert sum(sum(d.values()) for d in manifest["skip_counts"].values()) == len(
        manifest["skipped"])
    assert rows and manifest["total"] == len(rows)
    for r in rows:
        a = bc.ARTEFACTS[r["source"]]
        assert r["version"] == a.version and r["package"] == a.name
        assert r["path"].startswith(a.root + "/") and r["license"] == a.license
        assert r["license_reason"] and not r["license_reason"].startswith("rejected")
        assert (out / r["file_name"]).is_file()
    with np.load(out / bc.NPZ) as z:
        assert z["images"].shape == (len(rows), 64, 64, 3) and len(z["labels"]) == len(rows)
    return manifest, rows


def test_build_end_to_end_opt_in_healthicons_with_kenney(tmp_path, monkeypatch):
    pytest.importorskip("cairosvg")
    cache, out = tmp_path / "cache", tmp_path / "out"
    pin(monkeypatch, "kenney", kenney_wheel(cache))
    pin(monkeypatch, "healthicons", health_npm(cache))
    assert bc.main(["--cache", str(cache), "--work", str(tmp_path / "work"), "--out", str(out),
                    "--sources", "kenney,healthicons", "--min-per-class", "1"]) == 0
    manifest, rows = check_outputs(out, {"kenney", "healthicons"})
    kept = {(r["source"], r["path"].removeprefix(bc.ARTEFACTS[r["source"]].root + "/"))
            for r in rows}
    skipped = {(s, rel): why for s, rel, why in manifest["skipped"]}
    assert ("healthicons", "people/walking.svg") in kept
    assert skipped[("healthicons", "symbols/own_licence.svg")].startswith("rejected")
    assert skipped[("kenney", "cybercity_background/back-buildings.png")].startswith(
        "rejected: excepted")
    assert skipped[("kenney", "miami_synth_parallax/layers/sun.png")].startswith(
        "rejected: excepted")
    assert skipped[("kenney", "backgrounds/instructions_0.png")].startswith("rejected: unstated")
    assert skipped[("kenney", "newpack/thing.png")] == (
        "rejected: no licence decision for this folder")
    assert skipped[("kenney", "items/tiny.png")].startswith("too small")
    assert skipped[("kenney", "tiles/b_same_pixels.png")] == (
        "exact duplicate image of kenney:tiles/a_tile.png")
    assert skipped[("kenney", "tiles/c_perturbed.png")] == (
        "near duplicate of kenney:tiles/a_tile.png")
    assert ("kenney", "tiles/a_tile.png") in kept and ("kenney", "cards/cardClubs2.png") in kept
    assert not any("outline" in r["path"] for r in rows)
    by_class = {r["label"] for r in rows}
    assert {"card", "animal", "game sprite", "pictogram"} <= by_class


@needs_dpkg
def test_build_end_to_end_default_sources(tmp_path, monkeypatch):
    pytest.importorskip("cairosvg")
    cache, out = tmp_path / "cache", tmp_path / "out"
    outside = write_tree(tmp_path / "elsewhere", {"outside.svg": clipart(PD, "#123456")})
    pin(monkeypatch, "openclipart", oca_deb(cache))
    pin(monkeypatch, "tango", tango_deb(cache, outside / "outside.svg"))
    pin(monkeypatch, "kenney", kenney_wheel(cache))
    pin(monkeypatch, "maki", maki_npm(cache))
    # No healthicons artefact in the cache: the default build never asks for it.
    assert bc.main(["--cache", str(cache), "--work", str(tmp_path / "work"), "--out", str(out),
                    "--min-per-class", "1"]) == 0
    manifest, rows = check_outputs(out, {"openclipart", "tango", "kenney", "maki"})
    kept = {(r["source"], r["path"].removeprefix(bc.ARTEFACTS[r["source"]].root + "/")): r
            for r in rows}
    skipped = {(s, rel): why for s, rel, why in manifest["skipped"]}
    assert skipped[("openclipart", "computer/hardware/8port_switch_denco.svg")].startswith(
        f"rejected: svg cc:license declares {GPL}")
    assert skipped[("openclipart", "signs_and_symbols/flags/europe/uk_kernow.svg")].startswith(
        "rejected: svg text names licence")
    assert skipped[("openclipart", "shapes/stars/spiro.svg")] == "folder not used"
    assert skipped[("openclipart", "computer/unsorted.svg")] == "folder not used"
    # Same bytes behind a symlink: an exact (SHA-1) duplicate; the earlier source/class wins.
    assert skipped[("openclipart", "transportation/aiga-symbols/red_link.svg")].startswith(
        "duplicate file (same SHA-1) of openclipart:animals/mammals/red_square.svg")
    assert skipped[("tango", "actions/gtk-go-forward-ltr.svg")].startswith("duplicate file")
    # Across sources, Open Clip Art's image wins over Kenney's identical-looking sprite.
    assert skipped[("kenney", "tiles/red_square.png")].endswith(
        "of openclipart:animals/mammals/red_square.svg")
    assert not any("escape" in rel for _, rel in kept)
    assert not any(r["sha1"] == hashlib.sha1((outside / "outside.svg").read_bytes()).hexdigest()
                   for r in rows)
    assert kept[("openclipart", "animals/mammals/red_square.svg")]["label"] == "mammal"
    assert kept[("openclipart", "animals/birds/blue_disc.svg")]["label"] == "animal"
    assert kept[("tango", "actions/go-next.svg")]["label"] == "arrow"
    assert kept[("tango", "devices/computer.svg")]["label"] == "device"
    assert kept[("kenney", "cards/cardClubs2.png")]["label"] == "card"
    assert kept[("maki", "bicycle.svg")]["label"] == "pictogram"
    assert "LICENSE.txt" in kept[("maki", "bicycle.svg")]["license_reason"]
    assert skipped[("maki", "own-licence.svg")].startswith("rejected")
    assert manifest["totals_by_source"].keys() == {"openclipart", "tango", "kenney", "maki"}
    sheet = (out / "DATASHEET.md").read_text()
    assert "## Known biases and limits" in sheet and "maki" in sheet and "mirror" in sheet
