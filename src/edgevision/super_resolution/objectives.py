"""Training objectives beyond L1 for any SR model: adversarial (relativistic average GAN, ESRGAN),
distillation from a larger teacher generator (output L1 + feature maps at matched layers through 1x1
adapters), and DRN's dual regression.

All three are options of one :class:`SRObjectives` module that owns the training-only networks (the
patch discriminator, the dual downsampler, the adapters), so the SR model's own state dict, checkpoint and
ONNX graph never contain them; the teacher is held outside the module's state (it is frozen, and it
already has its own checkpoint).

Generator loss, per step (``L1`` means mean absolute error):

    pixel_weight * L1(SR, HR)
    + distill_weight * L1(SR, teacher(LR))                                    (with a teacher)
    + feature_weight * mean_k L1(adapter_k(student_k), teacher_k)             (matched layers)
    + dual_weight * L1(D(SR), LR)                                             (DRN Eq. 1, lambda 0.1)
    + gan_weight * L_G^Ra                                                     (after gan_start of the run)

L_G^Ra (ESRGAN Eq. 2, Wang et al. 2018, BasicSR's form): with C the discriminator's logits and E the
batch mean, ``(BCE(C(HR) - E[C(SR)], 0) + BCE(C(SR) - E[C(HR)], 1)) / 2``; the discriminator's loss is
the mirror image on detached SR. ESRGAN weights it 5e-3 beside L1 1e-2 and a VGG perceptual loss; we have
no pretrained VGG (nothing is downloaded, and a randomly initialised VGG's features are not perceptual),
so the generator trains on L1 (+ teacher features) + GAN, with ESRGAN's PSNR-oriented warm-up as
``gan_start`` (the first fraction of the steps without the adversarial term).

Multi-output networks (DRN, :mod:`.drn`: a model with ``forward_pyramid`` and ``pyramid_steps``) are
trained as the DRN release trains them: the pixel term is the sum of the L1 of every x2 step's image
against its target (:func:`pyramid_targets`: the LR input at the LR size, the HR patch MATLAB-bicubic
resized to each intermediate size, the HR patch), and the dual term has one x2 dual module per step,
``sum_k L1(D_k(image_{k+1}), target_k)`` (the release's ``dual_models``, with the primal's
``dual_features``). The training engine uses the same pyramid pixel term without objectives.

Feature distillation: a model offers ``feature_taps()`` (LR-space feature modules, shallow to deep:
SRGAN's residual blocks, CARN's cascading blocks, EFDN's cells). Student tap i is matched to the teacher
tap at the same relative depth, ``round((i + 1) * T / S) - 1``; a 1x1 conv maps the student's channels to
the teacher's (FitNets' regressor, Romero et al. 2015). Models without taps distill on the output only.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .dual import DRN_DUAL_WEIGHT, DualDownsampler
from .resize import imresize
from .srgan import PatchDiscriminator

__all__ = ["SRObjectiveConfig", "SRObjectives", "matched_taps", "primal_images", "pyramid_targets", "pixel_loss", "relativistic_generator_loss", "relativistic_discriminator_loss", "DRN_DUAL_WEIGHT"]


@dataclass(frozen=True)
class SRObjectiveConfig:
    pixel_weight: float = 1.0
    gan_weight: float = 0.0           # 0: no discriminator; ESRGAN uses 5e-3
    gan_start: float = 0.0            # fraction of the steps trained without the GAN term (ESRGAN's PSNR warm-up)
    discriminator_lr: float = 1e-4    # ESRGAN: 1e-4 for both networks
    discriminator_channels: int = 32
    distill_weight: float = 1.0       # output L1 to the teacher's SR (only with a teacher)
    feature_weight: float = 1.0       # matched-layer feature L1 (only with a teacher; 0: output only)
    dual_weight: float = 0.0          # DRN's lambda (0.1 in the paper); 0: no dual downsampler
    dual_features: int = 16           # DRN-S's n_feats

    def describe(self, teacher: str | None) -> dict:
        """The recipe fields a resumed run must share."""
        parts = {"pixel_weight": self.pixel_weight}
        if self.gan_weight:
            parts.update(gan="relativistic-average", gan_weight=self.gan_weight, gan_start=self.gan_start, discriminator_lr=self.discriminator_lr,
                         discriminator_channels=self.discriminator_channels)
        if teacher:
            parts.update(teacher=teacher, distill_weight=self.distill_weight, feature_weight=self.feature_weight)
        if self.dual_weight:
            parts.update(dual_weight=self.dual_weight, dual_features=self.dual_features)
        return parts


def primal_images(model: nn.Module, lr: torch.Tensor) -> list[torch.Tensor]:
    """The model's SR images, LR size up: ``forward_pyramid``'s list for a multi-output network, else ``[model(lr)]``."""
    pyramid = getattr(model, "forward_pyramid", None)
    return list(pyramid(lr)) if callable(pyramid) else [model(lr)]


def pyramid_targets(lr: torch.Tensor, hr: torch.Tensor, images: int) -> list[torch.Tensor]:
    """Targets of ``images`` outputs from the LR size to the HR size in x2 steps: ``lr``, ``hr`` resized (MATLAB bicubic,
    the way the LR inputs are made) to each intermediate size, ``hr``. One image: ``[hr]``."""
    if images == 1:
        return [hr]
    scale = 2 ** (images - 1)
    if hr.shape[-2] != lr.shape[-2] * scale or hr.shape[-1] != lr.shape[-1] * scale:
        raise ValueError(f"a {images}-image pyramid needs HR = LR x {scale}; got LR {tuple(lr.shape[-2:])} and HR {tuple(hr.shape[-2:])}")
    middle = [imresize(hr, 2 ** k / scale) for k in range(1, images - 1)]
    return [lr, *middle, hr]


def pixel_loss(images: list[torch.Tensor], targets: list[torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(L1 of the final image + the sum of the intermediate images' L1 (DRN's primal loss), {"pixel", ["pyramid"]});
    ``targets`` from :func:`pyramid_targets`, one per image."""
    terms = {"pixel": F.l1_loss(images[-1], targets[-1])}
    total = terms["pixel"]
    if len(images) > 1:
        terms["pyramid"] = torch.stack([F.l1_loss(image, target) for image, target in zip(images[:-1], targets[:-1])]).sum()
        total = total + terms["pyramid"]
    return total, terms


