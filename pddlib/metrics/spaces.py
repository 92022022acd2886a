"""The feature spaces by name: the one registry that every image comparison reads.

FD / KID / precision-recall (pddlib.metrics.quality) use the spaces with an `fd_name`;
replication and the copy guard use those marked `replication`; `pddlib eval --features` offers
the former. A new space is one module that builds a FeatureSpace (pddlib.metrics.featurespace)
plus one line in BUILT_IN, or `register(space)` at run time.
"""

from __future__ import annotations

from pddlib.metrics import copydetect, inception, judge, pixelspace, sscd
from pddlib.metrics.featurespace import FeatureSpace

# Registration order is the order the CLI and error messages list the names in.
BUILT_IN = (
    pixelspace.SPACE,
    copydetect.SPACE,
    judge.space("pdshape"),
    # pdcls encodes the class more than the drawing: only a near-exact copy passes 0.99.
    judge.space("pdcls", replication=True, threshold=0.99),
    sscd.SPACE,
    inception.SPACE,
)
SPACES: dict[str, FeatureSpace] = {space.name: space for space in BUILT_IN}


def register(space: FeatureSpace) -> FeatureSpace:
    """Add a feature space under its name (a name already taken is an error); return it."""
    if space.name in SPACES and SPACES[space.name] != space:
        raise ValueError(f"a feature space {space.name!r} is already registered")
    SPACES[space.name] = space
    return space


def unregister(name: str) -> None:
    """Remove the feature space called `name` (nothing happens when there is none)."""
    SPACES.pop(name, None)


def get_space(name: str) -> FeatureSpace:
    """The feature space called `name`, with one clear error naming the choices."""
    if name not in SPACES:
        raise ValueError(f"unknown features {name!r}: choose one of {', '.join(SPACES)}.")
    return SPACES[name]


def quality_spaces() -> tuple[str, ...]:
    """Names of the spaces FD, KID and precision / recall are measured in (an `fd_name`)."""
    return tuple(name for name, space in SPACES.items() if space.fd_name)


def replication_spaces() -> tuple[str, ...]:
    """Names of the spaces replication and the copy guard search for nearest neighbours in."""
    return tuple(name for name, space in SPACES.items() if space.replication)


def quality_space(name: str) -> FeatureSpace:
    """The space called `name` if sample quality is measured there, else one clear error."""
    space = get_space(name)
    if not space.fd_name:
        raise ValueError(f"unknown features {name!r} for FD, KID and precision / recall: choose "
                         f"one of {', '.join(quality_spaces())}.")
    return space
