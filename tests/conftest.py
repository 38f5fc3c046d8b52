import os
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))  # tests/helpers.py

# tests/reference/ imports timm and torchvision: only `make test-reference` (.venv-ref) runs it
if os.environ.get("EDGEVISION_REFERENCE_TESTS") != "1":
    collect_ignore = ["reference"]

# Under pytest-xdist each worker gets one intra-op thread: two workers with two OpenMP threads each
# oversubscribe a 2-core machine, and spinning OpenMP threads then slow everything several-fold.
_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
torch.set_num_threads(max(1, (os.cpu_count() or 1) // _workers))

# measure() re-measures a contended measurement after waiting for a quiet machine; never in tests
# (the suite itself keeps the machine busy), where the flag is still recorded
os.environ.setdefault("EDGEVISION_QUIET_WAIT_S", "0")


@pytest.fixture
def one_thread():
    """torch on one intra-op thread for the test (tiny tensors: a second thread only adds synchronisation, 10x slower on a
    busy machine); use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
