"""Checked exercises: a learner's answer compared with pddlib's, and the student edition's stubs.

A "your turn" cell holds the solution between two marker lines (nbgrader's convention):

    def my_loss(...):
        # Hint: the target of v-prediction is sqrt(abar) eps - sqrt(1 - abar) x0.
        ### BEGIN SOLUTION
        ...
        ### END SOLUTION

The student edition replaces everything between the markers (and the markers) with a
`raise NotImplementedError` that repeats the hint, indented like the solution. The next cell
calls `check`, which says in one line what is wrong, or that the answer matches.
`check_that` does the same for a property with no reference value (a range, a shape), and
`OneProcess` lets a check cell replay `pddlib.training.train_step` beside a learner's loop.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable

import torch

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
HINT = re.compile(r"^\s*#\s*Hint:\s*(?P<hint>.+)$")


class ExerciseError(AssertionError):
    """A learner's answer that does not match: the message says what differs and how to look."""


def _describe(x) -> str:
    """What an answer is, in a few words: for a tensor its shape and dtype."""
    if isinstance(x, torch.Tensor):
        return f"a tensor of shape {tuple(x.shape)} ({x.dtype})"
    return f"{type(x).__name__} {x!r}"[:80]


def check(name: str, got, expected, *, atol: float = 1e-5, rtol: float = 1e-4,
          hint: str = "", reference: str = "pddlib's") -> float:
    """Raise ExerciseError naming what is wrong unless `got` matches `expected`; else print so.

    Tensors (or numbers) are compared to the tolerance; the largest difference is returned.
    `reference` names where `expected` comes from in the messages ("diffusers'", ...).
    """
    tip = f" {hint}" if hint else ""
    if got is None:
        raise ExerciseError(f"{name}: your code returned None; did you forget `return`?{tip}")
    if isinstance(expected, torch.Tensor):
        if not isinstance(got, torch.Tensor):
            raise ExerciseError(f"{name}: expected a tensor, got {_describe(got)}.{tip}")
        if got.shape != expected.shape:
            raise ExerciseError(f"{name}: expected shape {tuple(expected.shape)}, got "
                                f"{tuple(got.shape)}.{tip}")
        got, expected = got.detach().double().cpu(), expected.detach().double().cpu()
    else:
        got, expected = torch.as_tensor(float(got)), torch.as_tensor(float(expected))
    if not torch.isfinite(got).all():
        raise ExerciseError(f"{name}: your answer has NaN or infinite values.{tip}")
    gap = float((got - expected).abs().max())
    if not torch.allclose(got, expected, atol=atol, rtol=rtol):
        raise ExerciseError(f"{name}: your answer differs from {reference} by up to {gap:.3g} "
                            f"(allowed about {atol:g}).{tip}")
    print(f"{name}: correct (largest difference from {reference} answer {gap:.1e}).")
    return gap


def check_that(name: str, ok: bool, problem: str, *, hint: str = "") -> None:
    """Raise ExerciseError with `problem` unless `ok`; else print that this part is right."""
    if not ok:
        raise ExerciseError(f"{name}: {problem}" + (f" {hint}" if hint else ""))
    print(f"{name}: correct.")


class OneProcess:
    """What `pddlib.training.train_step` asks of an accelerate Accelerator, for one CPU process.

    A check cell replays pddlib's own step with it; a real Accelerator would fix the kernel's
    device and precision for every later `train()` call.
    """

    num_processes = 1
    process_index = 0
    device = torch.device("cpu")

    def backward(self, loss: torch.Tensor) -> None:
        """Gradients of the loss."""
        loss.backward()

    def reduce(self, tensor: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        """One process: nothing to average over."""
        return tensor

    def clip_grad_norm_(self, parameters: Iterable[torch.Tensor], max_norm: float) -> torch.Tensor:
        """Scale the gradients down together when their global norm exceeds max_norm."""
        return torch.nn.utils.clip_grad_norm_(parameters, max_norm)

    def unwrap_model(self, model: torch.nn.Module) -> torch.nn.Module:
        """One process: the model is not wrapped."""
        return model

    def no_sync(self, model: torch.nn.Module) -> contextlib.AbstractContextManager:
        """One process: there is nothing to synchronise."""
        return contextlib.nullcontext()


def student_source(source: str) -> str:
    """A cell's source with each solution block replaced by a stub that raises with its hint."""
    out: list[str] = []
    hint, inside = "", False
    for line in source.splitlines(keepends=True):
        stripped = line.strip()
        if stripped == BEGIN:
            inside, indent = True, line[: len(line) - len(line.lstrip())]
            message = f"Your turn: {hint}" if hint else "Your turn: fill in this part."
            out.append(f"{indent}raise NotImplementedError({message!r})\n")
        elif stripped == END:
            if not inside:
                raise ValueError(f"{END!r} without {BEGIN!r} in:\n{source}")
            inside = False
        elif not inside:
            match = HINT.match(line)
            hint = match["hint"].strip() if match else hint
            out.append(line)
    if inside:
        raise ValueError(f"{BEGIN!r} without {END!r} in:\n{source}")
    return "".join(out)


def has_solution(source: str) -> bool:
    """Whether a cell holds a solution block."""
    return any(line.strip() == BEGIN for line in source.splitlines())
