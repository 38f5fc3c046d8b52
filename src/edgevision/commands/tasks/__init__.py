"""``train --task`` / ``eval --task`` for the tasks beyond classification: one CLI module per task.

Each module (``segmentation``, ``detection``, ``super_resolution``, ``depth``) provides

- ``add_arguments(parser, command)``: its own options (``command`` is ``"train"`` or ``"eval"``),
  added to an argument group of that command; import nothing heavy at module level (the CLI
  builds every parser at start-up);
- ``train(args) -> int`` and ``evaluate(args, metadata) -> int``: the work, given the parsed
  arguments of ``edgevision train`` / ``edgevision eval`` (``metadata``: the checkpoint's).
- ``default_out(args) -> Path``: the run folder when ``--out`` is not given; ``train`` locks it
  (a second training into the same default folder is refused) before calling the task's ``train``.

The library code lives in the task's package (``edgevision.segmentation``, ...); these modules
only translate arguments and errors (``UsageError``) and print.
"""

from __future__ import annotations

import argparse
import importlib

from ...task_spec import TASK_NAMES

__all__ = ["DENSE_TASKS", "add_task_arguments", "task_command"]

#: task name -> module in this package
DENSE_TASKS = {"segmentation": "segmentation", "detection": "detection", "super-resolution": "super_resolution", "depth": "depth"}
assert tuple(DENSE_TASKS) == TASK_NAMES[1:]


def task_command(task: str):
    """The CLI module of a dense task."""
    return importlib.import_module(f"{__name__}.{DENSE_TASKS[task]}")


def add_task_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    """``--task`` plus every dense task's own options, each task in its own help group."""
    for task in DENSE_TASKS:
        task_command(task).add_arguments(parser.add_argument_group(f"--task {task}"), command)
