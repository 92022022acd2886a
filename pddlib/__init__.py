"""pddlib: the helper package of the PD-Diffusion course (public-domain images only)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("pddlib")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
