"""The model contract, registry-wide: identity shortcuts (one source of truth) and the init protocol.

For every block of every zoo model (built alone, at a small test resolution):

* ``init_weights(zero_init_last=False)`` changes only the parameters it reports (standard init
  apart from those), and ``zero_init_last=True`` sets the very same parameters to zero;
* after zero-init, a block whose resolved record says ``identity_shortcut`` returns its
  (non-negative) input unchanged, and every other block does not: the hook agrees with what the
  built module does, and every residual block's last norm / layer scale starts at zero.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from helpers import meta_model, test_input_size

import edgevision as ev
from edgevision.initialization import initialize

MODELS = ev.list_models()


def _block_kinds() -> dict[tuple, tuple[str, ev.ResolvedBlock]]:
    """One block per behaviour class found anywhere in the zoo, the cheapest of its class.

    A class is (spec kind, identity_shortcut, stride, width kept, the spec's flag and choice fields):
    everything the shortcut decision and the module's structure depend on. Building every block of
    every model alone costs minutes on a 2-core machine; one per class covers every code path.
    """
    kinds: dict[tuple, tuple[int, str, ev.ResolvedBlock]] = {}
    for name in MODELS:
        for block in ev.resolve(ev.get_spec(name), input_size=test_input_size(name, 64)):
            if block.section == "head":
                continue
            spec = block.spec
            values = {f.name: getattr(spec, f.name) for f in dataclasses.fields(spec)}
            flags = tuple((k, v) for k, v in values.items() if isinstance(v, (bool, str))) + tuple(
                (k, None) for k, v in values.items() if v is None
            )
            key = (type(spec).__name__, block.identity_shortcut, block.stride, block.in_channels == block.out_channels, flags)
            cost = block.in_channels * block.input_size[0] * block.input_size[1]
            if key not in kinds or cost < kinds[key][0]:
                kinds[key] = (cost, name, block)
    return {key: (name, block) for key, (_, name, block) in kinds.items()}


BLOCK_KINDS = list(_block_kinds().values())


def _parameters(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in module.named_parameters()}


@torch.no_grad()
def _random_batchnorm_statistics(module: torch.nn.Module) -> None:
    """Random gamma and variance: a BN-ReLU is no longer the identity. Mean and beta stay 0, as initialized
    (and as in train mode, where BN(0) = beta), so a zeroed branch stays zero through later BNs (Ghost's cheap op)."""
    for norm in module.modules():
        if isinstance(norm, torch.nn.modules.batchnorm._BatchNorm):
            if isinstance(norm.weight, torch.nn.Parameter):
                norm.weight.uniform_(0.5, 1.5)
            norm.running_var.uniform_(0.5, 1.5)


@pytest.mark.parametrize("name, block", BLOCK_KINDS, ids=[f"{type(b.spec).__name__}-{n}-{b.path}" for n, b in BLOCK_KINDS])
def test_identity_shortcut_hook_agrees_with_built_module_and_zero_init(name, block):
    torch.manual_seed(0)
    module = block.spec.build(block).eval()
    _random_batchnorm_statistics(module)
    before = _parameters(module)
    standard = initialize(module, zero_init_last=False)
    after = _parameters(module)
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    assert changed <= set(standard), f"init_weights(False) changed {sorted(changed - set(standard))[:3]}"
    assert all(after[n].abs().sum() > 0 for n in standard), "a standard init left zeros"

    zeroed = initialize(module, zero_init_last=True)
    assert zeroed == standard, "zero_init_last=True and False set different parameters"
    final = _parameters(module)
    assert all(torch.count_nonzero(final[n]) == 0 for n in zeroed)
    assert all(torch.equal(final[n], after[n]) for n in final if n not in zeroed)

    x = torch.rand(1, block.in_channels, *block.input_size)  # non-negative: a ReLU after the sum keeps x
    with torch.no_grad():
        out = module(x)
    is_identity = out.shape == x.shape and torch.allclose(out, x, atol=1e-6)
    assert is_identity == block.identity_shortcut, (
        f"identity_shortcut={block.identity_shortcut} but the zero-initialized module {'is' if is_identity else 'is not'} the identity"
    )


@pytest.mark.parametrize("name", MODELS)
def test_every_identity_block_starts_as_the_identity_after_zero_init(name):
    """Registry-wide on the meta device (shapes only): each identity-shortcut block has a zeroed parameter."""
    resolved = ev.resolve(ev.get_spec(name))
    assert resolved.head.identity_shortcut is False
    zeroed = initialize(meta_model(name), zero_init_last=True)
    missing = [b.path for b in resolved if b.identity_shortcut and not any(z.startswith(b.path + ".") for z in zeroed)]
    assert not missing, f"identity-shortcut blocks without zero-init: {missing[:5]}"


def test_identity_shortcut_is_not_serialized():
    """A property, not a field: JSON (and so latency-table keys) stay as they were."""
    block = ev.resolve(ev.get_spec("resnet18")).stage(0)[1]
    assert block.identity_shortcut is True
    assert "identity_shortcut" not in block.to_json()
    assert ev.ResolvedBlock.from_json(block.to_json()) == block


def test_zero_init_false_after_true_restores_the_outputs():
    """gamma back to 1 and LayerScale back to its paper value: the standard init, outputs as built."""
    for name in ("resnet18", "edgenext_xx_small"):
        torch.manual_seed(0)
        model = ev.create_model(name, num_classes=4).eval()
        x = torch.randn(1, 3, 64, 64)
        with torch.no_grad():
            reference = model(x)
            initialize(model, zero_init_last=True)
            zeroed = model(x)
            initialize(model, zero_init_last=False)
            restored = model(x)
        assert not torch.equal(zeroed, reference)
        assert torch.equal(restored, reference), name


def test_initialize_rejects_non_modules():
    with pytest.raises(TypeError, match="nn.Module"):
        initialize("resnet18")
