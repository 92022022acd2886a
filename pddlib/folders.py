"""Model folders are untrusted input: what one must hold before diffusers or torch reads it.

Every loader (`PDDiffusionPipeline.from_run`, `pddlib.reference`, `load_autoencoder`, resume)
checks its folder here first, so a damaged, partial or code-carrying folder is refused in one
line naming the folder, the part and what to do (`DamagedFolder`, a ValueError):
- the parts this kind of model needs are there (a latent model's autoencoder among them);
- every JSON config parses and names only stock diffusers classes: a part implemented by code,
  or any code file in the folder, refuses the folder, and nothing of it is imported;
- every weights file is a whole safetensors file (its header read, its length checked) holding
  the tensor shapes of the model its config describes (that model built on the `meta` device:
  shapes without memory); nothing pickled is opened;
- the files match the folder's record (pddlib.checksums) in size, and in SHA-256 on demand.
A folder written before pddlib kept records passes on its parts, configs and headers alone.
"""

from __future__ import annotations

import functools
import json
import math
import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import diffusers
import torch
from diffusers import AutoencoderKL, UNet2DModel
from diffusers.schedulers.scheduling_utils import SCHEDULER_CONFIG_NAME, SchedulerMixin
from diffusers.utils.constants import CONFIG_NAME, SAFETENSORS_WEIGHTS_NAME
from safetensors import SafetensorError

from pddlib import runs
from pddlib.checksums import BadPart, verify_record

T = TypeVar("T")
PIPELINE_CLASS = "PDDiffusionPipeline"
MODEL_PARTS = {runs.UNET: UNet2DModel, runs.VAE: AutoencoderKL}
RECOPY = "re-copy the folder from where it came, or train it again"
REINSTALL = "reinstall pddlib (or re-clone its repository) to get the shipped files back"
NO_CODE = ("pddlib never runs code that comes with a model folder; ask whoever shared it for a "
           "folder of stock diffusers parts in safetensors")
NO_PICKLES = ("pddlib loads only safetensors, because unpickling can run any code the file "
              "contains; ask for a safetensors copy, or convert it yourself only if you trust "
              "where it came from")
LFS = "fetch the weights with `git lfs pull` in the repository, or re-copy the folder"
# Bytes per element of each safetensors dtype.
DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "I64": 8,
               "I32": 4, "I16": 2, "I8": 1, "U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1}
MAX_HEADER = 100 * 2**20  # safetensors refuses larger headers itself
# What a diffusers load of a checked folder may still raise, said as one line.
LOAD_ERRORS = (OSError, ValueError, KeyError, TypeError, AttributeError, ImportError,
               SafetensorError)


class DamagedFolder(ValueError):
    """A model folder pddlib will not load, in one line: the folder, the part, what to do."""

    def __init__(self, folder: str | Path, part: str, problem: str, remedy: str) -> None:
        super().__init__(f"{folder}: {f'{part} ' if part else ''}{problem}; {remedy}.")
        self.folder, self.part, self.problem = Path(folder), part, problem


@dataclass(frozen=True)
class Checked:
    """What a check found whole: the folder, its kind, and how much of it its record vouched for."""

    folder: Path
    kind: str  # "pipeline", "checkpoint" or "autoencoder"
    recorded: int  # files compared with the folder's record; 0: it keeps none
    hashed: bool  # their SHA-256 compared too, not only their sizes

    def __str__(self) -> str:
        article = "an" if self.kind[0] in "aeiou" else "a"
        found = f"{article} {self.kind}: its parts, configs and weight headers check out"
        if not self.recorded:
            return (f"{found}; it keeps no record of its files ({runs.CHECKSUMS}: folders "
                    "written before pddlib kept one have none), so their contents were not compared")
        what = "size and SHA-256" if self.hashed else "size"
        return f"{found}, and the {self.recorded} files its record lists match in {what}"


