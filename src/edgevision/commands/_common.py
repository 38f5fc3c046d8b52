"""What every command shares: the one-line user error, number formatting, a stderr console."""

from __future__ import annotations

from ..console import human, stderr_console  # noqa: F401  (re-exported: every command uses them)

__all__ = ["UsageError", "human", "load_model_argument", "parse_shape", "select_runtimes", "stderr_console"]


class UsageError(Exception):
    """A user error: printed as one line on stderr, exit code 2, no traceback."""


def parse_shape(text: str, dims: tuple[int, ...] = (4,)) -> tuple[int, ...]:
    """'1x3x224x224' -> (1, 3, 224, 224); raises UsageError naming the expected form."""
    try:
        shape = tuple(int(part) for part in text.lower().replace(",", "x").split("x"))
    except ValueError:
        shape = ()
    if len(shape) not in dims or any(d < 1 for d in shape):
        forms = " or ".join({3: "CxHxW", 4: "NxCxHxW"}.get(d, f"{d} sizes") for d in dims)
        raise UsageError(f"input shape {text!r} is not {forms} with positive sizes; write e.g. 1x3x224x224")
    return shape


def load_model_argument(text: str):
    """A registered model name, or ``path/to/file.py:factory`` (a function returning an nn.Module)."""
    import importlib.util
    from pathlib import Path

    from torch import nn

    from ..registry import create_model

    if ":" not in text or not text.split(":", 1)[0].endswith(".py"):
        try:
            return create_model(text)
        except KeyError as error:  # UnknownModelError: names the closest models
            raise UsageError(f"{error}; or give path/to/file.py:factory for a model of your own") from None
    path, factory_name = text.rsplit(":", 1)
    if not Path(path).is_file():
        raise UsageError(f"model file {path!r} does not exist; give path/to/file.py:factory")
    spec = importlib.util.spec_from_file_location(f"edgevision_user_model_{Path(path).stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as error:  # the user's file failed to import: say where
        raise UsageError(f"importing {path!r} failed: {type(error).__name__}: {error}") from None
    factory = getattr(module, factory_name, None)
    if not callable(factory):
        raise UsageError(f"{path!r} has no callable {factory_name!r}; give path/to/file.py:factory")
    model = factory()
    if not isinstance(model, nn.Module):
        raise UsageError(f"{path}:{factory_name}() returned {type(model).__name__}, not a torch.nn.Module")
    return model


def select_runtimes(choice: str, choices: tuple[str, ...]) -> tuple[str, ...]:
    """``--runtime`` -> runtime names: ``"all"`` is every available one of ``choices``; a single name must be installed."""
    from ..latency import RuntimeNotAvailable, available_runtimes, get_runtime

    if choice == "all":
        return tuple(name for name in available_runtimes() if name in choices)
    if choice not in choices:
        raise UsageError(f"unknown runtime {choice!r}; choose one of {', '.join(choices + ('all',))}")
    try:
        get_runtime(choice).check_available()
    except RuntimeNotAvailable as error:
        raise UsageError(str(error)) from None
    return (choice,)
