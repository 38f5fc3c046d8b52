"""``train --task super-resolution`` / ``eval --task super-resolution``: placeholder until the task lands."""

from __future__ import annotations

import argparse

from .._common import UsageError

__all__ = ["add_arguments", "train", "evaluate"]


def add_arguments(group, command: str) -> None:
    """This task's own options on ``edgevision {command}`` (none yet)."""


def train(args: argparse.Namespace) -> int:
    raise UsageError("--task super-resolution is not available in this version; use --task classification")


def evaluate(args: argparse.Namespace, metadata: dict) -> int:
    raise UsageError("--task super-resolution is not available in this version; use --task classification")
