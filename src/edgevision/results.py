"""Resumable results: one JSON line per finished measurement, appended atomically.

Each line is written with a single ``write`` on a file opened with ``O_APPEND`` and fsynced, so an
interrupted run (Ctrl-C, crash, kill) loses at most the measurement in progress; a torn last line
(power loss mid-write) is ignored on load. Lines from another machine fingerprint, or measured with
other runtime versions, are refused unless the caller allows mixing: latencies from different
machines or runtime versions are not comparable.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

__all__ = ["MixedResultsError", "ResultStore", "row_key"]


class MixedResultsError(ValueError):
    """The results file holds measurements from another machine or runtime version."""


def row_key(row: dict) -> tuple:
    """What identifies a measurement: model, runtime, form, threads, input shape."""
    context = row["result"]["context"]
    return (row["model"], context["runtime"], context["model_form"], context["threads"], tuple(context["input_shape"]))


class ResultStore:
    """The rows of one ``results.jsonl``; :meth:`append` adds one durably."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.rows: list[dict] = []
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                if not line.strip():
                    continue
                try:
                    self.rows.append(json.loads(line))
                except json.JSONDecodeError:  # a torn last line from an interrupted write: that measurement reruns
                    continue

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
