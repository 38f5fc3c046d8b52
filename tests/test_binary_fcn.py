"""The binarized FCN (segmentation/binary.py): sign forward with the straight-through gradient, XNOR-Net
weight scales, learnable activation thresholds, binary inputs to every binary conv, and training through them."""

import torch
import torch.nn.functional as F

import edgevision as ev
from edgevision.checkpoint import load, save
from edgevision.segmentation.binary import BinaryActivation, BinaryConv2d, BinaryFCNSpec, binarize
from edgevision.segmentation.training import segmentation_loss


def test_binarize_is_sign_forward_and_the_clipped_identity_backward():
    x = torch.tensor([-2.0, -0.5, 0.0, 0.3, 1.0, 1.5], requires_grad=True)
    y = binarize(x)
    assert y.tolist() == [-1.0, -1.0, 1.0, 1.0, 1.0, 1.0]  # sign(0) = +1
    y.sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 1.0, 0.0]  # BinaryNet's STE: 1 where |x| <= 1


def test_binary_conv_uses_two_values_per_output_channel_scaled_by_the_mean_magnitude():
    torch.manual_seed(0)
    conv = BinaryConv2d(4, 3, 3, padding=1, bias=False)
    weight = conv.binary_weight()
    for channel in range(3):
        alpha = conv.weight[channel].abs().mean()
        assert set(weight[channel].flatten().tolist()) <= {alpha.item(), -alpha.item()}
        assert torch.equal(weight[channel] > 0, conv.weight[channel] >= 0)
    x = torch.randn(2, 4, 8, 8)
    torch.testing.assert_close(conv(x), F.conv2d(x, weight.detach(), padding=1))
    conv(x).square().sum().backward()
    assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0  # the float weights learn


def test_activation_threshold_moves_the_boundary_and_learns():
    activation = BinaryActivation(2)
    with torch.no_grad():
        activation.threshold.copy_(torch.tensor([0.5, -0.5]))
    x = torch.tensor([0.4, 0.6]).view(1, 1, 2, 1).expand(1, 2, 2, 1).clone()
    out = activation(x)
    assert out[0, 0].flatten().tolist() == [-1.0, 1.0] and out[0, 1].flatten().tolist() == [1.0, 1.0]
    activation(x).sum().backward()
    # d sign(x - t)/dt = -1 inside the STE window |x - t| <= 1: both inputs of channel 0 (-0.1, 0.1), one of channel 1 (0.9, not 1.1)
    assert activation.threshold.grad.tolist() == [-2.0, -1.0]


def test_binary_fcn_parameters_and_binary_inputs_of_every_binary_conv():
    model = ev.create_model("binary_fcn", num_classes=3).eval()
    assert isinstance(model.spec, BinaryFCNSpec) and model.spec.output_stride == 8
    # stem 3x3 3->32 + BN + threshold; binary 3x3 32->64, 64->128, 128->256 (+ BN, threshold); 1x1 classifier 256->3 + bias
    expected = (27 * 32 + 64 + 32) + (288 * 64 + 128 + 64) + (576 * 128 + 256 + 128) + (1152 * 256 + 512 + 256) + (256 * 3 + 3)
    assert ev.count_params(model) == expected
    seen = []
    for module in model.modules():
        if isinstance(module, BinaryConv2d):
            module.register_forward_hook(lambda m, inputs, output: seen.append(inputs[0]))
    images = torch.randn(2, 3, 64, 64)
    logits = model(images)
    assert logits.shape == (2, 3, 64, 64) and len(seen) == 3
    assert all(set(torch.unique(x).tolist()) <= {-1.0, 1.0} for x in seen)  # every binary conv reads bits


def test_binary_fcn_checkpoint_round_trip_and_training_lowers_the_loss(tmp_path):
    torch.manual_seed(0)
    model = ev.create_model("binary_fcn", num_classes=3)
    images, masks = torch.randn(2, 3, 32, 32), torch.randint(0, 3, (2, 32, 32))
    masks[:, :16] = 0
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    thresholds = [m.threshold.detach().clone() for m in model.modules() if isinstance(m, BinaryActivation)]
    for _ in range(15):
        loss = segmentation_loss(model, images, masks, aux_weight=0.0)
        first = loss.item() if first is None else first
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.8 * first
    moved = [m.threshold for m in model.modules() if isinstance(m, BinaryActivation)]
    assert all(not torch.equal(before, after) for before, after in zip(thresholds, moved))
    model.eval()
    path = save(model, tmp_path / "bfcn.safetensors")
    torch.testing.assert_close(load(path)(images), model(images))
