"""Device mix-ups caught without a GPU: a second device that checks devices the way CUDA does.

CUDA refuses an operation that mixes devices (a CPU tensor into a model on the GPU), but on a
CPU-only machine every tensor is on the CPU and no test sees the mistake. Here PyTorch's spare
device type, PrivateUse1 (set up as a Python backend named "checked"), plays the GPU: `.to()`
moves tensors onto it, their data stays on the CPU and is computed by the CPU's kernels, and
every operation first checks devices as CUDA does. A CPU tensor may join tensors on the device
only as a 0-dimensional scalar of a pointwise operation, or as the index of an indexing; a
tensor is drawn on the device only from a generator of the device; `.numpy()` refuses it.
So the faults of issue 35 fail here as they would on a GPU, and the fixed paths give the CPU's
results (the same kernels, up to the order of a few floating-point sums).
"""

from __future__ import annotations

import copy
import os

import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler
from torch.utils._python_dispatch import TorchDispatchMode, return_and_correct_aliasing
from torch.utils._pytree import tree_flatten, tree_map
from torch.utils.backend_registration import (
    _DummyBackendModule,
    _setup_privateuseone_for_python_backend,
)

from pddlib import experiments
from pddlib.autoencoder import (
    AutoencoderConfig,
    autoencoder_loss,
    build_autoencoder,
    decode,
    train_autoencoder,
)
from pddlib.batches import class_names_of_dataset, draw_batch, training_data
from pddlib.defaults import DEFAULT_JUDGE
from pddlib.exercises import OneProcess
from pddlib.metrics import extract_features, fd, judge
from pddlib.metrics.copydetect import copy_descriptors, load_descriptor
from pddlib.metrics.evaluate import EvalConfig, evaluate_pipeline, generate_samples
from pddlib.metrics.features import _EXTRACTORS
from pddlib.models import TINY, TINY_LATENT, build_unet, image_shape, null_class
from pddlib.objectives import OBJECTIVES, objective_for
from pddlib.pipeline import PDDiffusionPipeline
from pddlib.recipes import tiny_config
from pddlib.samplers import SAMPLERS
from pddlib.schedulers import NAMES as SCHEDULERS
from pddlib.training import new_model, train_step

NAME = "checked"  # the stand-in device's name


class Unavailable(_DummyBackendModule):
    """torch.checked: no device to report, so nothing picks it unasked (fork_rng, accelerator)."""

    def is_available(self) -> bool:
        return False

    def device_count(self) -> int:
        return 0


class Hooks(torch._C._acc.PrivateUse1Hooks):
    """The backend's hooks as C++ asks for them: built, never available for automatic use."""

    def is_available(self) -> bool:
        return False

    def has_primary_context(self, dev_id) -> bool:
        return True

    def is_built(self) -> bool:
        return True


def checked_device() -> torch.device:
    """The stand-in GPU "checked": PrivateUse1 set up, once per process, as a Python backend."""
    if not hasattr(torch, NAME):
        # Renamed, the backend counts as registered, which the autograd engine needs; the rename
        # lasts for the process, and the backend stays unavailable to code that looks for one.
        _setup_privateuseone_for_python_backend(rename=NAME, backend_module=Unavailable(),
                                                hook=Hooks())
    return torch.device(NAME, 0)


DEVICE = checked_device()


class DeviceMismatch(RuntimeError):
    """What CUDA would raise: tensors of one operation on different devices."""


class OnDevice(torch.Tensor):
    """A tensor on the stand-in device: CPU data in `elem`, the device in its metadata."""

    elem: torch.Tensor

    @staticmethod
    def __new__(cls, elem: torch.Tensor) -> OnDevice:  # noqa: PYI034 (a wrapper, not cls)
        out = torch.Tensor._make_wrapper_subclass(
            cls, elem.size(), strides=elem.stride(), storage_offset=elem.storage_offset(),
            dtype=elem.dtype, layout=elem.layout, device=DEVICE, requires_grad=elem.requires_grad)
        out.elem = elem
        return out

    def __repr__(self) -> str:
        return f"OnDevice({self.elem!r})"

    def tolist(self):
        """Like CUDA tensors: a copy to Python numbers."""
        return self.elem.tolist()

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        with Checked():
            return func(*args, **(kwargs or {}))


def unwrapped(t):
    return t.elem if isinstance(t, OnDevice) else t


def empty_strided(size, stride, dtype=None, layout=None, device=None, pin_memory=None):
    return OnDevice(torch.empty_strided(size, stride, dtype=dtype, layout=layout))


