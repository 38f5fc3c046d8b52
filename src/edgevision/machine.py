"""What machine are we on: CPU model, cores, memory, software versions and a stable fingerprint.

Every measured number (roofline peaks, latencies, lookup tables) is stamped with the fingerprint so
that results from different machines are never mixed silently. The fingerprint hashes only what
decides speed and stays put across reboots: CPU model, core counts, memory size, OS/architecture.
Software versions are recorded beside it (they matter too, but are compared separately).
"""

from __future__ import annotations

import functools
import hashlib
import os
import platform
from dataclasses import asdict, dataclass

__all__ = ["MachineInfo", "machine_info"]


@dataclass(frozen=True)
class MachineInfo:
    cpu_model: str
    logical_cpus: int
    physical_cores: int
    memory_bytes: int
    system: str  # e.g. "Linux-6.1.0-x86_64"
    python: str
    torch: str
    fingerprint: str  # 12 hex digits of sha256(cpu model, cores, memory GiB, system, machine)

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def short(self) -> str:
        """A readable one-line description: "Intel Xeon ... (2 cores, 24 GiB)"."""
        return f"{self.cpu_model} ({self.physical_cores} cores, {self.memory_bytes / 2**30:.0f} GiB)"


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return ""


def _cpu_model() -> str:
    for line in _read("/proc/cpuinfo").splitlines():
        if line.lower().startswith(("model name", "hardware", "cpu model")):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown CPU"


def _physical_cores() -> int:
    cores = set()
    physical_id = core_id = None
    for line in _read("/proc/cpuinfo").splitlines() + [""]:
        if line.startswith("physical id"):
            physical_id = line.split(":", 1)[1].strip()
        elif line.startswith("core id"):
            core_id = line.split(":", 1)[1].strip()
        elif not line.strip():
            if core_id is not None:
                cores.add((physical_id, core_id))
            physical_id = core_id = None
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return min(len(cores), available) if cores else available


def _memory_bytes() -> int:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


@functools.cache
def machine_info() -> MachineInfo:
    import torch

    cpu = _cpu_model()
    logical = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    physical = _physical_cores()
    memory = _memory_bytes()
    system = f"{platform.system()}-{platform.release()}-{platform.machine()}"
    # memory rounded to GiB so small reporting differences do not change the identity
    key = "|".join([cpu, str(logical), str(physical), str(round(memory / 2**30)), platform.system(), platform.machine()])
    return MachineInfo(
        cpu_model=cpu,
        logical_cpus=logical,
        physical_cores=physical,
        memory_bytes=memory,
        system=system,
        python=platform.python_version(),
        torch=torch.__version__,
        fingerprint=hashlib.sha256(key.encode()).hexdigest()[:12],
    )
