"""What every command shares: the one-line user error, number formatting, a stderr console."""

from __future__ import annotations

import argparse
import contextlib
import math
import os
from pathlib import Path
from typing import Iterator

from ..console import human, stderr_console  # noqa: F401  (re-exported: every command uses them)

__all__ = [
    "UsageError",
    "human",
    "load_model_argument",
    "parse_shape",
    "select_runtimes",
    "stderr_console",
    # argparse ``type=`` validators: a bad value is refused at parse time, before any work
    "count",
    "finite_float",
    "fraction",
    "int_in",
    "nonempty",
    "nonnegative_float",
    "nonnegative_int",
    "output_dir",
    "output_file",
    "output_lock",
    "float_in",
    "positive_float",
    "positive_int",
    "seed",
    "threads",
    "check_input_memory",
    "check_input_for_model",
]

#: the largest sane value of a count option (threads, epochs, networks, bins...): far above any real use,
#: small enough that nothing downstream overflows or loops for hours
MAX_COUNT = 2**31 - 1


class UsageError(Exception):
    """A user error: printed as one line on stderr, exit code 2, no traceback."""


def _number(text: str, kind: type, what: str):
    try:
        value = kind(text.strip())
    except (ValueError, AttributeError, OverflowError):
        raise argparse.ArgumentTypeError(f"invalid {kind.__name__} value: {text!r} (expected {what})") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be finite, got {text!r} (expected {what})")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0: budgets, rates, tolerances."""
    value = _number(text, float, "a positive number")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive (a finite number > 0), got {text!r}")
    return value


def finite_float(text: str) -> float:
    """Any finite number (a threshold in dB, which may be negative): NaN and infinity are refused."""
    return _number(text, float, "a finite number")


def nonnegative_float(text: str) -> float:
    value = _number(text, float, "a non-negative number")
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return value


def fraction(text: str) -> float:
    """A number strictly between 0 and 1 (an EMA decay, a probability)."""
    value = _number(text, float, "a number between 0 and 1")
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be strictly between 0 and 1, got {text!r}")
    return value


def float_in(low: float, high: float, what: str, *, low_open: bool = False, high_open: bool = False):
    """An argparse type accepting finite numbers in [low, high] (``low_open``/``high_open``: that end excluded)."""

    def parse(text: str) -> float:
        value = _number(text, float, what)
        if value < low or (low_open and value == low) or value > high or (high_open and value == high):
            interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
            raise argparse.ArgumentTypeError(f"must be in {interval} ({what}), got {text!r}")
        return value

    parse.__name__ = f"float_in_{low:g}_{high:g}"
    return parse


def int_in(low: int, high: int, what: str = "an integer"):
    """An argparse type accepting integers in [low, high]."""

    def parse(text: str) -> int:
        value = _number(text, int, what)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low} ({what}), got {text!r}")
        if value > high:
            raise argparse.ArgumentTypeError(f"must be <= {high} ({what}), got {text!r}")
        return value

    parse.__name__ = f"int_in_{low}_{high}"
    return parse


positive_int = int_in(1, MAX_COUNT, "a positive integer")
nonnegative_int = int_in(0, MAX_COUNT, "a non-negative integer")
count = positive_int
seed = int_in(0, 2**32 - 1, "a seed")  # numpy and torch generators take 32-bit seeds
threads = int_in(1, 1024, "a thread count")