def empty(size, dtype=None, layout=None, device=None, pin_memory=None, memory_format=None):
    return OnDevice(torch.empty(size, dtype=dtype, layout=layout, memory_format=memory_format))


def copy_from(src, dst, non_blocking=False):
    unwrapped(dst).copy_(unwrapped(src))
    return dst


# The backend's own kernels, for what PyTorch builds with Python dispatch switched off:
# `torch.tensor(data, device=...)` allocates on the device, then copies the data in.
KERNELS = torch.library.Library("aten", "IMPL")
for op, kernel in (("empty_strided", empty_strided), ("empty.memory_format", empty),
                   ("_copy_from", copy_from)):
    KERNELS.impl(op, kernel, "PrivateUse1")


# Operations that take tensors of two devices on CUDA: copies across devices, and (INDEXING)
# a device tensor indexed with CPU indices, though never a CPU tensor with device indices.
CROSSING = {"_to_copy", "copy_", "_copy_from", "_copy_from_and_resize"}
INDEXING = {"index", "index_put", "index_put_", "_index_put_impl_"}


def on_device(d) -> bool:
    return d is not None and torch.device(d).type == DEVICE.type


def check(func, args, kwargs) -> None:
    """Raise DeviceMismatch where CUDA would refuse the operation."""
    flat, _ = tree_flatten((args, kwargs))
    ours = [t for t in flat if isinstance(t, OnDevice)]
    target = kwargs.get("device")
    gen = kwargs.get("generator")
    if gen is not None and (on_device(target) or ours) and gen.device.type != DEVICE.type:
        raise DeviceMismatch(f"{func}: a {gen.device} generator draws a tensor for {DEVICE}")
    name = func._schema.name.split("::")[-1]
    if not ours or name in CROSSING:
        return
    if name in INDEXING:
        if not isinstance(args[0], OnDevice):
            raise DeviceMismatch(f"{func}: a tensor on cpu indexed with indices on {DEVICE}")
        return
    pointwise = torch.Tag.pointwise in func.tags
    for t in flat:
        if isinstance(t, torch.Tensor) and not isinstance(t, OnDevice):
            if not (pointwise and t.dim() == 0):
                raise DeviceMismatch(f"{func}: a {tuple(t.shape)} tensor on {t.device} meets "
                                     f"tensors on {DEVICE}")


