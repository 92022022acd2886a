"""Check pddlib's FID InceptionV3 port against torch-fidelity's, with identical random weights.

torch-fidelity cannot be imported here (its package imports torchvision), so its modules are
loaded from an unpacked wheel without running its __init__:

    pip download torch-fidelity --no-deps -d /tmp/tfid && unzip /tmp/tfid/*.whl -d /tmp/tfid/src
    python scripts/check_fid_port.py /tmp/tfid/src/torch_fidelity

Prints the largest differences of the TF1 resize and of the 2048-d features (0.0 = bit-exact).
This checks the graph and preprocessing; it cannot check the real weights, which need a download.
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
import types
from pathlib import Path

import torch

from pddlib.metrics.inception import FIDInceptionV3, tf1_resize_bilinear


def load_torch_fidelity(root: Path):
    """Import torch-fidelity's InceptionV3 module from its source folder, skipping its __init__."""
    pkg = types.ModuleType("torch_fidelity")
    pkg.__path__ = [str(root)]
    sys.modules["torch_fidelity"] = pkg
    module = None
    for name in ("defaults", "deprecations", "helpers", "feature_extractor_base",
                 "interpolate_compat_tensorflow", "feature_extractor_inceptionv3"):
        spec = importlib.util.spec_from_file_location(f"torch_fidelity.{name}", root / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    return module


def main(root: Path) -> int:
    """Compare resize and features on random uint8 images; exit 1 on a mismatch."""
    ref_mod = load_torch_fidelity(root)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        ours = FIDInceptionV3().eval()
        with torch.no_grad():  # non-trivial BatchNorm statistics, so every parameter matters
            for m in ours.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.running_mean.uniform_(-0.2, 0.2)
                    m.running_var.uniform_(0.5, 2.0)
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.uniform_(-0.1, 0.1)
    # Saved like the reference file: no num_batches_tracked buffers.
    state = {k: v for k, v in ours.state_dict().items() if not k.endswith("num_batches_tracked")}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "random.pth"
        torch.save(state, path)
        ref = ref_mod.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"],
                                                  feature_extractor_weights_path=str(path))
    x = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8,
                      generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        resize = (tf1_resize_bilinear(x.float(), 299) - ref_mod.interpolate_bilinear_2d_like_tensorflow1x(
            x.float(), size=(299, 299), align_corners=False)).abs().max().item()
        feats = (ours(x) - ref(x)[0]).abs().max().item()
    print(f"TF1 resize 32->299: max abs difference {resize}")
    print(f"2048-d features:    max abs difference {feats}")
    return 0 if resize == 0 and feats < 1e-5 else 1


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
