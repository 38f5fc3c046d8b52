"""Model registry: names users know (timm / torchvision conventions) -> network specs.

Registering a name twice raises; unknown names raise with the closest names suggested;
``list_models`` filters with shell-style patterns (``"ghost*"``).
"""

from __future__ import annotations

import difflib
import fnmatch
from typing import Callable

from .network import NetworkSpec

__all__ = ["register_model", "list_models", "get_spec", "create_model", "UnknownModelError"]

_SPECS: dict[str, Callable[[], NetworkSpec]] = {}
_FAMILY: dict[str, str] = {}
_TASK: dict[str, str] = {}  # name -> one of task_spec.TASK_NAMES


class UnknownModelError(KeyError, ValueError):
    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def register_model(name: str, family: str, task: str = "classification") -> Callable[[Callable[[], NetworkSpec]], Callable[[], NetworkSpec]]:
    """Decorator: ``@register_model("mobilenetv2_100", family="mobilenetv2")`` on a spec factory.

    Models of other tasks pass ``task=`` (``"segmentation"``, ...) and their factory returns a
    :class:`~edgevision.task_spec.TaskModelSpec`.
    """
    from .task_spec import TASK_NAMES

    if task not in TASK_NAMES:
        raise ValueError(f"unknown task {task!r} for model {name!r}; one of {', '.join(TASK_NAMES)}")

    def decorator(factory: Callable[[], NetworkSpec]) -> Callable[[], NetworkSpec]:
        if name in _SPECS:
            raise ValueError(f"model {name!r} is registered twice")
        _SPECS[name] = factory
        _FAMILY[name] = family
        _TASK[name] = task
        return factory

    return decorator


def _ensure_loaded() -> None:
    from . import models  # noqa: F401  (importing the package registers every family)


def list_models(pattern: str | list[str] | tuple[str, ...] = "*", task: str | None = "classification") -> list[str]:
    """Registered model names matching a pattern (or any of several), sorted.

    ``task``: only models of that task (default: the classifiers, the zoo); ``None``: every task.
    """
    _ensure_loaded()
    patterns = [pattern] if isinstance(pattern, str) else list(pattern)
    return sorted(
        name for name in _SPECS
        if (task is None or _TASK[name] == task) and any(fnmatch.fnmatchcase(name, p) for p in patterns)
    )


def model_task(name: str) -> str:
    """The task a registered model is for (``"classification"``, ``"segmentation"``, ...)."""
    _ensure_loaded()
    _check_name(name)
    return _TASK[name]


def model_family(name: str) -> str:
    _ensure_loaded()
    _check_name(name)
    return _FAMILY[name]


def suggest(name: str, limit: int = 3) -> list[str]:
    """Registered names closest to ``name``: names extending it first, then by similarity."""
    _ensure_loaded()
    stem = name.rstrip("*?[]")
    prefixed = sorted(n for n in _SPECS if stem and n.startswith(stem))
    similar = difflib.get_close_matches(stem, list(_SPECS), n=limit, cutoff=0.5)
    return list(dict.fromkeys(prefixed + similar))[:limit]


def _check_name(name: str) -> None:
    if not isinstance(name, str):
        raise TypeError(f"a model name must be a string such as 'mobilenetv2_100', got {name!r} ({type(name).__name__})")
    if name not in _SPECS:
        close = suggest(name)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see `edgevision models` for the list"
        raise UnknownModelError(f"unknown model {name!r}{hint}")


def get_spec(name: str) -> NetworkSpec:
    """The registered network spec of a model (the published configuration); a
    :class:`~edgevision.task_spec.TaskModelSpec` for models of other tasks."""
    _ensure_loaded()
    _check_name(name)
    spec = _SPECS[name]()
    if spec.name != name:
        raise AssertionError(f"registered factory for {name!r} returned a spec named {spec.name!r}")
    return spec