class Checked(TorchDispatchMode):
    """While active: `.to(DEVICE)` and factories with device=DEVICE make OnDevice tensors."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        check(func, args, kwargs)
        target = kwargs.get("device")
        ours = any(isinstance(t, OnDevice) for t in tree_flatten((args, kwargs))[0])
        if not ours and not on_device(target):
            return func(*args, **kwargs)
        kw = tree_map(unwrapped, kwargs)
        if on_device(target):
            kw["device"] = torch.device("cpu")
        out = func(*tree_map(unwrapped, args), **kw)
        if target is not None and not on_device(target):
            return out  # copied off the device
        wrap = lambda t: OnDevice(t) if type(t) is torch.Tensor else t  # noqa: E731
        return return_and_correct_aliasing(func, args, kwargs, tree_map(wrap, out))


# On a CUDA machine `PDD_TEST_DEVICE=cuda` runs these tests on the GPU itself (scripts/gpu_check.py
# does): the same faults must then fail with CUDA's own errors, matched here alongside ours.
ON_CUDA = os.environ.get("PDD_TEST_DEVICE") == "cuda"
MISMATCH = ("meets tensors on|generator draws|indexed with indices on|same device|"
            "should be the same|device type for generator|indices should be")


def mismatch():
    """pytest.raises for a device mix-up, as the stand-in or CUDA reports it."""
    return pytest.raises(RuntimeError, match=MISMATCH)


@pytest.fixture
def gpu():
    """The device of the test: the stand-in (checked), or the GPU under PDD_TEST_DEVICE=cuda."""
    if not ON_CUDA:
        # Moving a module keeps its Parameter objects, as on CUDA (an optimizer made before the
        # move still holds them): swapped in place, since a wrapper cannot take over their data.
        swap = torch.__future__.get_swap_module_params_on_conversion()
        torch.__future__.set_swap_module_params_on_conversion(True)
        try:
            with Checked():
                yield DEVICE
        finally:
            torch.__future__.set_swap_module_params_on_conversion(swap)
        return
    assert torch.cuda.is_available(), "PDD_TEST_DEVICE=cuda needs a CUDA GPU"
    # TF32 convolutions and matmuls round to 10 bits: off, so the CPU's results are comparable.
    cudnn, matmul = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield torch.device("cuda", 0)
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = cudnn, matmul


def tol(small: float) -> float:
    """An absolute tolerance: the stand-in computes with the CPU's kernels, a GPU with its own."""
    return max(small, 2e-3) if ON_CUDA else small


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def tiny_pipe(latent: bool = False) -> PDDiffusionPipeline:
    """A seeded tiny conditional pipeline on the CPU (pixels, or latents of a tiny autoencoder)."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        unet = build_unet(TINY_LATENT if latent else TINY, ["circle", "square", "star"])
    vae = None
    if latent:
        vae = build_autoencoder(AutoencoderConfig(block_out_channels=(8, 16, 32),
                                                  norm_num_groups=8)).eval()
    pipe = PDDiffusionPipeline(unet.eval(), DDPMScheduler(num_train_timesteps=1000), vae)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def images(n: int = 6) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


# ---------------------------------------------------------------- the stand-in checks like CUDA


def test_the_stand_in_device_refuses_what_cuda_refuses(gpu) -> None:
    x = torch.randn(2, 3).to(gpu)
    assert x.device == gpu and (x * torch.tensor(2.0)).device == gpu  # a CPU scalar is allowed
    assert torch.equal((x + 1).cpu(), x.cpu() + 1)
    with mismatch():
        x + torch.ones(2, 3)
    with mismatch():
        torch.randn(2, generator=gen(), device=gpu)
    with pytest.raises((RuntimeError, TypeError), match="numpy"):  # CUDA: a TypeError
        x.numpy()
    assert torch.equal(x[torch.tensor([1, 0])].cpu(), x.cpu()[[1, 0]])  # CPU indices: allowed
    with mismatch():
        torch.arange(3.0)[torch.tensor([1, 0]).to(gpu)]  # a CPU tensor, device indices: refused


def test_a_model_on_the_device_refuses_cpu_inputs_and_trains_like_the_cpu(gpu) -> None:
    cpu = torch.nn.Linear(3, 2)
    model = copy.deepcopy(cpu).to(gpu)
    x = torch.randn(4, 3, generator=gen())
    with mismatch():
        model(x)
    for m, inp in ((cpu, x), (model, x.to(gpu))):
        opt = torch.optim.AdamW(m.parameters(), lr=0.1)
        m(inp).square().mean().backward()
        opt.step()
    assert model.weight.device == gpu
    torch.testing.assert_close(model.weight.detach().cpu(), cpu.weight.detach(), atol=tol(1e-5),
                               rtol=1e-5)


# ---------------------------------------------------------------- the faults of issue 35


def test_the_fault_a_judge_moved_in_place_breaks_classify(gpu) -> None:
    shared = judge.load_judge(DEFAULT_JUDGE)  # cached: classify() gets this very object
    try:
        shared.to(gpu)  # the fault: what get_extractor once did to it
        with mismatch():
            judge.classify(images())
    finally:
        shared.to("cpu")


def forget_device_extractors(device: torch.device) -> None:
    """Drop the feature maps loaded for `device` (the stand-in's should not outlive the test)."""
    for key in [k for k in _EXTRACTORS if k[1] == str(device)]:
        del _EXTRACTORS[key]


def test_an_fd_on_the_device_leaves_the_shared_judge_for_classify(gpu) -> None:
    x, y = images(), images(8)[::-1].copy()
    expected_labels, expected_probs = judge.classify(x)
    expected_fd = fd(x, y, device="cpu", progress=False)
    try:
        on_gpu = fd(x, y, device=gpu, progress=False)
        labels, probs = judge.classify(x)  # the cached CPU judge, after an FD on the device
        assert next(judge.load_judge(DEFAULT_JUDGE).parameters()).device.type == "cpu"
    finally:
        forget_device_extractors(gpu)
    np.testing.assert_array_equal(labels, expected_labels)
    np.testing.assert_allclose(probs, expected_probs, atol=1e-6)  # the CPU judge, both times
    assert on_gpu == pytest.approx(expected_fd, rel=1e-3)


def test_copy_descriptors_on_the_device_leave_the_shared_descriptor(gpu) -> None:
    x = images()
    expected = extract_features(x, "pdcopy", device="cpu", progress=False)
    try:
        on_gpu = extract_features(x, "pdcopy", device=gpu, progress=False)
        again = copy_descriptors(x)  # the cached CPU descriptor, after features on the device
        assert next(load_descriptor().parameters()).device.type == "cpu"
    finally:
        forget_device_extractors(gpu)
    np.testing.assert_allclose(on_gpu, expected, atol=tol(1e-5))
    np.testing.assert_allclose(again, expected, atol=1e-6)


def test_the_fault_cpu_start_noise_and_labels_fed_to_a_unet_on_the_device(gpu) -> None:
    pipe = tiny_pipe().to(gpu)
    t = torch.tensor(999)
    cpu_noise = torch.randn(1, 3, 16, 16, generator=gen())
    with mismatch():  # notebook 04's loop before the fix
        pipe.unet(cpu_noise, t, class_labels=torch.tensor([0]).to(gpu))
    with mismatch():
        pipe.unet(cpu_noise.to(gpu), t, class_labels=torch.tensor([0]))
    start = experiments.initial_noise(pipe, 1, experiments.seeded(0))  # fixed: on the device
    labels = torch.tensor([0], device=pipe.device)
    assert pipe.unet(start, t, class_labels=labels).sample.device == start.device == gpu


def test_the_fault_a_cpu_latent_decoded_by_an_autoencoder_on_the_device(gpu) -> None:
    pipe = tiny_pipe(latent=True).to(gpu)
    z = torch.randn(2, 4, 8, 8, generator=gen())
    with mismatch():
        pipe.vae.decode(z)
    expected = decode(copy.deepcopy(pipe.vae).to("cpu"), z)
    out = decode(pipe.vae, z)  # pddlib's decode moves the latents to the autoencoder
    assert out.device == gpu
    torch.testing.assert_close(out.cpu(), expected, atol=tol(1e-5), rtol=0)


# ---------------------------------------------------------------- sampling on the device


@pytest.mark.parametrize("name", [*SCHEDULERS, *SAMPLERS])
@pytest.mark.parametrize("latent", [False, True], ids=["pixels", "latents"])
def test_every_sampler_on_the_device_draws_the_cpu_images(gpu, name: str, latent: bool) -> None:
    kw = {"class_labels": [0, 2], "guidance_scale": 2.0, "num_inference_steps": 3,
          "output_type": "pt"}
    cpu = tiny_pipe(latent).with_scheduler(name)
    expected = cpu(2, generator=gen(1), **kw).images
    pipe = cpu.to(gpu)
    out = pipe(2, generator=gen(1), **kw).images
    assert out.device == gpu
    torch.testing.assert_close(out.cpu(), expected, atol=tol(1e-4), rtol=0)
    # CPU start noise given to a pipeline on the device is moved there, never mixed in.
    start = torch.randn(1, *image_shape(pipe.unet), generator=gen(2))
    given = pipe(1, latents=start, class_labels="star", num_inference_steps=2,
                 output_type="np").images
    assert given.shape == (1, pipe.image_size, pipe.image_size, 3)


def test_guidance_variants_and_callbacks_on_the_device(gpu) -> None:
    pipe = tiny_pipe().to(gpu)
    weak = copy.deepcopy(pipe.unet)
    seen = []

    def keep(p, i, t, kwargs):
        seen.append(kwargs["latents"].device)
        return kwargs

    pipe(2, class_labels=[0, 1], guidance_scale=3.0, num_inference_steps=2, generator=gen(),
         guidance_interval=(0.2, 0.8), weak_unet=weak, callback_on_step_end=keep)
    pipe(2, num_inference_steps=2, generator=gen())  # the null class, unguided
    assert seen == [gpu, gpu]
    with pytest.raises(ValueError, match=r"weak_unet is on cpu.*weak_unet\.to\(pipe\.device\)"):
        pipe(1, class_labels=0, guidance_scale=2.0, num_inference_steps=2, generator=gen(),
             weak_unet=weak.to("cpu"))


def test_notebook_04s_experiments_on_the_device(gpu) -> None:
    cpu = tiny_pipe(latent=True)
    expected = experiments.collect_trajectory(cpu, seed=0, steps=3, scheduler="ddim")
    pipe = copy.deepcopy(cpu).to(gpu)
    traj = experiments.collect_trajectory(pipe, seed=0, steps=3, scheduler="ddim")
    torch.testing.assert_close(traj.x0.cpu(), expected.x0, atol=tol(1e-4), rtol=0)
    noise = experiments.initial_noise(pipe, 2, experiments.seeded(3))
    expected_noise = experiments.initial_noise(cpu, 2, experiments.seeded(3))
    torch.testing.assert_close(noise.cpu(), expected_noise)
    ddim = {"scheduler": "ddim", "steps": 2, "class_label": 1, "guidance": 2.0}
    a = experiments.sample(pipe, latents=noise, **ddim)  # the saved noise is the image
    assert torch.equal(a.cpu(), experiments.sample(pipe, seed=3, n=2, **ddim).cpu())
    sweep = experiments.guidance_sweep(pipe, ["circle"], [1, 2], n=2, steps=2, measure=True)
    assert len(sweep.table) == 2 and experiments.diversity(sweep.images["circle", 2.0]) >= 0


def test_evaluation_samples_on_the_device_and_scores_on_the_cpu(gpu) -> None:
    pipe = tiny_pipe().to(gpu)
    samples, labels = generate_samples(pipe, 6, steps=2, seed=0, progress=False)
    assert samples.dtype == np.uint8 and labels == [0, 1, 2, 0, 1, 2]
    result = evaluate_pipeline(pipe, images(12), EvalConfig(n=6, steps=2), progress=False)
    assert np.isfinite(result.report.fd)


# ---------------------------------------------------------------- training on the device


@pytest.mark.parametrize("objective", sorted(OBJECTIVES))
def test_every_objective_s_loss_on_the_device_is_the_cpu_loss(gpu, objective: str) -> None:
    config = tiny_config(prediction_type=objective, **OBJECTIVES[objective].config_defaults)
    obj = objective_for(config)
    unet = build_unet(TINY, ["a", "b"], seed=0)
    x0 = torch.randn(4, 3, 16, 16, generator=gen(0))
    noise = torch.randn(4, 3, 16, 16, generator=gen(1))
    t = obj.draw_times(4, gen(2))
    labels = torch.tensor([0, 1, 2, 0])
    expected = obj(unet, x0, noise, t, labels)
    on = [v.to(gpu) for v in (x0, noise, t, labels)]
    loss = obj(copy.deepcopy(unet).to(gpu), *on)
    assert loss.device == gpu
    torch.testing.assert_close(loss.cpu(), expected, atol=tol(1e-5), rtol=1e-5)


@pytest.mark.parametrize("immiscible", [False, True], ids=["plain", "immiscible"])
def test_the_training_step_on_the_device_is_the_cpu_step(gpu, data, immiscible: bool) -> None:
    config = tiny_config(batch_size=4, immiscible=immiscible)
    objective = objective_for(config)
    memory = training_data(data, config)
    losses = {}
    for device in ("cpu", gpu):
        process = OneProcess()
        process.device = torch.device(device)  # where pddlib's step puts the batch
        unet, optimizer, ema = new_model(config, class_names_of_dataset(data))
        unet.to(device)
        ema.to(device)
        losses[str(device)] = [
            train_step(process, unet, optimizer, ema, objective, config,
                       draw_batch(config, step, len(memory.x), objective), memory.to(device),
                       null_class(unet)) for step in range(2)]
    cpu, on_gpu = losses.values()
    assert cpu[0] == pytest.approx(on_gpu[0], abs=tol(1e-6))  # the same weights, the same batch
    assert cpu[1] == pytest.approx(on_gpu[1], abs=tol(1e-5))  # after one AdamW step


def test_the_autoencoder_trains_on_the_device_as_on_the_cpu(gpu) -> None:
    config = AutoencoderConfig(block_out_channels=(8, 16, 32), norm_num_groups=8, steps=2,
                               batch_size=4)
    x = torch.rand(6, 3, 32, 32, generator=gen()) * 2 - 1
    on_cpu = build_autoencoder(config)
    on_gpu = copy.deepcopy(on_cpu).to(gpu)
    for vae, images in ((on_cpu, x), (on_gpu, x.to(gpu))):
        autoencoder_loss(vae, images, config.kl_weight, gen(1)).backward()
    for (name, p), q in zip(on_gpu.named_parameters(), on_cpu.parameters(), strict=True):
        torch.testing.assert_close(p.grad.cpu(), q.grad, atol=tol(1e-6), rtol=1e-4, msg=name)
    expected = train_autoencoder(x, config, progress=False, device="cpu")
    vae = train_autoencoder(x, config, progress=False, device=gpu)
    assert vae.device == gpu
    # Adam moves weights whose gradient is rounding noise (biases before a GroupNorm) by +-lr
    # either way, so the runs are compared where it adds up: the latents' scale.
    assert vae.config.scaling_factor == pytest.approx(expected.config.scaling_factor,
                                                      rel=1e-3 if ON_CUDA else 1e-4)
