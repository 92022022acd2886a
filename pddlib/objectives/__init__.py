"""The training objectives by name: the one registry the trainer, the CLI, the samplers and the card read.

A new objective is one file in this package (a subclass of `base.Objective`) and one line in
OBJECTIVES. Its name is what `TrainConfig.prediction_type` holds.
"""

from __future__ import annotations

from pddlib.objectives.base import Objective
from pddlib.objectives.epsilon import Epsilon
from pddlib.objectives.flow_matching import FlowMatching
from pddlib.objectives.v_prediction import VPrediction

OBJECTIVES: dict[str, type[Objective]] = {
    "v_prediction": VPrediction,
    "epsilon": Epsilon,
    "flow": FlowMatching,
}


def objective_class(name: str) -> type[Objective]:
    """The objective registered as `name`, or one clear error listing the known ones."""
    if name not in OBJECTIVES:
        raise ValueError(f"Unknown objective (prediction_type) {name!r}; choose one of "
                         f"{list(OBJECTIVES)}.")
    return OBJECTIVES[name]


def describe(name: str) -> str:
    """One line for the model card: the objective's name and its docstring's first line."""
    cls = OBJECTIVES.get(name)
    summary = (cls.__doc__ or "").strip().splitlines()[0] if cls is not None else ""
    return f"`{name}`" + (f": {summary}" if summary else "")


def objective_for(config) -> Objective:
    """The objective a TrainConfig trains with, checked against the config's other fields."""
    return objective_class(config.prediction_type).from_config(config)


def objective_of(scheduler) -> Objective:
    """The objective a saved model was trained with, read from its pipeline's scheduler."""
    for cls in OBJECTIVES.values():
        if cls.owns(scheduler):
            return cls.from_scheduler(scheduler)
    raise ValueError(f"No registered objective samples with a {type(scheduler).__name__} "
                     f"({dict(scheduler.config).get('prediction_type')!r}).")
