"""Knowledge distillation as one loss module, for pruning fine-tunes and quantization-aware training.

* Logits: Hinton, Vinyals & Dean, "Distilling the Knowledge in a Neural Network" (2015):
  ``KL(softmax(t / T) || softmax(s / T)) * T^2`` mixed with the hard-label loss by ``alpha``
  (the T^2 keeps the soft term's gradient scale independent of T, Sec. 2).
* Features (optional): attention transfer on matched stages (Zagoruyko & Komodakis, ICLR 2017,
  Eq. 2): the spatial map ``mean_c(A^2)``, L2-normalized, compared between teacher and student.
  It needs no adapter when a pruned student has fewer channels than its teacher, which is the
  usual case here; stages are matched by index (``stages.i`` of both networks).

The teacher runs in eval mode without gradients. ``train(..., distill=loss)`` calls
``loss(inputs, student_logits, hard_loss)`` once per step.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["DistillationLoss", "kd_loss", "attention_map"]


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Hinton's soft-target term: KL(teacher || student) at temperature T, times T^2 (batch mean)."""
    t = temperature
    return F.kl_div(F.log_softmax(student_logits / t, 1), F.log_softmax(teacher_logits / t, 1), reduction="batchmean", log_target=True) * t * t


def attention_map(features: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, H*W): channel mean of squared activations, L2-normalized (AT, Eq. 2)."""
    return F.normalize(features.float().pow(2).mean(1).flatten(1), dim=1)


class DistillationLoss(nn.Module):
    """``(1 - alpha) * hard + alpha * KD(T)`` [+ ``beta`` * attention transfer on ``feature_stages``]."""

    def __init__(
        self,
        teacher: nn.Module,
        temperature: float = 4.0,
        alpha: float = 0.9,
        feature_stages: Sequence[int] = (),
        beta: float = 1000.0,  # AT's weight in the paper (Sec. 4: beta = 10^3 over the map L2 terms)
    ) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"distillation temperature must be positive, got {temperature}")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"distillation alpha must be in [0, 1], got {alpha}")
        self.teacher = teacher.eval()
        for parameter in self.teacher.parameters():
            parameter.requires_grad_(False)
        self.temperature, self.alpha, self.beta = temperature, alpha, beta
        self.feature_stages = tuple(feature_stages)
        self._teacher_features: dict[int, torch.Tensor] = {}
        self._student_features: dict[int, torch.Tensor] = {}
        self._hooks: list = []
        for index in self.feature_stages:
            self._hooks.append(teacher.stages[index].register_forward_hook(self._keep(self._teacher_features, index)))

    @staticmethod
    def _keep(store: dict, index: int):
        def hook(_module, _inputs, output):
            store[index] = output

        return hook

    def attach(self, student: nn.Module) -> "DistillationLoss":
        """Record the student's matched stage outputs (needed only with ``feature_stages``)."""
        for index in self.feature_stages:
            self._hooks.append(student.stages[index].register_forward_hook(self._keep(self._student_features, index)))
        return self

    def forward(self, inputs: torch.Tensor, student_logits: torch.Tensor, hard_loss: torch.Tensor) -> torch.Tensor:
        self.teacher.to(inputs.device)
        with torch.no_grad():
            teacher_logits = self.teacher(inputs).float()
        loss = (1.0 - self.alpha) * hard_loss + self.alpha * kd_loss(student_logits.float(), teacher_logits, self.temperature)
        for index in self.feature_stages:
            student, teacher = self._student_features.get(index), self._teacher_features.get(index)
            if student is None:
                raise RuntimeError("feature distillation needs DistillationLoss.attach(student) before training")
            loss = loss + self.beta / 2 * (attention_map(student) - attention_map(teacher)).pow(2).mean()
        return loss
