"""The trust boundary, on real folders on disk: what is excluded, what is refused, what trains."""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import runpy
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pddlib import cli
from pddlib.data import load_images
from pddlib.data.checks import ExcludedRowsWarning
from pddlib.folders import DamagedFolder
from pddlib.pipeline import PDDiffusionPipeline
from pddlib.provenance import read_manifest
from pddlib.recipes import RECIPES, tiny_config, tiny_latent_config
from pddlib.training import train


def png(colour=(200, 30, 30), size=(12, 12), mode="RGB", **save) -> bytes:
    """A small PNG of one colour."""
    buf = io.BytesIO()
    Image.new(mode, size, colour).save(buf, "PNG", **save)
    return buf.getvalue()


def bomb() -> bytes:
    """A tiny PNG whose header claims 9000 x 9000 pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", 9000, 9000, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b""))


def row(name: str, label: str = "cat", **kw) -> dict:
    """A metadata.jsonl row with an accepted public-domain decision."""
    base = {"file_name": f"images/{name}", "label": label, "title": name, "source": "hand-made",
            "source_url": f"https://example.org/{name}", "author": "someone",
            "license": "Public domain", "license_url": "", "license_reason": "pd: checked by hand",
            "sha1": hashlib.sha1(name.encode()).hexdigest(), "width": 12, "height": 12}
    return {**base, **kw}


def folder(tmp_path: Path, files: dict[str, bytes], rows: list[dict | str]) -> Path:
    """A scraped-style folder: images/ with `files`, metadata.jsonl with `rows` (str: raw line)."""
    out = tmp_path / "data"
    (out / "images").mkdir(parents=True)
    for name, data in files.items():
        (out / "images" / name).write_bytes(data)
    lines = [r if isinstance(r, str) else json.dumps(r) for r in rows]
    (out / "metadata.jsonl").write_text("".join(ln + "\n" for ln in lines))
    return out


def good(n: int = 4) -> tuple[dict[str, bytes], list[dict]]:
    files = {f"ok{i}.png": png((40 * i, 30, 30)) for i in range(n)}
    return files, [row(name, "cat" if i % 2 else "dog") for i, name in enumerate(files)]


def test_rows_without_an_accepted_licence_are_left_out_and_reported(tmp_path: Path) -> None:
    files, rows = good()
    files |= {"nolicence.png": png(), "ccby.png": png(), "noreason.png": png()}
    rows += [row("nolicence.png", license=""),
             row("ccby.png", license="CC BY-SA 4.0",
                 license_url="https://creativecommons.org/licenses/by-sa/4.0/"),
             row("noreason.png", license_reason="")]
    with pytest.warns(ExcludedRowsWarning) as caught:
        ds = load_images(folder(tmp_path, files, rows))
    assert sorted(ds["title"]) == sorted(r["title"] for r in rows[:4])
    message = str(caught[0].message)
    assert "4 images kept, 3 excluded" in message and "3 x licence not accepted" in message
    assert "line 6 'images/ccby.png'" in message and "not public domain" in message


def test_bad_files_are_left_out_with_their_reason(tmp_path: Path) -> None:
    files, rows = good()
    whole = png(size=(64, 64))
    files |= {"truncated.png": whole[: len(whole) // 2], "bomb.png": bomb(),
              "text.png": b"not an image at all", "dup.png": png()}
    (tmp_path / "outside.png").write_bytes(png())
    rows += [row("truncated.png"), row("bomb.png"), row("text.png"), row("gone.png"),
             row("../../outside.png"), {**row("abs.png"), "file_name": str(tmp_path / "outside.png")},
             {**row("dup.png"), "sha1": rows[0]["sha1"]}]
    data = folder(tmp_path, files, rows)
    (data / "images" / "link.png").symlink_to(tmp_path / "outside.png")
    rows.append(row("link.png"))
    (data / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.warns(ExcludedRowsWarning) as caught:
        ds = load_images(data)
    assert len(ds) == 4
    message = str(caught[0].message)
    for code in ("unreadable image", "too large", "not an image", "missing file",
                 "path leaves the folder", "duplicate"):
        assert code in message, code
    assert "3 x path leaves the folder" in message and "same sha1 as line 1" in message


def test_every_image_mode_becomes_rgb_on_white(tmp_path: Path) -> None:
    clear = Image.new("RGBA", (12, 12), (0, 0, 0, 0))
    clear.paste((0, 0, 255, 255), (0, 0, 6, 12))  # left half opaque blue, right transparent
    buf = io.BytesIO()
    clear.save(buf, "PNG")
    deep = Image.fromarray(np.full((12, 12), 65535 // 2, np.uint16))
    deep_buf = io.BytesIO()
    deep.save(deep_buf, "PNG")
    rotated = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    Image.new("RGB", (20, 10), (10, 200, 10)).save(rotated, "JPEG", exif=exif)
    cmyk = io.BytesIO()
    Image.new("CMYK", (12, 12), (0, 255, 255, 0)).save(cmyk, "JPEG")
    palette = io.BytesIO()
    Image.new("RGB", (12, 12), (200, 30, 30)).convert("P", palette=Image.Palette.ADAPTIVE).save(
        palette, "PNG")
    files = {"alpha.png": buf.getvalue(), "grey.png": png(128, mode="L"),
             "palette.png": palette.getvalue(), "deep.png": deep_buf.getvalue(),
             "rotated.jpg": rotated.getvalue(), "cmyk.jpg": cmyk.getvalue()}
    ds = load_images(folder(tmp_path, files, [row(n) for n in files]))
    got = {r["title"]: np.asarray(r["image"]) for r in ds}
    assert all(r["image"].mode == "RGB" for r in ds)
    assert tuple(got["alpha.png"][6, 2]) == (0, 0, 255) and tuple(got["alpha.png"][6, 9]) == (255,) * 3
    assert tuple(got["grey.png"][0, 0]) == (128, 128, 128)
    assert tuple(got["palette.png"][0, 0]) == (200, 30, 30)
    assert abs(int(got["deep.png"][0, 0, 0]) - 128) <= 1  # 16-bit scaled, not clipped to white
    assert got["rotated.jpg"].shape[:2] == (20, 10)  # EXIF orientation applied
    assert got["cmyk.jpg"][0, 0, 0] > 200 and got["cmyk.jpg"][0, 0, 1] < 60  # red


def test_a_class_left_without_images_is_dropped_and_said(tmp_path: Path) -> None:
    files, rows = good()
    files["bird.png"] = png()
    rows.append(row("bird.png", "bird", license=""))
    with pytest.warns(ExcludedRowsWarning, match=r"no images left \(dropped\): \['bird'\]"):
        ds = load_images(folder(tmp_path, files, rows))
    assert ds.features["label"].names == ["cat", "dog"]


def test_a_malformed_metadata_line_refuses_the_load_naming_file_and_line(tmp_path, capsys) -> None:
    files, rows = good()
    data = folder(tmp_path, files, [rows[0], '{"file_name": "images/ok1.png", ', rows[2]])
    with pytest.raises(ValueError, match=r"metadata.jsonl line 2 is not valid JSON"):
        load_images(data)
    assert cli.main(["train", "--data", str(data), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "metadata.jsonl line 2" in err and "Traceback" not in err
    (data / "metadata.jsonl").write_text(json.dumps(rows[0]) + "\n[1, 2]\n")
    with pytest.raises(ValueError, match="line 2 is not a JSON object"):
        load_images(data)
    (data / "metadata.jsonl").write_text(json.dumps({"file_name": "images/ok0.png"}) + "\n")
    with pytest.raises(ValueError, match="line 1 lacks the schema columns"):
        load_images(data)


def test_nothing_unaccepted_reaches_a_manifest(tmp_path: Path, monkeypatch, capsys) -> None:
    files, rows = good()
    files["ccby.png"] = png()
    rows.append(row("ccby.png", license="CC BY 4.0"))
    data = folder(tmp_path, files, rows)
    monkeypatch.setitem(RECIPES, "cpu-latent", tiny_latent_config(max_steps=2, batch_size=4))
    assert cli.main(["train", "--data", str(data), "--out", str(tmp_path / "run"),
                     "--max-steps", "2"]) == 0
    err = capsys.readouterr().err
    assert "pddlib train: warning: " in err and "1 x licence not accepted" in err
    listed = {r["title"] for r in read_manifest(tmp_path / "run")}
    # The train split of the four accepted images (one per class is held out); never ccby.png.
    assert listed == {"ok0.png", "ok1.png"}


def test_train_refuses_a_dataset_without_accepted_decisions(tmp_path: Path) -> None:
    files, rows = good()
    ds = load_images(folder(tmp_path, files, rows))
    bad = ds.map(lambda r, i: {"license": "" if i == 2 else r["license"]}, with_indices=True)
    with pytest.raises(ValueError, match=r"1 of 4 rows have no accepted .*row 2 .*no license"):
        train(tiny_config(max_steps=1, batch_size=4), bad, tmp_path / "run")
    assert not (tmp_path / "run" / "provenance").exists()


def marker_code(marker: Path) -> str:
    """Python that leaves a file behind when it runs: proof that a folder's code was run."""
    return f"open({str(marker)!r}, 'w').write('ran')\n"


