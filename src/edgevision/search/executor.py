"""Where trial evaluations run: in this process (the default; never imports Ray) or on a Ray cluster.

The search driver owns the Optuna study (ask/tell), so workers only train networks: a worker that
dies loses one evaluation, which the driver resubmits and records on the trial
(``worker_retries``). ``RayExecutor()`` starts a local Ray sized to this machine (one worker per
core, one torch thread each); ``RayExecutor(address="host:port")`` joins a running cluster and
fails in seconds with a clear message if nothing answers there.
"""

from __future__ import annotations

import os
import socket
from typing import Any, Callable

from .result import SearchError

__all__ = ["SerialExecutor", "RayExecutor", "WorkerDied", "check_ray_address"]


class WorkerDied(RuntimeError):
    """The process evaluating a trial died (killed, out of memory); the evaluation may be retried."""


class _Done:
    def __init__(self, value: Any = None, error: BaseException | None = None) -> None:
        self.value, self.error = value, error


class SerialExecutor:
    """Runs each evaluation at once, in this process."""

    slots = 1

    def submit(self, function: Callable, *args: Any) -> _Done:
        return _Done(function(*args))  # exceptions propagate: a serial search stops where it fails

    def wait(self, handles: list) -> list:
        return list(handles)

    def result(self, handle: _Done) -> Any:
        return handle.value

    def close(self) -> None:
        pass


def check_ray_address(address: str, timeout_s: float = 3.0) -> None:
    """Fail fast (``SearchError``) when nothing listens at a Ray ``host:port`` (``ray://`` and ``auto`` pass)."""
    if address == "auto" or address.startswith("ray://"):
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise SearchError(f"--ray-address {address!r} is not host:port (e.g. 10.0.0.5:6379), ray://host:10001 or auto")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            pass
    except OSError as error:
        raise SearchError(f"no Ray cluster answers at {address} ({error.strerror or error}); start one with `ray start --head` or drop --ray-address") from None


def _remote_call(function: Callable, *args: Any) -> Any:
    return function(*args)


class RayExecutor:
    """Evaluations as Ray tasks, ``slots`` in flight (default: one per CPU of the cluster)."""

    def __init__(self, address: str | None = None, slots: int | None = None, num_cpus: int | None = None) -> None:
        try:
            import ray
        except ImportError:
            raise SearchError("parallel search needs Ray (pip install 'ray[default]'); or run without --workers/--ray-address") from None
        if address is not None:
            check_ray_address(address)
        self._ray = ray
        if not ray.is_initialized():
            env = {"env_vars": {"PYTHONPATH": os.environ.get("PYTHONPATH", ""), "OMP_NUM_THREADS": "1"}}
            if address is None:
                ray.init(num_cpus=num_cpus or os.cpu_count() or 1, include_dashboard=False, log_to_driver=False, runtime_env=env)
            else:
                ray.init(address=address, runtime_env=env, log_to_driver=False)
        self.slots = slots or max(1, int(ray.cluster_resources().get("CPU", 1)))
        self._task = ray.remote(num_cpus=1, max_retries=0)(_remote_call)

    def submit(self, function: Callable, *args: Any):
        return self._task.remote(function, *args)

    def wait(self, handles: list) -> list:
        done, _ = self._ray.wait(list(handles), num_returns=1)
        return done

    def result(self, handle) -> Any:
        from ray.exceptions import ActorDiedError, NodeDiedError, RayTaskError, WorkerCrashedError

        try:
            return self._ray.get(handle)
        except (WorkerCrashedError, NodeDiedError, ActorDiedError) as error:
            raise WorkerDied(str(error).splitlines()[0] if str(error) else type(error).__name__) from None
        except RayTaskError as error:
            raise error.as_instanceof_cause() from None

    def close(self) -> None:
        pass  # a local Ray stops with this process; a joined cluster keeps running