@contextmanager
def refusing(folder: Path, remedy: str) -> Iterator[None]:
    """Turn a bad part found inside the block into one DamagedFolder line."""
    try:
        yield
    except BadPart as e:
        raise DamagedFolder(folder, e.part, e.problem, e.remedy or remedy) from None


def first_line(e: BaseException) -> str:
    """The first line of an exception's message (its type when it has none), kept short."""
    lines = str(e).strip().splitlines()
    return (lines[0] if lines else type(e).__name__)[:200]


def read_json(folder: Path, name: str) -> dict:
    """The JSON object in folder/name (BadPart when it is missing or not one)."""
    path = folder / name
    if not path.is_file():
        raise BadPart(name, "is missing")
    try:
        value = json.loads(path.read_text("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise BadPart(name, f"is not valid JSON ({first_line(e)})") from None
    if not isinstance(value, dict):
        raise BadPart(name, "is not a JSON object")
    return value


def refuse_foreign_files(folder: Path) -> None:
    """Refuse pickled weights and code anywhere in the folder, naming the first (none is opened)."""
    paths = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))
    for suffixes, what, remedy in ((runs.PICKLE_SUFFIXES, "pickled weights", NO_PICKLES),
                                   (runs.CODE_SUFFIXES, "code", NO_CODE)):
        found = [p for p in paths if Path(p).suffix in suffixes]
        if found:
            more = f" (and {len(found) - 1} more such files)" if len(found) > 1 else ""
            raise BadPart(found[0], f"is {what}{more}", remedy)


def tensor_shapes(folder: Path, name: str) -> dict[str, tuple[int, ...]]:
    """The tensor shapes in a safetensors file's header, once the file is whole (else BadPart)."""
    path = folder / name
    if not path.is_file():
        raise BadPart(name, "is missing")
    size = path.stat().st_size
    with open(path, "rb") as fh:
        start = fh.read(8)
        if start.startswith(b"version "):
            raise BadPart(name, "is a Git LFS pointer, not the weights", LFS)
        if len(start) < 8:
            raise BadPart(name, f"is cut short ({size} bytes: not even its header)")
        (n,) = struct.unpack("<Q", start)
        if n > MAX_HEADER:
            raise BadPart(name, "is not a safetensors file")
        if 8 + n > size:
            raise BadPart(name, f"is cut short ({size} bytes: its header alone needs {8 + n})")
        raw = fh.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        header = None
    if not isinstance(header, dict):
        raise BadPart(name, "is not a safetensors file (its header is not JSON)")
    whole = 8 + n + data_end(name, header)
    if size < whole:
        raise BadPart(name, f"is cut short ({size} of the {whole} bytes its header describes)")
    if size > whole:
        raise BadPart(name, f"has {size - whole} bytes more than its header describes")
    return {k: tuple(v["shape"]) for k, v in header.items() if k != "__metadata__"}


def data_end(name: str, header: dict) -> int:
    """Where the tensors' bytes end, once every entry is well formed and they tile the data."""
    spans = []
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        try:
            shape, (begin, end) = entry["shape"], entry["data_offsets"]
            ok = (all(type(d) is int and d >= 0 for d in [*shape, begin, end])
                  and end - begin == math.prod(shape) * DTYPE_BYTES[entry["dtype"]])
        except (TypeError, KeyError, ValueError):
            ok = False
        if not ok:
            raise BadPart(name, f"is not a valid safetensors file (its entry {key!r} is malformed)")
        spans.append((begin, end))
    position = 0
    for begin, end in sorted(spans):
        if begin != position:
            raise BadPart(name, "is not a valid safetensors file (its tensors overlap or leave "
                                "gaps)")
        position = end
    return position


@dataclass(frozen=True)
class ModelShapes:
    """What a config's model holds: its state-dict and parameter shapes, its resolved config."""

    state: dict[str, tuple[int, ...]]
    params: dict[str, tuple[int, ...]]  # in the optimizer's order
    config: dict


