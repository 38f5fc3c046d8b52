"""Pretrained weights from timm, torchvision and the authors' releases, imported into zoo models.

``load_pretrained(model, path, source=...)`` renames a checkpoint's tensors with the family's
declarative key map (:mod:`edgevision.weights.maps`), checks every shape, uses every source tensor
exactly once and loads them; ``create_model(name, pretrained=path)`` does it at construction.
Files are read without unpickling code (:mod:`edgevision.weights.io`). Which models load from
which source, and how close their logits are to the reference implementations: docs/pretrained.md.
"""

from .importer import (
    SOURCES, DeployFormCheckpoint, ImportReport, adapt_input_conv, keymaps_for, load_pretrained, load_pretrained_any_form, map_state_dict,
    to_source_layout,
)
from .io import WeightImportError, read_checkpoint, read_state_dict
from .keymap import KeyMap

__all__ = [
    "SOURCES", "DeployFormCheckpoint", "ImportReport", "KeyMap", "WeightImportError", "adapt_input_conv", "keymaps_for", "load_pretrained",
    "load_pretrained_any_form", "map_state_dict", "read_checkpoint", "read_state_dict", "to_source_layout",
]
