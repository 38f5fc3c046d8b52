"""``LatencyTable``: measured block latencies in one portable, versioned SQLite file.

SQLite because every entry is its own committed transaction: an interrupted build (Ctrl-C, crash,
power loss) keeps every block measured before it, and the file is never half-written. The header
records the format version, the machine fingerprint and description, and the runtime versions the
entries were measured with. A table from another machine is refused unless the caller says
``allow_other_machine=True`` (latencies do not transfer between machines); entries measured with
other runtime versions are refused the same way.

Schema (format version 1)::

    header(name TEXT PRIMARY KEY, value TEXT)      -- JSON values
    entries(key TEXT PRIMARY KEY, kind TEXT, runtime TEXT, threads INTEGER,
            median_ms REAL, ci_low_ms REAL, ci_high_ms REAL, runs INTEGER, noisy INTEGER, measured_at TEXT)
"""

from __future__ import annotations

import datetime
import json
import math
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ..machine import MachineInfo, machine_info

__all__ = [
    "FORMAT_VERSION",
    "BlockLatency",
    "LatencyTable",
    "LutError",
    "OtherMachineError",
    "CONFLICT_POLICIES",
]

FORMAT_VERSION = 1
HEADER_COLUMNS = ("name", "value")
ENTRY_COLUMNS = ("key", "kind", "runtime", "threads", "median_ms", "ci_low_ms", "ci_high_ms", "runs", "noisy", "measured_at")

#: what :meth:`LatencyTable.merge` does when both tables hold a key with different values
CONFLICT_POLICIES = ("keep", "replace", "precise", "error")


class LutError(ValueError):
    """A latency table cannot be used as asked (wrong format, runtime versions, merge conflict)."""


class OtherMachineError(LutError):
    """The table was measured on another machine."""


@dataclass(frozen=True, kw_only=True)
class BlockLatency:
    """One measured block: median and 95% CI of the median (ms), runs, and whether it was noisy."""

    median_ms: float
    ci_low_ms: float = math.nan
    ci_high_ms: float = math.nan
    runs: int = 0
    noisy: bool = False
    measured_at: str = ""

    @property
    def ci_half_width_ms(self) -> float:
        if math.isnan(self.ci_low_ms) or math.isnan(self.ci_high_ms):
            return math.nan
        return max(self.median_ms - self.ci_low_ms, self.ci_high_ms - self.median_ms)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _nan_to_none(value: float) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