@functools.lru_cache(maxsize=32)
def shapes_of(cls: type, config_json: str) -> ModelShapes:
    """The shapes of the model a config describes, built on the meta device (no memory)."""
    with torch.device("meta"):
        model = cls.from_config(json.loads(config_json))
    return ModelShapes({k: tuple(v.shape) for k, v in model.state_dict().items()},
                       {k: tuple(v.shape) for k, v in model.named_parameters()},
                       dict(model.config))


def described(cls: type, config: dict, part: str) -> ModelShapes:
    """The shapes of the model `config` describes (BadPart when diffusers cannot build it)."""
    try:
        return shapes_of(cls, json.dumps(config, sort_keys=True))
    except Exception as e:  # noqa: BLE001 (a config diffusers cannot build is a bad part)
        raise BadPart(part, f"does not describe a {cls.__name__} ({first_line(e)})") from None


def match_shapes(name: str, found: dict, expected: dict, config: str) -> None:
    """Refuse weights whose tensors are not those of the config's model (names and shapes)."""
    wrong = [k for k in sorted(found.keys() & expected.keys()) if found[k] != expected[k]]
    if wrong:
        k = wrong[0]
        raise BadPart(name, f"holds weights of another shape than {config} describes ({k}: "
                            f"{list(found[k])}, not {list(expected[k])})")
    missing, extra = sorted(expected.keys() - found.keys()), sorted(found.keys() - expected.keys())
    if missing:
        raise BadPart(name, f"lacks {len(missing)} of the tensors {config} describes (the first: "
                            f"{missing[0]})")
    if extra:
        raise BadPart(name, f"holds {len(extra)} tensors {config} does not describe (the first: "
                            f"{extra[0]})")


def check_model(folder: Path, sub: str, cls: type) -> ModelShapes:
    """A diffusers model in folder/sub ("": the folder itself) whose config and weights agree."""
    prefix = f"{sub}/" if sub else ""
    if sub and not (folder / sub).is_dir():
        raise BadPart(prefix, "is missing")
    config_name = prefix + CONFIG_NAME
    config = read_json(folder, config_name)
    named = config.get("_class_name", cls.__name__)
    if named != cls.__name__:
        raise BadPart(config_name, f"describes a {named!r}, not the {cls.__name__} pddlib loads")
    model = described(cls, config, config_name)
    weights = prefix + SAFETENSORS_WEIGHTS_NAME
    match_shapes(weights, tensor_shapes(folder, weights), model.state, config_name)
    return model


def code_part(folder: Path, name: str, library: object, cls: object) -> BadPart:
    """The refusal of an index entry whose part is implemented by code (diffusers would import it)."""
    files = [f"{name}/{library}.py", f"{library}.py"] if str(library).isidentifier() else []
    found = next((f for f in files if (folder / f).is_file()), None)
    where = f", in {found}" if found else ""
    return BadPart(runs.PIPELINE_INDEX,
                   f"names a part implemented by code ({name}: {library}.{cls}{where})", NO_CODE)


def index_entry(folder: Path, name: str, value: object) -> str | None:
    """One model_index.json entry's diffusers class (None: the autoencoder, left out)."""
    if not (isinstance(value, list) and len(value) == 2):
        raise BadPart(runs.PIPELINE_INDEX, f"lists {name!r} as {value!r}, not as [library, class]")
    library, cls = value
    if value == [None, None] and name == runs.VAE:
        return None
    if library != "diffusers":
        raise code_part(folder, name, library, cls)
    if name not in (*MODEL_PARTS, runs.SCHEDULER):
        raise BadPart(runs.PIPELINE_INDEX, f"names a part pddlib does not load ({name!r})")
    if name in MODEL_PARTS and cls != MODEL_PARTS[name].__name__:
        raise BadPart(runs.PIPELINE_INDEX, f"names {cls!r} as its {name}, not the "
                                           f"{MODEL_PARTS[name].__name__} pddlib loads")
    scheduler = getattr(diffusers, cls, None) if isinstance(cls, str) else None
    if name == runs.SCHEDULER and not (isinstance(scheduler, type)
                                       and issubclass(scheduler, SchedulerMixin)):
        raise BadPart(runs.PIPELINE_INDEX, f"names {cls!r} as its scheduler: not a diffusers one")
    return cls


