"""The embedded public-domain clip-art set and the pure pieces of its builder."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import openclipart_builder as builder
import pytest
import rasterise
from PIL import Image

from pddlib.data import embedded as sets
from pddlib.data import load_images

ROOT = Path(__file__).resolve().parents[1]
SVG_NS = 'xmlns="http://www.w3.org/2000/svg"'
RDF_HEAD = (
    '<metadata><rdf:RDF xmlns:cc="http://web.resource.org/cc/" '
    'xmlns:dc="http://purl.org/dc/elements/1.1/" '
    'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><cc:Work rdf:about="">'
)


def clipart(license_url: str | None, title: str = "An Apple", author: str | None = "Jo") -> bytes:
    """A minimal Open Clip Art style SVG with RDF metadata."""
    creator = (f"<dc:creator><cc:Agent><dc:title>{author}</dc:title></cc:Agent></dc:creator>"
               if author else "")
    lic = f'<cc:license rdf:resource="{license_url}"/>' if license_url is not None else ""
    return (f'<svg {SVG_NS} width="10" height="10">{RDF_HEAD}<dc:title>{title}</dc:title>'
            f"{creator}{lic}</cc:Work></rdf:RDF></metadata>"
            '<rect width="10" height="10" fill="red"/></svg>').encode()


# --- the embedded dataset -------------------------------------------------------------------

@pytest.fixture(scope="module")
def embedded():
    """(images, labels, meta) straight from the committed .npz."""
    return sets.read_arrays()


@pytest.fixture(scope="module")
def dataset():
    """The embedded set through the public loader."""
    return load_images("openclipart")


def test_embedded_arrays_are_64px_rgb_and_balanced(embedded):
    images, labels, meta = embedded
    assert images.dtype == np.uint8 and images.shape[1:] == (64, 64, 3)
    assert len(images) == len(labels) == len(meta["records"]) >= 800
    counts = np.bincount(labels, minlength=len(meta["class_names"]))
    assert len(meta["class_names"]) >= 10 and counts.min() >= 30
    # Drawings on white: the outermost pixel ring is white (the padding margin), and every image
    # has some ink.
    border = np.concatenate([images[:, 0], images[:, -1], images[:, :, 0], images[:, :, -1]], 1)
    assert border.min() >= 245
    assert (images.reshape(len(images), -1) < 250).any(axis=1).all()


def test_embedded_build_provenance(embedded):
    _, _, meta = embedded
    build = meta["build"]
    assert build["package"] == builder.PACKAGE and build["version"] == builder.VERSION
    assert build["sha256"] == builder.SHA256
    assert sum(build["skip_counts"].values()) == len(build["skipped"])


def test_embedded_rows_are_public_domain_with_provenance(dataset):
    assert len(dataset.features["label"].names) >= 10
    assert min(np.bincount(dataset["label"])) >= 30
    for row in dataset.select_columns([c for c in dataset.column_names if c != "image"]):
        assert row["source"] == "openclipart"
        assert row["license"] == builder.LICENSE
        assert row["license_url"] == builder.LICENSE_URL
        assert row["license_reason"].startswith("package copyright file")
        assert row["source_url"].startswith(
            "debian:openclipart-svg=1:0.18+dfsg-19:/usr/share/openclipart/svg/")
        assert row["source_url"].endswith(".svg")
        assert len(row["sha1"]) == 40 and int(row["sha1"], 16) >= 0
        assert row["title"] and row["author"]
        assert row["width"] > 0 and row["height"] > 0
    assert len(set(dataset["sha1"])) == len(dataset)
    image = dataset[0]["image"]
    assert image.mode == "RGB" and image.size == (64, 64)


def test_embedded_splits_are_disjoint_stratified_and_complete(dataset):
    train = load_images("openclipart", split="train")
    held = load_images("openclipart", split="heldout")
    assert set(train["sha1"]).isdisjoint(held["sha1"])
    assert len(train) + len(held) == len(dataset)
    assert set(train["sha1"]) | set(held["sha1"]) == set(dataset["sha1"])
    n_classes = len(dataset.features["label"].names)
    assert set(train["label"]) == set(held["label"]) == set(range(n_classes))


# --- SVG size, bounded rendering, compositing -----------------------------------------------

def test_svg_size_units_and_viewbox():
    assert rasterise.svg_size(f'<svg {SVG_NS} width="72pt" height="1in"/>'.encode()) == (96, 96)
    box_only = f'<svg {SVG_NS} viewBox="0 0 20000 10000"/>'.encode()
    assert rasterise.svg_size(box_only) == (20000, 10000)
    one_side = f'<svg {SVG_NS} width="100" height="100%" viewBox="0 0 50 25"/>'.encode()
    assert rasterise.svg_size(one_side) == (100, 50)
    with pytest.raises(ValueError, match="viewBox"):
        rasterise.svg_size(f'<svg {SVG_NS} width="100%"/>'.encode())


def test_bounded_size_keeps_aspect_and_caps_longest_side():
    assert rasterise.bounded_size(20000, 10000, 256) == (256, 128)
    assert rasterise.bounded_size(16, 32, 256) == (128, 256)  # tiny icons are upsampled


def test_huge_viewbox_renders_at_bounded_size():
    pytest.importorskip("cairosvg")
    svg = (f'<svg {SVG_NS} viewBox="0 0 40000 20000">'
           '<rect x="0" y="0" width="20000" height="20000" fill="#0000ff"/></svg>').encode()
    w, h = rasterise.svg_size(svg)
    im = rasterise.render_svg_timeout(svg, *rasterise.bounded_size(w, h, 64), timeout=30)
    assert im.size == (64, 32) and im.mode == "RGBA"
    a = np.asarray(im)
    assert tuple(a[16, 10]) == (0, 0, 255, 255)  # left half: the blue square
    assert a[16, 50, 3] == 0  # right half: transparent


def test_render_error_is_reported_not_raised_as_crash():
    pytest.importorskip("cairosvg")
    with pytest.raises(RuntimeError):
        rasterise.render_svg_timeout(b"<svg><unclosed></svg>", 8, 8, timeout=30)


def test_transparency_becomes_white_and_half_alpha_blends():
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[0, 0] = (0, 0, 0, 255)
    rgba[0, 1] = (0, 0, 0, 0)
    rgba[1, 0] = (255, 0, 0, 0)
    rgba[1, 1] = (0, 0, 0, 128)
    out = np.asarray(rasterise.composite_on_white(Image.fromarray(rgba, "RGBA")))
    assert out.shape == (2, 2, 3)
    assert tuple(out[0, 0]) == (0, 0, 0)
    assert tuple(out[0, 1]) == tuple(out[1, 0]) == (255, 255, 255)
    assert abs(int(out[1, 1, 0]) - 127) <= 1


def test_pad_square_centres_on_white():
    im = Image.new("RGB", (4, 2), (0, 0, 0))
    out = np.asarray(rasterise.pad_square(im))
    assert out.shape == (4, 4, 3)
    assert (out[1:3] == 0).all() and (out[0] == 255).all() and (out[3] == 255).all()


def test_thumbnail_crops_to_drawing_and_resizes():
    rgba = np.zeros((100, 200, 4), dtype=np.uint8)  # transparent page, small black drawing
    rgba[40:60, 90:110] = (0, 0, 0, 255)
    out = np.asarray(rasterise.thumbnail(Image.fromarray(rgba, "RGBA"), size=16, margin=0.0))
    assert out.shape == (16, 16, 3) and (out == 0).all()
    assert rasterise.content_box(Image.new("RGB", (5, 5), "white")) is None


# --- near-duplicates --------------------------------------------------------------------------

def test_near_duplicates_keep_first_and_distinct_images():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    b = 255 - a  # clearly different
    a_noisy = np.clip(a.astype(int) + rng.integers(-2, 3, a.shape), 0, 255).astype(np.uint8)
    images = np.stack([a, b, a.copy(), a_noisy, np.full_like(a, 255)])
    assert rasterise.near_duplicates(images, threshold=0.02) == [(2, 0), (3, 0)]
    assert rasterise.near_duplicates(images[[1, 4]], threshold=0.02) == []


# --- metadata and licence decision ------------------------------------------------------------

def test_metadata_is_parsed_from_rdf():
    meta = builder.parse_svg_metadata(clipart("http://web.resource.org/cc/PublicDomain"))
    assert meta["title"] == "An Apple" and meta["author"] == "Jo"
    assert meta["licenses"] == ["http://web.resource.org/cc/PublicDomain"]
    assert builder.parse_svg_metadata(clipart(None, author=None))["author"] == ""


def test_public_domain_and_undeclared_files_are_accepted():
    ok, reason = builder.decide_license(
        builder.parse_svg_metadata(clipart("http://web.resource.org/cc/PublicDomain")))
    assert ok and "Public Domain Dedication" in reason and "agrees" in reason
    ok, reason = builder.decide_license(builder.parse_svg_metadata(clipart("")))
    assert ok and "declares no licence" in reason


def test_non_public_domain_license_is_rejected_with_reason():
    gpl = "http://creativecommons.org/licenses/GPL/2.0/"
    ok, reason = builder.decide_license(builder.parse_svg_metadata(clipart(gpl)))
    assert not ok and reason == f"rejected: svg cc:license declares {gpl}, not public domain"
    # A licence named only in a comment contradicts the dedication too.
    svg = clipart("http://web.resource.org/cc/PublicDomain").replace(
        b"<metadata>", b"<!-- licensed under http://creativecommons.org/licenses/by/2.0/ -->"
        b"<metadata>")
    ok, reason = builder.decide_license(builder.parse_svg_metadata(svg))
    assert not ok and "creativecommons.org/licenses/by/2.0/" in reason


# --- package checksum -------------------------------------------------------------------------

def test_checksum_refuses_a_wrong_file(tmp_path):
    fake = tmp_path / "openclipart-svg_1%3a0.18+dfsg-19_all.deb"
    fake.write_bytes(b"!<arch>\nnot the real package\n")
    with pytest.raises(ValueError, match="Refusing .* SHA256"):
        builder.verify_sha256(fake)
    digest = hashlib.sha256(fake.read_bytes()).hexdigest()
    assert builder.verify_sha256(fake, expected=digest) == digest


def test_build_script_refuses_a_wrong_deb(tmp_path, capsys):
    import build_openclipart as script

    fake = tmp_path / "fake.deb"
    fake.write_bytes(b"not a package")
    out = tmp_path / "out.npz"
    assert script.main(["--deb", str(fake), "--out", str(out),
                        "--datasheet", str(tmp_path / "DATASHEET.md")]) == 1
    assert "Refusing" in capsys.readouterr().err and not out.exists()