def evil_pickle(marker: Path) -> bytes:
    """A pickle that runs code when it is loaded, leaving `marker` behind."""
    class Evil:
        def __reduce__(self):
            return exec, (marker_code(marker),)

    return pickle.dumps(Evil())


def refused_everywhere(run: Path, tmp_path: Path, capsys) -> str:
    """from_run and `pddlib sample/eval/check/card` refuse run in the same one line; that line."""
    with pytest.raises(DamagedFolder) as refused:
        PDDiffusionPipeline.from_run(run)
    message = str(refused.value)
    grid = tmp_path / "grid.png"
    for command in (["sample", "--n", "1", "--out", str(grid)], ["eval", "--n", "2"], ["check"],
                    ["card"]):
        capsys.readouterr()
        assert cli.main([*command, "--model", str(run)]) == 2
        assert capsys.readouterr().err == f"pddlib {command[0]}: error: {message}\n"
    assert not grid.exists() and "trust_remote_code" not in message
    return message


def test_a_model_folder_with_pickled_weights_is_refused_unopened(model, tmp_path, capsys) -> None:
    pickle.loads(evil_pickle(tmp_path / "probe"))
    assert (tmp_path / "probe").exists()  # unpickling such a file runs its code
    run = Path(shutil.copytree(model, tmp_path / "run"))
    assert PDDiffusionPipeline.from_run(run).class_names
    (run / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    marker = tmp_path / "unpickled"
    (run / "unet" / "diffusion_pytorch_model.bin").write_bytes(evil_pickle(marker))
    message = refused_everywhere(run, tmp_path, capsys)
    assert message == (f"{run}: unet/diffusion_pytorch_model.bin is pickled weights; pddlib loads "
                       "only safetensors, because unpickling can run any code the file contains; "
                       "ask for a safetensors copy, or convert it yourself only if you trust "
                       "where it came from.")
    assert not marker.exists()


CODE = {
    "a part implemented by code": (
        lambda run: edit_index(run, unet=["my_unet", "MyUNet"]), "unet/my_unet.py",
        "model_index.json names a part implemented by code (unet: my_unet.MyUNet, in "
        "unet/my_unet.py)"),
    "a pipeline implemented by code": (
        lambda run: edit_index(run, _class_name=["pipeline", "MyPipeline"]), "pipeline.py",
        "model_index.json names the pipeline ['pipeline', 'MyPipeline'], not PDDiffusionPipeline"),
    "a code file beside the weights": (lambda run: None, "unet/helpers.py",
                                       "unet/helpers.py is code"),
}


def edit_index(run: Path, **changes) -> None:
    path = run / "model_index.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


@pytest.mark.parametrize("case", CODE)
def test_a_model_folder_carrying_code_is_refused_and_its_code_never_runs(case, model, tmp_path,
                                                                         capsys) -> None:
    edit, code_file, said = CODE[case]
    marker = tmp_path / "ran"
    probe = tmp_path / "probe.py"
    probe.write_text(marker_code(tmp_path / "probe-ran"))
    runpy.run_path(str(probe))
    assert (tmp_path / "probe-ran").exists()  # such a file, run, leaves its marker
    run = Path(shutil.copytree(model, tmp_path / "run"))
    (run / code_file).write_text(marker_code(marker) + "from diffusers import *  # noqa\n"
                                 "MyUNet = UNet2DModel\nMyPipeline = DiffusionPipeline\n")
    edit(run)
    message = refused_everywhere(run, tmp_path, capsys)
    assert message == (f"{run}: {said}; pddlib never runs code that comes with a model folder; "
                       "ask whoever shared it for a folder of stock diffusers parts in "
                       "safetensors.")
    assert not marker.exists()


def test_the_embedded_set_passes_the_same_licence_check(tmp_path: Path) -> None:
    from openclipart_builder import save

    from pddlib.data import embedded

    images, labels, meta = embedded.read_arrays()
    records = [dict(r) for r in meta["records"][:12]]
    records[3]["license"] = "CC BY 4.0"  # as if someone edited the file
    path = tmp_path / "edited.npz"
    save(path, images[:12], labels[:12], {**meta, "records": records})
    with pytest.warns(ExcludedRowsWarning,
                      match=r"(?s)11 images kept, 1 excluded.*1 x licence not accepted: line 4"):
        ds = embedded.load(str(path))
    assert len(ds) == 11 and records[3]["sha1"] not in ds["sha1"]