def read_index(folder: Path) -> dict[str, str | None]:
    """model_index.json's parts (name -> diffusers class; None: left out), refusing named code."""
    index = read_json(folder, runs.PIPELINE_INDEX)
    named = index.get("_class_name")
    if named != PIPELINE_CLASS:
        raise BadPart(runs.PIPELINE_INDEX, f"names the pipeline {named!r}, not {PIPELINE_CLASS}",
                      NO_CODE if isinstance(named, list) else None)
    parts = {k: index_entry(folder, k, v) for k, v in index.items() if not k.startswith("_")}
    for name in (runs.UNET, runs.SCHEDULER):
        if parts.get(name) is None:
            raise BadPart(runs.PIPELINE_INDEX, f"lists no {name}")
    return parts


def check_scheduler(folder: Path, cls: str) -> None:
    """The scheduler's config parses and builds the scheduler the index names."""
    if not (folder / runs.SCHEDULER).is_dir():
        raise BadPart(f"{runs.SCHEDULER}/", "is missing")
    name = f"{runs.SCHEDULER}/{SCHEDULER_CONFIG_NAME}"
    config = read_json(folder, name)
    try:
        getattr(diffusers, cls).from_config(config)
    except Exception as e:  # noqa: BLE001 (a config diffusers cannot build is a bad part)
        raise BadPart(name, f"does not describe a {cls} ({first_line(e)})") from None


def check_latent(folder: Path, vae_class: str | None, config: dict, unet: ModelShapes,
                 vae_by_name: bool) -> None:
    """A latent model's autoencoder: present (shipped: named), whole, and of the UNet's latents."""
    named = config.get("autoencoder")
    if vae_class is None:
        if named:
            raise BadPart(runs.PIPELINE_INDEX, f"leaves out the autoencoder this latent model "
                                               f"needs ({named!r}, says {runs.CONFIG_FILE})")
        return
    if vae_by_name:  # the shipped form: the autoencoder ships once, elsewhere, by name
        if not isinstance(named, str):
            raise BadPart(runs.CONFIG_FILE, "names no autoencoder, which this latent model needs")
        return
    if not (folder / runs.VAE).is_dir():
        raise BadPart(f"{runs.VAE}/", "is missing: this latent model needs its autoencoder")
    vae = check_model(folder, runs.VAE, AutoencoderKL)
    if (folder / runs.VAE / runs.TRAINING_RECORD).is_file():
        read_json(folder, f"{runs.VAE}/{runs.TRAINING_RECORD}")
    made, taken = vae.config["latent_channels"], unet.config["in_channels"]
    if made != taken:
        raise BadPart(f"{runs.VAE}/", f"makes {made}-channel latents and the UNet denoises "
                                      f"{taken} channels: another model's autoencoder")


def check_pipeline(folder: str | Path, *, full: bool = False, vae_by_name: bool = False,
                   remedy: str = RECOPY) -> Checked:
    """Check a pipeline folder (a run, a working copy, a shipped model) before anything loads it.

    vae_by_name: the shipped form, whose autoencoder its train config names (the caller checks
    that folder with `check_autoencoder`). full: compare SHA-256 with the record, not only sizes.
    """
    folder = Path(folder)
    if not runs.has_pipeline(folder):
        raise FileNotFoundError(f"{folder} is not a model folder: it holds no trained pipeline "
                                f"({runs.PIPELINE_INDEX} is missing); train one with `pddlib "
                                f"train --out {folder}` first.")
    with refusing(folder, remedy):
        parts = read_index(folder)
        refuse_foreign_files(folder)
        has_config = (folder / runs.CONFIG_FILE).is_file()
        config = read_json(folder, runs.CONFIG_FILE) if has_config else {}
        unet = check_model(folder, runs.UNET, UNet2DModel)
        check_scheduler(folder, parts[runs.SCHEDULER])
        check_latent(folder, parts.get(runs.VAE), config, unet, vae_by_name)
        recorded = verify_record(folder, full)
    return Checked(folder, "pipeline", recorded, full and recorded > 0)


