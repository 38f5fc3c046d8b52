"""Published figures for every registered model: one table, ``data/published.csv``.

Each row holds what the paper (or the authors' release) printed — ImageNet top-1, params and
multiply-accumulates *as printed* ("3.4M", "300M", "1.4G"), with the table it came from — and,
where one exists, the exact parameter count of the authors' official implementation (train and
deploy form) with its source. Tests compare our counts against this table.
"""

from __future__ import annotations

import csv
import functools
from dataclasses import dataclass
from importlib import resources

__all__ = ["PublishedFigure", "PublishedRecord", "published", "published_table"]

_UNITS = {"K": 1e3, "M": 1e6, "G": 1e9}


@dataclass(frozen=True)
class PublishedFigure:
    """A number as a paper printed it: value plus the resolution its last digit implies."""

    text: str

    @property
    def value(self) -> float:
        return float(self.text[:-1]) * _UNITS[self.text[-1]]

    @property
    def resolution(self) -> float:
        """Half a unit of the last printed digit: "1.4G" -> 0.05e9, "300M" -> 0.5e6."""
        mantissa = self.text[:-1]
        decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
        return 0.5 * 10.0 ** (-decimals) * _UNITS[self.text[-1]]

    def agrees_with(self, count: float, relative_tolerance: float) -> bool:
        """True when ``count`` is within the printed rounding plus ``relative_tolerance``."""
        return abs(count - self.value) <= self.resolution + relative_tolerance * self.value

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class PublishedRecord:
    name: str
    family: str
    top1: float | None  # ImageNet-1k top-1 (%), None where no figure is published
    params: PublishedFigure | None
    macs: PublishedFigure | None
    params_train_exact: int | None  # official implementation, train form
    params_deploy_exact: int | None  # official implementation, deploy form (re-parameterizable models)
    exact_source: str
    citation: str  # paper and table the printed figures come from


def _figure(text: str) -> PublishedFigure | None:
    text = text.strip()
    if not text:
        return None
    if text[-1] not in _UNITS:
        raise ValueError(f"published figure {text!r} must end with one of K, M, G")
    return PublishedFigure(text)


def _int(text: str) -> int | None:
    return int(text) if text.strip() else None


@functools.cache
def published_table() -> dict[str, PublishedRecord]:
    text = resources.files("edgevision").joinpath("data/published.csv").read_text(encoding="utf-8")
    rows = csv.DictReader(line for line in text.splitlines() if line and not line.startswith("#"))
    table: dict[str, PublishedRecord] = {}
    for row in rows:
        record = PublishedRecord(
            name=row["name"],
            family=row["family"],
            top1=float(row["top1"]) if row["top1"].strip() else None,
            params=_figure(row["params"]),
            macs=_figure(row["macs"]),
            params_train_exact=_int(row["params_train_exact"]),
            params_deploy_exact=_int(row["params_deploy_exact"]),
            exact_source=row["exact_source"],
            citation=row["citation"],
        )
        if record.name in table:
            raise ValueError(f"published.csv lists {record.name!r} twice")
        table[record.name] = record
    return table


def published(name: str) -> PublishedRecord | None:
    """The published record of a model, or None where the table has no row."""
    return published_table().get(name)
