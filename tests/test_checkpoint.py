"""Checkpoints: exact round trip (train and deploy form), metadata, refusal of mismatching or unsafe files."""

from __future__ import annotations

import json
import os
import pickle

import pytest
import torch
from safetensors.torch import load_file, save_file

import edgevision as ev
from edgevision.checkpoint import CheckpointError, load_state_dict_file, read_metadata
from training_helpers import randomize, single_thread, tiny_model  # noqa: F401  (single_thread: autouse fixture)


def test_round_trip_is_exact_without_naming_the_architecture(tmp_path):
    model = randomize(ev.create_model("mobileone_s0", num_classes=3, in_chans=1)).eval()
    path = ev.save(model, tmp_path / "m.safetensors", {"dataset": "default", "metrics": {"val_top1": 0.5}})
    loaded = ev.load(path)
    assert type(loaded) is ev.Network and loaded.spec == model.spec
    original, restored = model.state_dict(), loaded.state_dict()
    assert original.keys() == restored.keys() and all(torch.equal(original[k], restored[k]) for k in original)
    x = torch.randn(2, 1, 32, 32)
    assert torch.equal(model(x), loaded(x))
    metadata = read_metadata(path)
    assert metadata["dataset"] == "default" and metadata["metrics"]["val_top1"] == 0.5 and metadata["form"] == "train"
    assert metadata["versions"]["torch"] == torch.__version__ and metadata["spec"]["name"] == "mobileone_s0"


def test_deploy_form_round_trip(tmp_path):
    deploy = ev.reparameterize(randomize(tiny_model()))
    path = ev.save(deploy, tmp_path / "d.safetensors")
    loaded = ev.load(path)
    assert ev.is_deploy_form(loaded) and read_metadata(path)["form"] == "deploy"
    x = torch.randn(2, 1, 16, 16)
    assert torch.equal(deploy(x), loaded(x))


def _rewrite(path, change):
    """Re-write a checkpoint's tensors with ``change(tensors)`` but keep its header."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        header = handle.metadata()
    tensors = load_file(str(path))
    change(tensors)
    save_file(tensors, str(path), metadata=header)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda t: t.pop("head.classifier.bias"), r"1 missing \(head.classifier.bias\)"),
        (lambda t: t.update(extra=torch.zeros(1)), r"1 unexpected \(extra\)"),
        (lambda t: t.update({"head.classifier.weight": torch.zeros(3, 8)}), r"wrong shape/dtype \(head.classifier.weight \(3, 8\)/float32 != \(2, 8\)/float32"),
        (lambda t: t.update({"stem.0.conv.weight": t["stem.0.conv.weight"].double()}), "float64 != .*float32"),
    ],
)
def test_refuses_tensors_that_do_not_match_the_spec(tmp_path, change, message):
    path = ev.save(tiny_model(), tmp_path / "m.safetensors")
    _rewrite(path, change)
    with pytest.raises(CheckpointError, match=message):
        ev.load(path)


def test_refuses_foreign_and_damaged_files(tmp_path):
    save_file({"w": torch.zeros(2)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(CheckpointError, match="not an edgevision checkpoint"):
        ev.load(tmp_path / "plain.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 40)
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        ev.load(tmp_path / "junk.safetensors")
    with pytest.raises(CheckpointError, match="does not exist"):
        ev.load(tmp_path / "missing.safetensors")
    (tmp_path / "run").mkdir()  # a run folder given for its checkpoint
    with pytest.raises(CheckpointError, match=r"is a directory; give the \.safetensors file in it"):
        ev.load(tmp_path / "run")
    with pytest.raises(CheckpointError, match="must end in .safetensors"):
        ev.save(tiny_model(), tmp_path / "m.pt")
    with pytest.raises(CheckpointError, match="built by edgevision"):
        ev.save(torch.nn.Linear(2, 2), tmp_path / "l.safetensors")


def test_save_is_atomic_and_leaves_no_temporary(tmp_path):
    path = ev.save(tiny_model(seed=1), tmp_path / "m.safetensors")
    before = path.read_bytes()
    with pytest.raises(CheckpointError):
        ev.save(torch.nn.Linear(2, 2), path)  # refused before anything is written
    assert path.read_bytes() == before
    ev.save(tiny_model(seed=2), path)
    assert sorted(os.listdir(tmp_path)) == ["m.safetensors"]


class _Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {_Exploit.marker}",))


def test_saved_files_get_the_permissions_of_an_ordinary_write(tmp_path):
    # the atomic temporary is 0600 and safetensors replaces it with its own 0600 file; a saved model must
    # still be readable by whoever the umask allows, as if written with open()
    previous = os.umask(0o022)
    try:
        ev.save(tiny_model(), tmp_path / "m.safetensors")
        (tmp_path / "plain").write_text("x")
    finally:
        os.umask(previous)
    assert oct((tmp_path / "m.safetensors").stat().st_mode & 0o777) == oct((tmp_path / "plain").stat().st_mode & 0o777) == "0o644"


def test_user_pt_files_load_with_weights_only(tmp_path):
    state = tiny_model().state_dict()
    torch.save(state, tmp_path / "ok.pt")
    loaded = load_state_dict_file(tmp_path / "ok.pt")
    assert loaded.keys() == state.keys()
    _Exploit.marker = tmp_path / "pwned"
    with open(tmp_path / "evil.pt", "wb") as handle:
        pickle.dump({"weight": _Exploit()}, handle, protocol=2)
    with pytest.raises(CheckpointError, match="not a plain tensor state dict"):
        load_state_dict_file(tmp_path / "evil.pt")
    assert not _Exploit.marker.exists()


def test_metadata_is_json_in_the_header(tmp_path):
    path = ev.save(tiny_model(), tmp_path / "m.safetensors", {"recipe": {"name": "tricks"}})
    header_size = int.from_bytes(path.read_bytes()[:8], "little")
    header = json.loads(path.read_bytes()[8 : 8 + header_size])
    assert json.loads(header["__metadata__"]["edgevision.metadata"])["recipe"]["name"] == "tricks"
    assert ev.NetworkSpec.from_json(header["__metadata__"]["edgevision.spec"]) == tiny_model().spec