def nonempty(text: str) -> str:
    """A non-blank string (a path, a shape, a name): '' is refused instead of silently ignored."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def output_file(text: str) -> str:
    """A file path that can be written: not empty, not a directory or device, its directory writable, name not too long."""
    from ..atomic import check_writable

    nonempty(text)
    try:
        check_writable(text)
    except OSError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def output_dir(text: str) -> str:
    """A directory that exists and is writable, or can be created (its nearest existing ancestor is a writable directory)."""
    from ..validation import ValidationError, check_name_length

    nonempty(text)
    try:
        check_name_length(text, "directory")
    except ValidationError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    path = os.path.abspath(text)
    if os.path.exists(path):
        if not os.path.isdir(path):
            raise argparse.ArgumentTypeError(f"{text!r} exists and is not a directory; choose another path")
        if not os.access(path, os.W_OK | os.X_OK):
            raise argparse.ArgumentTypeError(f"directory {text!r} is not writable; choose another path")
        return text
    ancestor = os.path.dirname(path)
    while not os.path.exists(ancestor):
        ancestor = os.path.dirname(ancestor)
    if not os.path.isdir(ancestor):
        raise argparse.ArgumentTypeError(f"cannot create {text!r}: {ancestor!r} is a file, not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"cannot create {text!r}: {ancestor!r} is not writable")
    return text


@contextlib.contextmanager
def output_lock(directory: str | os.PathLike, what: str, *, enabled: bool = True) -> Iterator[None]:
    """Create ``directory`` and hold its ``.lock`` while a command writes there: a second writer (two trainings into
    one run folder, two deploys into one --out) is refused at once with a line naming the first; a killed holder's
    lock is released by the kernel; the temporaries its killed writes left in ``directory`` are removed once the lock is
    held. ``enabled=False`` (a non-zero DDP rank, which writes nothing) takes no lock."""
    from ..atomic import sweep_stale_temporaries
    from ..locking import exclusive_lock

    if not enabled:
        yield
        return
    path = Path(directory)
    created = [folder for folder in (path, *path.parents) if not folder.exists()]  # deepest first: runs/x, runs
    path.mkdir(parents=True, exist_ok=True)
    lock = path / ".lock"
    own_lock = not lock.exists()
    try:
        with exclusive_lock(lock, f"{what} {str(path)!r}", remove_on_error=own_lock):
            sweep_stale_temporaries(path)  # only files of writers no longer running: a kill -9 mid-write leaves them
            yield
    except BaseException:
        # a refused or failed run leaves behind no lock file and no folder it created (a folder only while empty);
        # the lock file is removed by exclusive_lock while still held, so no waiting writer can lock a stale one
        for folder in created:
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


def check_input_memory(shape: tuple[int, ...], option: str) -> None:
    """UsageError if a network input of ``shape`` (with its activations) cannot fit in this machine's memory."""
    from ..validation import ValidationError, check_shape

    try:
        check_shape(shape, option)
    except ValidationError as error:
        raise UsageError(str(error)) from None


def check_input_for_model(name: str, shape: tuple[int, ...] | None, wording: str = "cannot take input shape") -> None:
    """For a registered model: the input's channels and size must suit its spec (checked by resolving, before building)."""
    if shape is None:
        return
    from ..registry import get_spec, list_models
    from ..resolve import resolve

    if name not in list_models(name):
        return  # an .onnx file or a user model: checked when it runs
    spec = get_spec(name)
    channels, height, width = shape[-3:]
    text = "x".join(map(str, shape if len(shape) == 4 else (1, *shape)))
    if channels != spec.in_channels:
        raise UsageError(f"{name} {wording} {text}: it takes {spec.in_channels} input channel(s), not {channels}; e.g. --input 1x{spec.in_channels}x224x224")
    try:
        resolve(spec, input_size=(height, width))
    except ValueError as error:
        raise UsageError(f"{name} {wording} {text}: {error}") from None


def parse_shape(text: str, dims: tuple[int, ...] = (4,)) -> tuple[int, ...]:
    """'1x3x224x224' -> (1, 3, 224, 224); raises UsageError naming the expected form."""
    try:
        shape = tuple(int(part) for part in text.lower().replace(",", "x").split("x"))
    except ValueError:
        shape = ()
    if len(shape) not in dims or any(d < 1 for d in shape):
        forms = " or ".join({3: "CxHxW", 4: "NxCxHxW"}.get(d, f"{d} sizes") for d in dims)
        raise UsageError(f"input shape {text!r} is not {forms} with positive sizes; write e.g. 1x3x224x224")
    check_input_memory(shape if len(shape) == 4 else (1, *shape), "--input")
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
    except (Exception, SystemExit) as error:  # the user's file failed to import: say where
        raise UsageError(f"importing {path!r} failed: {type(error).__name__}: {error}") from None
    factory = getattr(module, factory_name, None)
    if not callable(factory):
        raise UsageError(f"{path!r} has no callable {factory_name!r}; give path/to/file.py:factory")
    try:
        model = factory()
    except (Exception, SystemExit) as error:  # raised inside the user's code, or it needs arguments: one line, not their traceback
        raise UsageError(f"{path}:{factory_name}() failed: {type(error).__name__}: {' '.join(str(error).split())[:300]}") from None
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