def check_optimizer(ckpt: Path, params: list[tuple[int, ...]]) -> None:
    """The optimizer tensors: a whole file whose moments are shaped like the UNet's parameters."""
    for key, shape in tensor_shapes(ckpt, runs.OPTIMIZER_STATE).items():
        index, _, name = key.partition(".")
        fits = (index.isdigit() and int(index) < len(params)
                and (name == "step" or shape == params[int(index)]))
        if not fits:
            raise BadPart(runs.OPTIMIZER_STATE, f"holds a tensor that fits none of the UNet's "
                                                f"parameters ({key})")


def check_checkpoint(ckpt: str | Path, *, full: bool = True, remedy: str = RECOPY) -> Checked:
    """Check a checkpoint folder (state, raw UNet, EMA and optimizer tensors) before loading it."""
    ckpt = Path(ckpt)
    with refusing(ckpt, remedy):
        refuse_foreign_files(ckpt)
        state = read_json(ckpt, runs.CHECKPOINT_STATE)
        if type(state.get("step")) is not int:
            raise BadPart(runs.CHECKPOINT_STATE, "names no step")
        params = check_model(ckpt, runs.UNET, UNet2DModel).params
        match_shapes(runs.EMA_WEIGHTS, tensor_shapes(ckpt, runs.EMA_WEIGHTS), params,
                     f"{runs.UNET}/{CONFIG_NAME}")
        check_optimizer(ckpt, list(params.values()))
        recorded = verify_record(ckpt, full)
    return Checked(ckpt, "checkpoint", recorded, full and recorded > 0)


def check_autoencoder(folder: str | Path, *, full: bool = False,
                      remedy: str = RECOPY) -> Checked:
    """Check an autoencoder folder (config, weights, training record) before anything loads it."""
    folder = Path(folder)
    with refusing(folder, remedy):
        refuse_foreign_files(folder)
        check_model(folder, "", AutoencoderKL)
        if (folder / runs.TRAINING_RECORD).is_file():
            read_json(folder, runs.TRAINING_RECORD)
        recorded = verify_record(folder, full)
    return Checked(folder, "autoencoder", recorded, full and recorded > 0)


def check_folder(folder: str | Path, *, full: bool = False) -> Checked:
    """Check any model folder, its kind told by what it holds (pipeline, checkpoint, autoencoder)."""
    folder = Path(folder)
    if runs.has_pipeline(folder):
        return check_pipeline(folder, full=full)
    if (folder / runs.CHECKPOINT_STATE).is_file() or (folder / runs.EMA_WEIGHTS).is_file():
        return check_checkpoint(folder, full=full)
    if (folder / CONFIG_NAME).is_file():
        return check_autoencoder(folder, full=full)
    raise FileNotFoundError(f"{folder} is not a model folder: it holds no {runs.PIPELINE_INDEX} "
                            f"(a pipeline), {runs.CHECKPOINT_STATE} (a checkpoint) or "
                            f"{CONFIG_NAME} (an autoencoder).")


def loaded(folder: Path, load: Callable[[], T], remedy: str = RECOPY) -> T:
    """Run diffusers' load of a checked folder; what it still refuses becomes one line."""
    try:
        return load()
    except LOAD_ERRORS as e:
        said = first_line(e)
        if "remote_code" in said or "custom" in said.lower():  # never pass on that advice
            said = "it asks to run code that came with the folder"
        raise DamagedFolder(folder, "", f"could not be loaded by diffusers "
                                        f"({type(e).__name__}: {said})", remedy) from e