def relativistic_generator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """ESRGAN's L_G^Ra: the generator wants SR judged more real than HR on average."""
    return (F.binary_cross_entropy_with_logits(real_logits - fake_logits.mean(), torch.zeros_like(real_logits))
            + F.binary_cross_entropy_with_logits(fake_logits - real_logits.mean(), torch.ones_like(fake_logits))) / 2


def relativistic_discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """ESRGAN's L_D^Ra, each half against the other's detached mean (BasicSR)."""
    return (F.binary_cross_entropy_with_logits(real_logits - fake_logits.detach().mean(), torch.ones_like(real_logits))
            + F.binary_cross_entropy_with_logits(fake_logits - real_logits.detach().mean(), torch.zeros_like(fake_logits))) / 2


def matched_taps(student_taps: int, teacher_taps: int) -> list[tuple[int, int]]:
    """(student index, teacher index) at the same relative depth: the last taps always meet."""
    return [(i, max(0, round((i + 1) * teacher_taps / student_taps) - 1)) for i in range(student_taps)]


def _taps(model: nn.Module) -> list[nn.Module]:
    taps = getattr(model, "feature_taps", None)
    return list(taps()) if callable(taps) else []


def _out_channels(module: nn.Module) -> int:
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError(f"cannot tell the output channels of feature tap {type(module).__name__}")
    return convs[-1].out_channels


@contextmanager
def _capture(modules: list[nn.Module]):
    """Record each module's output during the forward passes inside the block."""
    outputs: list[torch.Tensor | None] = [None] * len(modules)

    def hook(index):
        def record(_module, _inputs, output):
            outputs[index] = output
        return record

    handles = [m.register_forward_hook(hook(i)) for i, m in enumerate(modules)]
    try:
        yield outputs
    finally:
        for handle in handles:
            handle.remove()


