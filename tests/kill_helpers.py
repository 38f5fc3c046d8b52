"""The kill -9 loop the durability tests share: start a command, wait until it has recorded more work, kill it."""

from __future__ import annotations

import random
import signal
import subprocess
import time
from typing import Callable


def start_and_kill(argv: list[str], env: dict, progressed: Callable[[], bool], draw: random.Random, spread_s: float,
                   timeout_s: float = 600) -> tuple[int, str]:
    """Start ``argv``; once ``progressed()`` is true, SIGKILL it after a random 0..``spread_s`` s (mid-step, mid-save,
    mid-clean-up), unless it ended first. Returns ``(returncode, stderr)``: ``-signal.SIGKILL`` when it was killed."""
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout_s
    while process.poll() is None and not progressed() and time.monotonic() < deadline:
        time.sleep(0.02)
    if process.poll() is None:
        time.sleep(draw.uniform(0.0, spread_s))
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
    _, stderr = process.communicate(timeout=timeout_s)
    return process.returncode, stderr.decode(errors="replace")
