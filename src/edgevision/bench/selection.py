"""Which models a bench run measures: name patterns, and the ``efficient`` set (the mobile regime).

Library code, so a Python user selects models exactly as ``edgevision bench --models`` does; the CLI
turns the ``ValueError`` of an unmatched pattern into its one-line usage error.
"""

from __future__ import annotations

from typing import Iterable

__all__ = ["EFFICIENT", "EFFICIENT_MACS", "efficient_models", "select_models"]

EFFICIENT = "efficient"  # the pattern that means "every model under EFFICIENT_MACS"
EFFICIENT_MACS = 1e9  # deploy-form multiply-accumulates at 224x224


def efficient_models(names: Iterable[str] | None = None) -> list[str]:
    """Registered models (or ``names``) under ``EFFICIENT_MACS`` at 224x224 in deploy form.

    Counted on the meta device (shapes only, no arithmetic): about 30 s for the whole zoo on 2 cores.
    """
    import torch

    from ..counting import count_macs
    from ..registry import create_model, list_models
    from ..reparam import reparameterize

    selected = []
    for name in list_models() if names is None else names:
        with torch.device("meta"):
            if count_macs(reparameterize(create_model(name), inplace=True), 224) <= EFFICIENT_MACS:
                selected.append(name)
    return selected


def select_models(patterns: Iterable[str]) -> tuple[str, ...]:
    """Model names for shell patterns (and ``EFFICIENT``), in order, without repeats.

    Raises ``ValueError`` naming a pattern that matches no registered model.
    """
    from ..registry import list_models

    names: list[str] = []
    for pattern in patterns:
        # a pattern naming models of another task (a detector) matches them; '*' stays the classifier zoo
        matched = efficient_models() if pattern == EFFICIENT else (list_models(pattern) or list_models(pattern, task=None))
        if not matched:
            raise ValueError(f"no registered model matches {pattern!r}; see `edgevision models`")
        names += [name for name in matched if name not in names]
    return tuple(names)