class SRObjectives(nn.Module):
    """The loss terms of one training run of ``student`` at ``scale``; holds the training-only networks."""

    def __init__(self, student: nn.Module, scale: int, config: SRObjectiveConfig, teacher: nn.Module | None = None, in_channels: int = 3) -> None:
        super().__init__()
        self.config = config
        self.scale = scale
        self.discriminator = PatchDiscriminator(in_channels, config.discriminator_channels) if config.gan_weight > 0 else None
        steps = int(getattr(student, "pyramid_steps", 0))
        self.dual: nn.Module | None = None
        if config.dual_weight > 0 and steps:  # DRN: one x2 dual module per step, at the primal's features (the release)
            self.dual = nn.ModuleList(DualDownsampler(2, in_channels, int(getattr(student, "dual_features", config.dual_features))) for _ in range(steps))
        elif config.dual_weight > 0:
            self.dual = DualDownsampler(scale, in_channels, config.dual_features)
        self._teacher = [teacher.eval().requires_grad_(False)] if teacher is not None else []  # a list: not a submodule, not in state_dict
        self.pairs: list[tuple[int, int]] = []
        adapters: list[nn.Module] = []
        if teacher is not None and config.feature_weight > 0:
            student_taps, teacher_taps = _taps(student), _taps(teacher)
            if student_taps and teacher_taps:
                self.pairs = matched_taps(len(student_taps), len(teacher_taps))
                adapters = [nn.Conv2d(_out_channels(student_taps[s]), _out_channels(teacher_taps[t]), 1) for s, t in self.pairs]
        self.adapters = nn.ModuleList(adapters)

    @property
    def teacher(self) -> nn.Module | None:
        return self._teacher[0] if self._teacher else None

    def generator_side_parameters(self) -> list[nn.Parameter]:
        """Parameters trained with the generator's optimizer: the adapters and the dual downsampler (DRN trains D with the primal)."""
        return list(self.adapters.parameters()) + (list(self.dual.parameters()) if self.dual is not None else [])

    def gan_active(self, progress: float) -> bool:
        return self.discriminator is not None and progress >= self.config.gan_start

    def generator_loss(self, student: nn.Module, lr: torch.Tensor, hr: torch.Tensor, progress: float = 1.0) -> tuple[torch.Tensor, dict[str, float], torch.Tensor]:
        """(total loss, {term: value}, SR) for a batch; ``progress`` in [0, 1] gates the GAN term."""
        config = self.config
        student_taps = _taps(student) if self.pairs else []
        with _capture(student_taps) as student_features:
            images = primal_images(student, lr)
        sr = images[-1]
        targets = pyramid_targets(lr, hr, len(images))  # once a step: the pixel and the dual terms read them
        pixel, terms = pixel_loss(images, targets)
        total = config.pixel_weight * pixel
        teacher = self.teacher
        if teacher is not None:
            teacher_taps = _taps(teacher) if self.pairs else []
            with torch.no_grad(), _capture(teacher_taps) as teacher_features:
                teacher_sr = teacher(lr)
            terms["distill"] = F.l1_loss(sr, teacher_sr)
            total = total + config.distill_weight * terms["distill"]
            if self.pairs:
                terms["feature"] = torch.stack([F.l1_loss(adapter(student_features[s]), teacher_features[t])
                                                for adapter, (s, t) in zip(self.adapters, self.pairs)]).mean()
                total = total + config.feature_weight * terms["feature"]
        if isinstance(self.dual, nn.ModuleList):  # DRN: step k+1's image back to step k's target
            terms["dual"] = torch.stack([F.l1_loss(dual(image), target) for dual, image, target in zip(self.dual, images[1:], targets)]).sum()
            total = total + config.dual_weight * terms["dual"]
        elif self.dual is not None:
            terms["dual"] = F.l1_loss(self.dual(sr), lr)  # DRN Eq. 1: the closed loop back to the LR input
            total = total + config.dual_weight * terms["dual"]
        if self.gan_active(progress):
            self.discriminator.requires_grad_(False)  # the generator step moves the generator only
            terms["gan"] = relativistic_generator_loss(self.discriminator(hr), self.discriminator(sr))
            self.discriminator.requires_grad_(True)
            total = total + config.gan_weight * terms["gan"]
        return total, {name: value.item() for name, value in terms.items()}, sr

    def discriminator_loss(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        """L_D^Ra on a detached SR batch (no gradient reaches the generator)."""
        if self.discriminator is None:
            raise ValueError("this run has no discriminator (gan_weight is 0)")
        return relativistic_discriminator_loss(self.discriminator(hr), self.discriminator(sr.detach()))