class LatencyTable:
    """Block latencies for one machine. Open with ``LatencyTable(path)``; use as a context manager.

    ``machine`` defaults to this machine (tests pass another :class:`MachineInfo` to play a second
    machine). ``allow_other_machine=True`` opens a table measured elsewhere, e.g. to inspect it.
    """

    def __init__(
        self, path: str | os.PathLike, *, allow_other_machine: bool = False, machine: MachineInfo | None = None, drop_invalid: bool = False
    ) -> None:
        """``drop_invalid``: delete entries without a valid median (they are measured again) instead of refusing the table."""
        self.path = Path(path)
        #: entries deleted on open because their median was NULL, negative or not a number
        self.dropped: list[str] = []
        self.machine = machine or machine_info()
        if self.path.is_dir():
            raise LutError(f"latency table path {str(self.path)!r} is a directory; give a file name such as lut.sqlite")
        if self.path.exists() and not self.path.is_file():  # SQLite would write into a device or block on a FIFO
            raise LutError(f"latency table path {str(self.path)!r} is not a regular file; give a file name such as lut.sqlite")
        if not self.path.parent.is_dir():
            raise LutError(f"cannot create latency table {str(self.path)!r}: directory {str(self.path.parent)!r} does not exist")
        existed = self.path.exists() and self.path.stat().st_size > 0
        try:
            self._db = sqlite3.connect(str(self.path))
            if existed:  # read before writing anything: another program's database must stay untouched
                self._check_schema()
                header = self.header
                version = header.get("format_version")
                if version is not None and version != FORMAT_VERSION:
                    raise LutError(
                        f"{self.path} is latency-table format {version}, this edgevision reads format "
                        f"{FORMAT_VERSION}; rebuild it with `edgevision lut build`"
                    )
                self._check_header(header)
                self._check_entries(drop_invalid)
            else:
                self._db.execute("CREATE TABLE IF NOT EXISTS header(name TEXT PRIMARY KEY, value TEXT)")
                self._db.execute(
                    "CREATE TABLE IF NOT EXISTS entries(key TEXT PRIMARY KEY, kind TEXT, runtime TEXT, threads INTEGER, "
                    "median_ms REAL, ci_low_ms REAL, ci_high_ms REAL, runs INTEGER, noisy INTEGER, measured_at TEXT)"
                )
                self._db.commit()
                header = {}
        except sqlite3.DatabaseError as error:
            self.close()
            raise LutError(f"{str(self.path)!r} is not a latency table (SQLite says: {error}); give another --table path") from None
        except LutError:
            self.close()
            raise
        if not existed or "format_version" not in header:
            self._set_header(
                format_version=FORMAT_VERSION,
                fingerprint=self.machine.fingerprint,
                machine=self.machine.to_dict(),
                runtime_versions={},
                created=_now(),
            )
            return
        if header["fingerprint"] != self.machine.fingerprint and not allow_other_machine:
            other = header.get("machine", {}).get("cpu_model", "unknown CPU")
            self.close()
            raise OtherMachineError(
                f"{self.path} was measured on machine {header['fingerprint']} ({other}), this is "
                f"{self.machine.fingerprint} ({self.machine.cpu_model}); latencies do not transfer between machines. "
                f"Build a table here, or pass allow_other_machine=True (CLI: --allow-other-machine) to use it anyway"
            )

    # ---- validation on open: another schema, a damaged header or NULL medians are refused by name ------
    def _check_schema(self) -> None:
        tables = {row[0] for row in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not {"header", "entries"} <= tables:
            raise LutError(
                f"{str(self.path)!r} is an SQLite database but not an edgevision latency table (tables: {', '.join(sorted(tables)) or 'none'}); "
                "give another --table path"
            )
        for table, expected in (("header", HEADER_COLUMNS), ("entries", ENTRY_COLUMNS)):
            columns = tuple(row[1] for row in self._db.execute(f"PRAGMA table_info({table})"))
            if columns != expected:
                raise LutError(
                    f"{str(self.path)!r} is not an edgevision latency table of format {FORMAT_VERSION}: its {table!r} table has columns "
                    f"({', '.join(columns)}), expected ({', '.join(expected)}); give another --table path or rebuild it"
                )

    def _check_header(self, header: dict) -> None:
        if "format_version" not in header:
            return
        for name, kind in (("fingerprint", str), ("machine", dict), ("runtime_versions", dict)):
            if name in header and not isinstance(header[name], kind):
                raise LutError(f"{str(self.path)!r}: header {name!r} must be a {kind.__name__}, got {header[name]!r:.60}; the file is damaged")
        if "fingerprint" not in header:
            raise LutError(f"{str(self.path)!r}: header has no 'fingerprint'; the file is damaged, rebuild it")

    def _check_entries(self, drop_invalid: bool) -> None:
        bad = [row[0] for row in self._db.execute(
            "SELECT key FROM entries WHERE median_ms IS NULL OR typeof(median_ms) NOT IN ('real', 'integer') OR median_ms < 0 "
            "OR median_ms != median_ms OR median_ms > 1e300 ORDER BY key"
        )]
        if not bad:
            return
        if drop_invalid:
            with self._db:
                self._db.executemany("DELETE FROM entries WHERE key = ?", [(key,) for key in bad])
            self.dropped = bad
            return
        raise LutError(
            f"{str(self.path)!r}: {len(bad)} entr{'y has' if len(bad) == 1 else 'ies have'} no valid median_ms (NULL, negative or not a number; "
            f"first: {bad[0][:80]}); run `edgevision lut build` on it to measure them again"
        )

    # ---- header ------------------------------------------------------------------------------
    @property
    def header(self) -> dict:
        header = {}
        for name, value in self._db.execute("SELECT name, value FROM header"):
            try:
                header[name] = json.loads(value) if isinstance(value, (str, bytes)) else value
            except (json.JSONDecodeError, RecursionError):
                raise LutError(f"{str(self.path)!r}: header {name!r} is not valid JSON; the file is damaged, rebuild it") from None
        return header

    @property
    def fingerprint(self) -> str:
        return self.header["fingerprint"]

    def _set_header(self, **values) -> None:
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO header(name, value) VALUES (?, ?)", [(k, json.dumps(v, sort_keys=True)) for k, v in values.items()]
            )

    def check_runtime_versions(self, runtime: str, versions: dict[str, str], *, allow_other_versions: bool = False) -> None:
        """Record ``versions`` for ``runtime`` on first use; afterwards refuse different ones."""
        recorded = self.header.get("runtime_versions", {})
        stored = recorded.get(runtime)
        if stored is None:
            self._set_header(runtime_versions={**recorded, runtime: dict(versions)})
        elif stored != dict(versions) and not allow_other_versions:
            raise LutError(
                f"{self.path} holds {runtime} entries measured with {_versions(stored)}; installed now: {_versions(versions)}. "
                f"Use another table, or allow_other_versions=True to mix them"
            )

    # ---- entries -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM entries").fetchone()[0]

    def __contains__(self, key: str) -> bool:
        return self._db.execute("SELECT 1 FROM entries WHERE key = ?", (key,)).fetchone() is not None

    def keys(self) -> set[str]:
        return {row[0] for row in self._db.execute("SELECT key FROM entries")}

    def get(self, key: str) -> BlockLatency | None:
        row = self._db.execute(
            "SELECT median_ms, ci_low_ms, ci_high_ms, runs, noisy, measured_at FROM entries WHERE key = ?", (key,)
        ).fetchone()
        return None if row is None else _entry(row)

    def items(self) -> Iterator[tuple[str, BlockLatency]]:
        query = "SELECT key, median_ms, ci_low_ms, ci_high_ms, runs, noisy, measured_at FROM entries ORDER BY key"
        for row in self._db.execute(query).fetchall():
            yield row[0], _entry(row[1:])

    def put(self, key: str, latency: BlockLatency) -> None:
        """Store one entry, committed at once (an interrupted build keeps it)."""
        if not (latency.median_ms >= 0 and math.isfinite(latency.median_ms)):
            raise LutError(f"block latency must be a finite non-negative number of ms, got {latency.median_ms!r}")
        data = json.loads(key)
        with self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key,
                    data["block"]["spec"]["kind"],
                    data["runtime"],
                    data["threads"],
                    latency.median_ms,
                    _nan_to_none(latency.ci_low_ms),
                    _nan_to_none(latency.ci_high_ms),
                    latency.runs,
                    int(latency.noisy),
                    latency.measured_at or _now(),
                ),
            )

    def merge(self, other: "LatencyTable", on_conflict: str = "error") -> tuple[int, int]:
        """Copy ``other``'s entries into this table; returns (added, conflicting keys).

        Both tables must come from the same machine and the same runtime versions. ``on_conflict``
        decides a key both hold with different medians: ``"keep"`` this table's value, ``"replace"``
        with the other's, ``"precise"`` the one with the narrower CI (a noisy one loses), ``"error"``
        raises :class:`LutError` before anything is copied.
        """
        if on_conflict not in CONFLICT_POLICIES:
            raise LutError(f"on_conflict must be one of {', '.join(CONFLICT_POLICIES)}, got {on_conflict!r}")
        if other.fingerprint != self.fingerprint:
            raise OtherMachineError(
                f"cannot merge {other.path} (machine {other.fingerprint}) into {self.path} (machine {self.fingerprint}): "
                f"latencies from different machines do not mix"
            )
        theirs_versions = other.header.get("runtime_versions", {})
        for runtime, versions in theirs_versions.items():
            mine = self.header.get("runtime_versions", {}).get(runtime)
            if mine is not None and mine != versions:
                raise LutError(
                    f"cannot merge {other.path} into {self.path}: {runtime} versions differ ({_versions(versions)} vs {_versions(mine)})"
                )
        incoming = list(other.items())
        conflicts = [key for key, value in incoming if (mine := self.get(key)) is not None and mine.median_ms != value.median_ms]
        if conflicts and on_conflict == "error":
            raise LutError(
                f"{len(conflicts)} block(s) are in both {self.path} and {other.path} with different latencies; "
                f"choose on_conflict='keep', 'replace' or 'precise'"
            )
        added = 0
        for key, value in incoming:
            mine = self.get(key)
            if mine is None:
                added += 1
            elif on_conflict == "keep" or (on_conflict == "precise" and not _more_precise(value, mine)):
                continue
            self.put(key, value)
        for runtime, versions in theirs_versions.items():
            self.check_runtime_versions(runtime, versions)
        return added, len(conflicts)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "LatencyTable":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LatencyTable({str(self.path)!r}, {len(self)} entries, machine {self.fingerprint})"


def _more_precise(candidate: BlockLatency, current: BlockLatency) -> bool:
    if candidate.noisy != current.noisy:
        return current.noisy
    width = candidate.ci_half_width_ms / candidate.median_ms if candidate.median_ms else math.inf
    other = current.ci_half_width_ms / current.median_ms if current.median_ms else math.inf
    return (width if math.isfinite(width) else math.inf) < (other if math.isfinite(other) else math.inf)


def _entry(row) -> BlockLatency:
    median_ms, low, high, runs, noisy, measured_at = row
    return BlockLatency(
        median_ms=median_ms,
        ci_low_ms=math.nan if low is None else low,
        ci_high_ms=math.nan if high is None else high,
        runs=runs,
        noisy=bool(noisy),
        measured_at=measured_at,
    )


def _versions(versions: dict[str, str]) -> str:
    return ", ".join(f"{name} {version}" for name, version in sorted(versions.items()))