def create_model(
    name: str,
    num_classes: int | None = None,
    in_chans: int | None = None,
    pretrained=None,
    pretrained_source: str | None = None,
    *,
    features_only: bool = False,
    out_indices: int | tuple[int, ...] | None = None,
    output_stride: int | None = None,
):
    """Build a registered model in train form.

    ``pretrained``: a timm / torchvision / official weights file to import (``edgevision.weights``);
    ``pretrained_source`` names its layout (``"timm"``, ``"torchvision"``, ``"official"``), inferred
    from the tensor names when omitted. The classifier is re-initialised when ``num_classes`` differs
    from the file's; the stem is adapted when ``in_chans`` is not 3.

    ``features_only=True``: a backbone returning the pyramid levels ``out_indices`` (None: all; an int
    n: the last n), cut after the last one (``model.feature_info`` describes them). ``output_stride``
    (32, 16 or 8) turns the strides beyond it into dilation.

    ``num_classes`` / ``in_chans`` None: 1000 and 3 for classifiers, as in timm.
    Models of other tasks (``TaskModelSpec``) take ``num_classes``, ``in_chans`` (where their spec
    supports it) and ``pretrained``.
    """
    from .builder import build
    from .features import features_spec
    from .task_spec import TaskModelSpec

    spec = get_spec(name)
    if isinstance(spec, TaskModelSpec):
        return _create_task_model(spec, num_classes, in_chans, pretrained, pretrained_source, features_only, out_indices, output_stride)
    num_classes = 1000 if num_classes is None else num_classes  # ImageNet's, as timm (CIFAR specs too: see wide_resnet.py)
    in_chans = 3 if in_chans is None else in_chans
    if out_indices is not None and not features_only:
        raise ValueError("out_indices needs features_only=True (a classifier returns logits, not feature maps)")
    if num_classes != spec.head.num_classes and not features_only:
        spec = spec.with_classes(num_classes)
    if in_chans != spec.in_channels:
        spec = spec.with_input_channels(in_chans)
    if output_stride != spec.output_stride:
        spec = spec.with_output_stride(output_stride)
    if features_only:
        backbone = features_spec(spec, out_indices)
        if pretrained is None:
            return build(backbone)
        # the file holds the whole classifier network: import into it, then keep the backbone's tensors
        # (its module paths are a prefix of the full network's: stem.*, stages.*) and any BatchNorm eps
        # the import carried into its spec
        from .weights import load_pretrained_any_form

        full, report = load_pretrained_any_form(build(spec), pretrained, source=pretrained_source)
        model = build(backbone.with_norm_eps(full.spec.norm_eps))
        if report.form == "deploy":  # a re-parameterized file: the backbone's deploy form
            from .reparam import reparameterize

            model = reparameterize(model)
        loaded = model.load_state_dict(full.state_dict(), strict=False)
        if loaded.missing_keys:  # only the classifier may be left out, never a backbone tensor
            raise AssertionError(f"backbone tensors missing from the imported network: {loaded.missing_keys[:5]}")
        return model
    model = build(spec)
    return model if pretrained is None else _pretrained(model, pretrained, pretrained_source)


def _create_task_model(spec, num_classes, in_chans, pretrained, pretrained_source, features_only, out_indices, output_stride):
    if features_only or out_indices is not None or output_stride is not None:
        raise ValueError(f"{spec.name} is a {spec.task} model; features_only/out_indices/output_stride apply to classifier backbones (its spec chooses its own)")
    if num_classes is not None and num_classes != getattr(spec, "num_classes", num_classes):
        spec = spec.with_classes(num_classes)
    if in_chans is not None and in_chans != spec.in_channels:
        if not hasattr(spec, "with_input_channels"):
            raise ValueError(f"{spec.name} takes {spec.in_channels} input channels, not {in_chans}")
        spec = spec.with_input_channels(in_chans)
    model = spec.build()
    return model if pretrained is None else _pretrained(model, pretrained, pretrained_source)


def _pretrained(model, path, source):
    from .weights import load_pretrained_any_form

    return load_pretrained_any_form(model, path, source=source)[0]  # a re-parameterized file: the deploy form
