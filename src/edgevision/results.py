"""Resumable results: one JSON line per finished measurement, appended atomically.

Each line is written with a single ``write`` on a file opened with ``O_APPEND`` and fsynced, so an
interrupted run (Ctrl-C, crash, kill) loses at most the measurement in progress; a torn last line
(kill -9 or power loss mid-write) is moved out of the file on load into ``results.jsonl.damaged``
beside it, with any other line that is not JSON, so the file stays valid JSON Lines and nothing is
thrown away; that measurement reruns. A line that is JSON but not a result row (another tool's
file, a hand edit) is refused by its line number (:class:`ResultsFileError`), the file untouched. Lines from another machine fingerprint, or measured with
other runtime versions, are refused unless the caller allows mixing: latencies from different
machines or runtime versions are not comparable.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

__all__ = ["MixedResultsError", "ResultStore", "ResultsFileError", "row_key", "row_problem"]


class MixedResultsError(ValueError):
    """The results file holds measurements from another machine or runtime version."""


class ResultsFileError(ValueError):
    """A line of results.jsonl is JSON but not a result row; the message gives its number."""


_NUMBER = (int, float)
#: the fields the analysis and report read from a row, with their types (nested dicts: nested fields)
ROW_SCHEMA: dict = {
    "model": str,
    "costs": {"params": _NUMBER, "macs": _NUMBER, "flops": _NUMBER, "bytes": _NUMBER},
    "result": {
        "median_ms": _NUMBER,
        "p90_ms": _NUMBER,
        "runs": int,
        "noisy": bool,
        "stop_reason": str,
        "context": {
            "runtime": str,
            "model_form": str,
            "threads": int,
            "input_shape": list,
            "fingerprint": str,
            "runtime_versions": dict,
            "cpu_model": str,
            "date": str,
        },
    },
}


def row_problem(row: object, schema: dict = ROW_SCHEMA, where: str = "") -> str | None:
    """What is wrong with a results row (``None`` if it has every field the report reads, with the right type)."""
    if not isinstance(row, dict):
        return f"{where or 'the line'} must be a JSON object, got {type(row).__name__}"
    for name, kind in schema.items():
        field = f"{where}.{name}" if where else name
        if name not in row:
            return f"field {field!r} is missing"
        value = row[name]
        if isinstance(kind, dict):
            problem = row_problem(value, kind, field)
            if problem:
                return problem
        elif (isinstance(value, bool) and kind is not bool) or not isinstance(value, kind):
            return f"field {field!r} must be {getattr(kind, '__name__', 'a number')}, got {json.dumps(value)[:40]}"
    shape = row.get("result", {}).get("context", {}).get("input_shape") if not where else None
    if shape is not None and not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
        return f"field 'result.context.input_shape' must be a list of integers, got {json.dumps(shape)[:40]}"
    return None


def row_key(row: dict) -> tuple:
    """What identifies a measurement: model, runtime, form, threads, input shape."""
    context = row["result"]["context"]
    return (row["model"], context["runtime"], context["model_form"], context["threads"], tuple(context["input_shape"]))


class ResultStore:
    """The rows of one ``results.jsonl``; :meth:`append` adds one durably."""

    def __init__(self, path: str | os.PathLike, schema: dict | None = ROW_SCHEMA) -> None:
        """``schema``: the fields every row must have (see :data:`ROW_SCHEMA`); ``None`` accepts any JSON object."""
        self.path = Path(path)
        self.schema = schema
        self.rows: list[dict] = []
        #: line numbers moved to :attr:`damaged_path` on load (torn writes, bytes that are not JSON)
        self.moved_aside: list[int] = []
        if self.path.exists():
            self._load()

    @property
    def damaged_path(self) -> Path:
        return self.path.with_name(self.path.name + ".damaged")

    def _load(self) -> None:
        if not self.path.is_file():
            raise ResultsFileError(f"{self.path} is not a regular file; give --out a directory of results")
        lines = self.path.read_bytes().split(b"\n")
        good: list[bytes] = []
        damaged: list[bytes] = []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):  # a torn write or foreign bytes
                damaged.append(line)
                self.moved_aside.append(number)
                continue
            problem = row_problem(row, self.schema) if self.schema is not None else (None if isinstance(row, dict) else "not a JSON object")
            if problem:
                raise ResultsFileError(
                    f"{self.path} line {number} is not a result row: {problem}; fix or delete that line "
                    "(or use another --out); the file was left as it is"
                )
            good.append(line)
            self.rows.append(row)
        if damaged:
            self._move_aside(good, damaged)

    def _move_aside(self, good: list[bytes], damaged: list[bytes]) -> None:
        """Keep the damaged lines in the side file, then rewrite the results file with the good ones only."""
        from .atomic import atomic_path

        with open(self.damaged_path, "ab") as side:
            side.write(b"".join(line + b"\n" for line in damaged))
            side.flush()
            os.fsync(side.fileno())
        with atomic_path(self.path) as temporary:
            temporary.write_bytes(b"".join(line + b"\n" for line in good))

    def keys(self) -> set[tuple]:
        return {row_key(row) for row in self.rows}

    def check_compatible(self, fingerprint: str, runtime_versions: dict[str, dict[str, str]]) -> None:
        """Raise MixedResultsError if a stored row comes from another machine or runtime version.

        ``runtime_versions`` maps runtime name -> the versions its adapter records now.
        """
        for row in self.rows:
            context = row["result"]["context"]
            if context["fingerprint"] != fingerprint:
                raise MixedResultsError(
                    f"{self.path} holds results from machine {context['fingerprint']} ({context['cpu_model']}), "
                    f"this is {fingerprint}; use another --out, or --allow-mixed to combine them"
                )
            current = runtime_versions.get(context["runtime"])
            if current is not None and context["runtime_versions"] != current:
                raise MixedResultsError(
                    f"{self.path} holds {context['runtime']} results measured with {_versions(context['runtime_versions'])}, "
                    f"installed now: {_versions(current)}; use another --out, or --allow-mixed to combine them"
                )

    def append(self, row: dict) -> None:
        data = (json.dumps(row, sort_keys=True) + "\n").encode("utf-8")
        descriptor = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            self._repair_torn_line(descriptor)
            os.write(descriptor, data)
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        self.rows.append(row)

    def _repair_torn_line(self, descriptor: int) -> None:
        """Start on a fresh line if an earlier write was torn (the file does not end in a newline)."""
        size = os.fstat(descriptor).st_size
        if size and os.pread(descriptor, 1, size - 1) != b"\n":
            os.write(descriptor, b"\n")

    def extend(self, rows: Iterable[dict]) -> None:
        for row in rows:
            self.append(row)


def _versions(versions: dict[str, str]) -> str:
    return ", ".join(f"{name} {version}" for name, version in sorted(versions.items()))
