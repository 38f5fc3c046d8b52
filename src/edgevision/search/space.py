"""What a search runs over: a :class:`~edgevision.lut.SearchSpace` or a supernet (a network spec with choice blocks).

Both are specs and both answer the same two questions, so every strategy takes either:

* :func:`decide` walks the choices with a ``choose(name, options)`` callback (a seeded RNG for
  ``random``, ``trial.suggest_categorical`` for Optuna's samplers) and returns a plain network;
* :func:`as_supernet` gives the layer-wise supernet the differentiable strategies train
  (``SearchSpace.supernet`` converts a space; a supernet is returned as is).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Union

from ..blocks.choice import choice_blocks, choose as choose_path, is_supernet
from ..lut.space import SearchSpace, get_space, network_id
from ..network import NetworkSpec

__all__ = ["Space", "as_supernet", "decide", "fastest_network", "load_space", "space_name", "with_classes"]

Space = Union[SearchSpace, NetworkSpec]


def load_space(space: Space | str) -> Space:
    if isinstance(space, str):
        return get_space(space)  # ValueError names the known spaces
    if isinstance(space, SearchSpace) or (isinstance(space, NetworkSpec) and is_supernet(space)):
        return space
    raise TypeError(f"a search space is a SearchSpace, a supernet NetworkSpec or a space name, got {type(space).__name__}")


def space_name(space: Space) -> str:
    return space.name


def with_classes(space: Space, num_classes: int) -> Space:
    if isinstance(space, SearchSpace):
        return space.replace(num_classes=num_classes)
    return space.with_classes(num_classes)


def decide(space: Space, choose: Callable[[str, tuple], object]) -> NetworkSpec:
    """The plain network ``choose(name, options)`` picks in ``space`` (named ``<space>-<id>``)."""
    if isinstance(space, SearchSpace):
        return space.decide(choose)
    picks = [int(choose(block.name or f"layer{index}", tuple(range(len(block.candidates))))) for index, block in enumerate(choice_blocks(space))]
    network = choose_path(space, picks)
    base = space.name.removesuffix("-supernet")
    return dataclasses.replace(network, name=f"{base}-{network_id(network)}")


def as_supernet(space: Space) -> NetworkSpec:
    return space.supernet() if isinstance(space, SearchSpace) else space


def fastest_network(space: Space, latency) -> tuple[NetworkSpec, float]:
    """The space's fastest network as the table prices it, and its predicted ms.

    For a :class:`SearchSpace`: its supernet at the narrowest widths, the fastest candidate per layer
    (kinds may mix across layers), a lower bound on what ``decide`` can draw.
    """
    if isinstance(space, SearchSpace):
        supernet = space.supernet(widths=tuple(min(s.widths) for s in space.stages), stem_width=min(space.stem_widths))
    else:
        supernet = space
    indices, _ = latency.supernet_latency(supernet).fastest()
    network = choose_path(supernet, indices)
    network = dataclasses.replace(network, name=f"{space.name.removesuffix('-supernet')}-{network_id(network)}")
    return network, latency.network_ms(network)
