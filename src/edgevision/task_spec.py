"""The spec base of registered models for tasks other than classification (segmentation, detection,
super-resolution, depth).

A classifier is a :class:`~edgevision.network.NetworkSpec`; a dense model is a backbone's features
plus a task head, so its spec is a different kind that *contains* network/block specs. Subclasses are
frozen, typed dataclasses like every spec (JSON round trip, validation) and implement this protocol,
which ``registry.create_model`` and the commands read:

- ``name: str`` — the registered name; ``task`` (class attribute) — one of ``TASK_NAMES``;
- ``in_channels: int`` and ``input_size`` (int or (H, W)) — the published resolution, the default
  for ``measure``/``bench``/``export``;
- ``num_classes: int`` where the task has classes, and ``with_classes(n)`` returning a new spec;
- ``build() -> torch.nn.Module`` — the model in train form (the re-parameterization walker and the
  weight importer apply to it like to any module).
"""

from __future__ import annotations

from typing import ClassVar

from .spec import Spec

__all__ = ["TASK_NAMES", "TaskModelSpec"]

#: the tasks ``train --task`` / ``eval --task`` / ``models --task`` know, classification first
TASK_NAMES = ("classification", "segmentation", "detection", "super-resolution", "depth")


class TaskModelSpec(Spec):
    """Base of non-classification model specs (no fields of its own; see the module docstring)."""

    task: ClassVar[str] = ""

    def build(self):  # -> torch.nn.Module
        raise NotImplementedError(f"{type(self).__name__} does not implement build()")

    def with_classes(self, num_classes: int) -> "TaskModelSpec":
        raise ValueError(f"{getattr(self, 'name', type(self).__name__)} has no class count to change")
