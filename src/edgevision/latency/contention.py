"""Is the machine quiet? Load, steal time and other processes' CPU around a measurement, plus a reference network.

A latency measurement's confidence interval cannot reveal contention that lasts the whole
measurement: another process using a core for ten seconds shifts every sample alike. So we look
outside the process as well (Linux ``/proc``):

* ``/proc/stat``: CPU time of every core, split into busy, idle and *steal* (time the hypervisor
  gave our virtual CPUs to another guest). Busy time minus this process's own CPU time is what
  *other* processes used while we measured.
* ``/proc/loadavg``: the 1-minute run-queue average (it lags, so it is recorded, not judged).
* A fixed reference network (a few tiny convolutions, fixed seed) timed before and after: on a
  quiet machine its median does not move; a shift says the machine changed under the measurement.

:func:`watch` wraps a measurement and returns a :class:`MachineLoad`; ``contended`` is True when
other processes used more than ``other_cores`` cores on average, steal exceeded ``steal`` of the
CPU time, or the reference moved by more than ``reference_shift``. All paths are parameters, so
the detector is tested on fake ``/proc`` files.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator

__all__ = ["CpuTimes", "MachineLoad", "Thresholds", "read_cpu_times", "read_loadavg", "reference_ms", "wait_until_quiet", "watch"]

PROC = Path("/proc")


@dataclass(frozen=True)
class Thresholds:
    """When a measurement counts as contended."""

    other_cores: float = 0.25  # average cores used by other processes
    steal: float = 0.05  # share of CPU time stolen by the hypervisor
    reference_shift: float = 0.10  # |after / before - 1| of the reference network's median


@dataclass(frozen=True)
class CpuTimes:
    """Cumulative CPU seconds over every core since boot (from ``/proc/stat``'s "cpu" line)."""

    busy: float  # user + nice + system + irq + softirq
    idle: float  # idle + iowait
    steal: float
    cpus: int  # "cpuN" lines

    @property
    def total(self) -> float:
        return self.busy + self.idle + self.steal


def read_cpu_times(proc: Path = PROC) -> CpuTimes | None:
    """The aggregate CPU times, or None where ``/proc/stat`` is unreadable (not Linux)."""
    try:
        lines = (Path(proc) / "stat").read_text().splitlines()
    except OSError:
        return None
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    fields = next((line.split()[1:] for line in lines if line.startswith("cpu ")), None)
    if fields is None:
        return None
    values = [int(v) / ticks for v in fields] + [0.0] * 8
    user, nice, system, idle, iowait, irq, softirq, steal = values[:8]
    cpus = sum(1 for line in lines if line.startswith("cpu") and line[3:4].isdigit())
    return CpuTimes(busy=user + nice + system + irq + softirq, idle=idle + iowait, steal=steal, cpus=max(cpus, 1))


def read_loadavg(proc: Path = PROC) -> float | None:
    try:
        return float((Path(proc) / "loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def own_cpu_seconds() -> float:
    """CPU seconds this process (all its threads) has used."""
    times = os.times()
    return times.user + times.system


@dataclass(frozen=True)
class MachineLoad:
    """What the machine did during one measurement."""

    seconds: float  # wall time watched
    other_cores: float | None  # average cores busy with other processes (None: /proc unreadable)
    steal_fraction: float | None  # stolen CPU time / all CPU time
    loadavg_1min: float | None  # at the end
    reference_before_ms: float | None
    reference_after_ms: float | None
    contended: bool
    reasons: tuple[str, ...]  # e.g. ("other processes used 0.9 cores",)

    @property
    def reference_shift(self) -> float | None:
        if not self.reference_before_ms or not self.reference_after_ms:
            return None
        return self.reference_after_ms / self.reference_before_ms - 1

    def to_dict(self) -> dict:
        return {**asdict(self), "reasons": list(self.reasons), "reference_shift": self.reference_shift}


def judge(
    seconds: float,
    before: CpuTimes | None,
    after: CpuTimes | None,
    own_seconds: float,
    loadavg: float | None,
    reference: tuple[float | None, float | None] = (None, None),
    thresholds: Thresholds = Thresholds(),
) -> MachineLoad:
    """A :class:`MachineLoad` from two ``/proc/stat`` samples ``seconds`` apart and our own CPU use between them."""
    other = steal = None
    reasons = []
    if before is not None and after is not None and seconds > 0:
        busy = after.busy - before.busy
        total = after.total - before.total
        other = max(0.0, busy - own_seconds) / seconds
        steal = (after.steal - before.steal) / total if total > 0 else 0.0
        if other > thresholds.other_cores:
            reasons.append(f"other processes used {other:.2f} cores")
        if steal > thresholds.steal:
            reasons.append(f"the hypervisor stole {steal:.0%} of the CPU time")
    load = MachineLoad(seconds, other, steal, loadavg, reference[0], reference[1], False, ())
    shift = load.reference_shift
    if shift is not None and abs(shift) > thresholds.reference_shift:
        reasons.append(f"the reference network moved {shift:+.0%}")
    return MachineLoad(seconds, other, steal, loadavg, reference[0], reference[1], bool(reasons), tuple(reasons))


_REFERENCE: dict[int, Callable[[], object]] = {}


def _reference_call(threads: int) -> Callable[[], object]:
    """A fixed tiny network (3 convs on 1x16x32x32, seed 0); the same work in every process."""
    if threads not in _REFERENCE:
        import torch
        from torch import nn

        generator = torch.Generator().manual_seed(0)
        net = nn.Sequential(nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1, groups=32), nn.Conv2d(32, 16, 1))
        with torch.no_grad():
            for parameter in net.parameters():
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.1)
        x = torch.randn(1, 16, 32, 32, generator=generator)

        @torch.inference_mode()
        def call():
            previous = torch.get_num_threads()
            torch.set_num_threads(threads)
            try:
                return net(x)
            finally:
                torch.set_num_threads(previous)

        _REFERENCE[threads] = call
    return _REFERENCE[threads]


def reference_ms(threads: int = 1, runs: int = 25, clock: Callable[[], float] = time.perf_counter) -> float:
    """Median milliseconds of the reference network (after 5 warm-up calls)."""
    call = _reference_call(threads)
    for _ in range(5):
        call()
    times = []
    for _ in range(runs):
        begin = clock()
        call()
        times.append(clock() - begin)
    times.sort()
    return times[len(times) // 2] * 1e3


@contextlib.contextmanager
def watch(
    threads: int = 1, reference: bool = True, thresholds: Thresholds = Thresholds(), proc: Path = PROC
) -> Iterator[list[MachineLoad]]:
    """Watch the machine around the ``with`` body; the yielded list holds the :class:`MachineLoad` afterwards.

    The reference network runs outside the watched interval (its CPU time is ours anyway).
    """
    before_ms = reference_ms(threads) if reference else None
    holder: list[MachineLoad] = []
    start, cpu_before, own_before = time.perf_counter(), read_cpu_times(proc), own_cpu_seconds()
    yield holder
    seconds, cpu_after, own = time.perf_counter() - start, read_cpu_times(proc), own_cpu_seconds() - own_before
    after_ms = reference_ms(threads) if reference else None
    holder.append(judge(seconds, cpu_before, cpu_after, own, read_loadavg(proc), (before_ms, after_ms), thresholds))


def wait_until_quiet(
    max_wait_s: float, window_s: float = 1.0, thresholds: Thresholds = Thresholds(), proc: Path = PROC, sleep=time.sleep
) -> bool:
    """Poll ``window_s`` windows until other processes use under ``thresholds.other_cores``; False after ``max_wait_s``."""
    deadline = time.monotonic() + max_wait_s
    while True:
        before, own_before, start = read_cpu_times(proc), own_cpu_seconds(), time.perf_counter()
        sleep(window_s)
        load = judge(time.perf_counter() - start, before, read_cpu_times(proc), own_cpu_seconds() - own_before, None, thresholds=thresholds)
        if not load.contended:
            return True
        if time.monotonic() >= deadline:
            return False


#: seconds this process has spent waiting for a quiet machine, against ``$EDGEVISION_QUIET_WAIT_TOTAL_S``
_waited_s = [0.0]


def _env_seconds(name: str, default: float) -> float:
    try:
        return max(0.0, float(os.environ.get(name, default)))
    except ValueError:
        return default


def default_quiet_wait_s() -> float:
    """Seconds ``measure()`` may still wait for a quiet machine before re-measuring.

    At most ``$EDGEVISION_QUIET_WAIT_S`` (default 10; 0 = never re-measure) per measurement and
    ``$EDGEVISION_QUIET_WAIT_TOTAL_S`` (default 120) per process, so a machine that never quietens
    costs a whole bench run two minutes, not ten seconds per measurement.
    """
    total_left = _env_seconds("EDGEVISION_QUIET_WAIT_TOTAL_S", 120.0) - _waited_s[0]
    return max(0.0, min(_env_seconds("EDGEVISION_QUIET_WAIT_S", 10.0), total_left))


def wait_within_budget(max_wait_s: float) -> bool:
    """:func:`wait_until_quiet`, charging the time waited to this process's waiting budget."""
    start = time.monotonic()
    try:
        return wait_until_quiet(max_wait_s)
    finally:
        _waited_s[0] += time.monotonic() - start
