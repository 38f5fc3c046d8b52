"""Emulated dynamic voltage and frequency scaling, and the policy that picks an All-in-One ratio for it.

The use case of All-in-One (Gong et al., ICCAD 2022): a battery-powered device lowers its CPU
frequency, a fixed network's latency grows with it, and the model is re-configured to a higher
pruning ratio so its latency stays under a target. Without control of the CPU frequency we emulate
a slower machine in two ways, combinable:

* fewer threads: ``torch.set_num_threads`` / ONNX Runtime intra-op threads (``measure(threads=)``);
* a CPU quota: the measuring process runs only ``quota`` of every 2 ms period, what Linux cgroups'
  ``cpu.max`` enforces and a frequency drop approximates; emulated by a child process that stops
  (SIGSTOP) and continues (SIGCONT) this one (:func:`cpu_quota`; POSIX only).

The policy (:func:`choose`): at each emulated speed, measure the median latency of every ratio and
pick the *widest* ratio (least pruned, so the most accurate) whose latency is at most the target;
when even the narrowest misses it, pick the narrowest (the fastest there is) and say it misses.
Latencies are measured per speed rather than scaled from one speed, because fewer threads do not
slow every width alike (a narrow network parallelises worse).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from dataclasses import asdict, dataclass
from typing import Callable, Iterator, Mapping, Sequence

__all__ = ["Speed", "Choice", "speeds", "cpu_quota", "latency_grid", "choose", "policy"]


@dataclass(frozen=True)
class Speed:
    """One emulated machine speed: intra-op threads and the CPU quota (fraction of wall time it may run)."""

    threads: int
    quota: float = 1.0

    def __post_init__(self) -> None:
        if self.threads < 1:
            raise ValueError(f"an emulated speed needs at least 1 thread, got {self.threads}")
        if not 0.05 <= self.quota <= 1.0:
            raise ValueError(f"a CPU quota is the fraction of time the process may run, in [0.05, 1], got {self.quota}")

    @property
    def name(self) -> str:
        threads = f"{self.threads} thread{'s' if self.threads > 1 else ''}"
        return threads if self.quota == 1.0 else f"{threads}, {self.quota:.0%} CPU"


def speeds(threads: Sequence[int], quotas: Sequence[float] = (1.0,)) -> list[Speed]:
    """Every (threads, quota) combination, fastest first (most threads, then the largest quota)."""
    combos = {Speed(t, q) for t in threads for q in quotas}
    return sorted(combos, key=lambda s: (-s.threads, -s.quota))


_THROTTLE = """
import os, signal, sys, time
target, on, off = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
parent = os.getppid()
running = True
def stop(*_):
    global running
    running = False
signal.signal(signal.SIGTERM, stop)
try:
    while running and os.getppid() == parent:
        time.sleep(on)
        if not running:
            break
        os.kill(target, signal.SIGSTOP)
        time.sleep(off)
        os.kill(target, signal.SIGCONT)
except ProcessLookupError:  # the measured process is gone (killed): nothing left to throttle
    pass
finally:
    try:
        os.kill(target, signal.SIGCONT)
    except OSError:
        pass
"""


@contextlib.contextmanager
def cpu_quota(quota: float, period_s: float = 0.002) -> Iterator[None]:
    """Let this process run only ``quota`` of every ``period_s`` (a cgroup ``cpu.max`` emulation).

    A child process stops and continues this one; it always leaves it running (on exit, on
    SIGTERM, and it stops when this process is gone). ``quota`` 1 does nothing.
    """
    if quota >= 1.0:
        yield
        return
    if not hasattr(signal, "SIGSTOP"):
        raise OSError("a CPU quota is emulated with SIGSTOP/SIGCONT, which this platform lacks; use fewer threads instead")
    on, off = quota * period_s, (1.0 - quota) * period_s
    child = subprocess.Popen([sys.executable, "-c", _THROTTLE, str(os.getpid()), repr(on), repr(off)])
    try:
        yield
    finally:
        child.terminate()
        child.wait()
        os.kill(os.getpid(), signal.SIGCONT)


@dataclass(frozen=True)
class Choice:
    """The ratio the policy picks at one speed."""

    speed: str
    ratio: float
    ms: float
    meets_target: bool

    def to_dict(self) -> dict:
        return asdict(self)


Timer = Callable[[object, Speed], float]  # (network, speed) -> median ms


def latency_grid(networks: Mapping[float, object], speed_list: Sequence[Speed], timer: Timer) -> dict[str, dict[float, float]]:
    """Speed name -> {ratio: median ms}: every network timed at every emulated speed by ``timer``."""
    return {speed.name: {ratio: float(timer(network, speed)) for ratio, network in networks.items()} for speed in speed_list}


def choose(ms_by_ratio: Mapping[float, float], target_ms: float, speed: str = "") -> Choice:
    """The widest ratio (smallest pruning ratio) with latency <= ``target_ms``; else the fastest one, flagged."""
    if not ms_by_ratio:
        raise ValueError("no ratios to choose from")
    if not target_ms > 0:
        raise ValueError(f"the latency target must be positive, got {target_ms}")
    fitting = [r for r, ms in ms_by_ratio.items() if ms <= target_ms]
    if fitting:
        ratio = min(fitting)
        return Choice(speed, ratio, ms_by_ratio[ratio], True)
    ratio = min(ms_by_ratio, key=lambda r: (ms_by_ratio[r], r))  # the fastest; of equally fast ones the widest
    return Choice(speed, ratio, ms_by_ratio[ratio], False)


def policy(grid: Mapping[str, Mapping[float, float]], target_ms: float) -> dict[str, Choice]:
    """Speed name -> the :func:`choose` result at that speed."""
    return {speed: choose(row, target_ms, speed) for speed, row in grid.items()}
