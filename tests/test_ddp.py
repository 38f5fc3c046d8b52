"""DDP on 2 gloo processes takes the same steps as 1 process with the doubled batch."""

from __future__ import annotations

import socket

import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file

from edgevision.training import Recipe, train
from training_helpers import DDP_RECIPE_FIELDS, BatchNormFreeNet, ddp_worker, single_thread, toy_splits  # noqa: F401

STEPS = 4


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_two_gloo_processes_match_one_process_with_the_doubled_batch(tmp_path):
    out = tmp_path / "ddp.safetensors"
    # global batch 8: each of the 2 processes gets 4 images of every step's 8
    mp.spawn(ddp_worker, args=(2, _free_port(), STEPS, str(out)), nprocs=2, join=True)
    distributed = load_file(str(out))

    torch.manual_seed(0)
    start = BatchNormFreeNet()
    initial = {k: v.clone() for k, v in start.state_dict().items()}
    single = train(start, toy_splits(count=64), Recipe(**DDP_RECIPE_FIELDS), resolution=8, seed=0, max_steps=STEPS, device="cpu").model.state_dict()

    for name, weight in single.items():
        assert not torch.equal(weight, initial[name])  # training moved it
        assert torch.allclose(distributed[name], weight, rtol=1e-5, atol=1e-6), name
