"""The embedded multi-source corpus (pddlib/data/pdcorpus64.npz) as its loader hands it out."""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from pddlib.data import embedded, load_images
from pddlib.data.checks import ExcludedRowsWarning, row_problems

DATASHEET = Path(embedded.data_path("pdcorpus")).with_name("PDCORPUS.md")
SOURCE_URL = re.compile(r"^(debian|pypi|npm):(?P<package>[^=@]+|@[^@]+)(=|==|@)(?P<version>[^/]+):/"
                        r"(?P<path>.+)$")


@pytest.fixture(scope="module")
def arrays():
    """(images, labels, meta) straight from the committed .npz."""
    return embedded.read_arrays(str(embedded.data_path("pdcorpus")))


@pytest.fixture(scope="module")
def corpus():
    """The corpus through the public loader."""
    return load_images("pdcorpus")


def test_corpus_is_large_multi_source_and_every_class_has_100(arrays):
    images, labels, meta = arrays
    assert images.dtype == np.uint8 and images.shape[1:] == (64, 64, 3)
    assert len(images) == len(labels) == len(meta["records"]) >= 3500
    counts = np.bincount(labels, minlength=len(meta["class_names"]))
    assert counts.min() >= 100 and len(meta["class_names"]) >= 12
    sources = Counter(r["source"] for r in meta["records"])
    assert len(sources) >= 3 and "healthicons" not in sources  # its licence is unclear


def test_every_row_has_an_accepted_licence_and_names_its_file(corpus):
    assert len(corpus) == len(embedded.read_arrays(str(embedded.data_path("pdcorpus")))[0])
    for row in corpus.remove_columns("image"):
        assert row_problems(row) == [], row
        m = SOURCE_URL.match(row["source_url"])
        assert m, row["source_url"]
        assert row["sha1"] and not row["license_reason"].startswith("rejected")
    assert len(set(corpus["sha1"])) == len(corpus)


def test_no_image_is_another_image_or_its_mirror(arrays):
    images = arrays[0]
    digest = [hashlib.sha1(im.tobytes()).hexdigest() for im in images]
    mirrored = {hashlib.sha1(np.ascontiguousarray(im[:, ::-1]).tobytes()).hexdigest()
                for im in images if not np.array_equal(im, im[:, ::-1])}
    assert len(set(digest)) == len(digest)
    assert not mirrored & set(digest)


def test_datasheet_counts_are_the_files(arrays):
    _, labels, meta = arrays
    text = DATASHEET.read_text(encoding="utf-8")
    total = re.search(r"^(\d+) images in (\d+) classes", text, re.M)
    assert total and (int(total[1]), int(total[2])) == (len(labels), len(meta["class_names"]))
    counts = np.bincount(labels, minlength=len(meta["class_names"]))
    for name, n in zip(meta["class_names"], counts, strict=True):
        row = re.search(rf"^\| {re.escape(name)} \|.* \| (\d+) \|$", text, re.M)
        assert row and int(row[1]) == n, name
    assert "## Known biases and limits" in text


def test_splits_are_disjoint_and_stratified(corpus):
    train, held = load_images("pdcorpus", split="train"), load_images("pdcorpus", split="heldout")
    assert len(train) + len(held) == len(corpus)
    assert not set(train["sha1"]) & set(held["sha1"])
    assert set(held["label"]) == set(corpus["label"])


def test_an_edited_row_is_left_out_at_load(tmp_path, arrays):
    from openclipart_builder import save

    images, labels, meta = arrays
    records = [dict(r) for r in meta["records"][:10]]
    records[2]["license"] = "CC BY-SA 3.0"
    path = tmp_path / "pdcorpus64.npz"
    save(path, images[:10], labels[:10], {**meta, "records": records})
    with pytest.warns(ExcludedRowsWarning, match=r"9 images kept, 1 excluded"):
        ds = embedded.load(str(path))
    assert records[2]["sha1"] not in ds["sha1"]


def test_missing_file_names_the_command_that_rebuilds_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="build_corpus.py"):
        embedded.read_arrays(str(tmp_path / "pdcorpus64.npz"))


def test_unknown_source_names_the_embedded_sets():
    with pytest.raises(ValueError, match="'pdcorpus'"):
        load_images("no-such-set")
