"""The training recipe: every "Bag of Tricks" trick (He et al., CVPR 2019) is a switch.

``basic`` is the paper's baseline (Sec. 2: SGD with momentum 0.9, weight decay on every
parameter, step decay of the learning rate) and ``tricks`` turns on what Tables 4 and 6 add:
linear warm-up (Sec. 3.1), zero-init of the last BN gamma in each residual branch (Sec. 3.1),
no weight decay on biases and norm parameters (Sec. 3.1), cosine decay (Sec. 5.1), label
smoothing 0.1 (Sec. 5.2) and mixup with alpha 0.2 (Sec. 5.4); Nesterov momentum as in the paper's
Tables. EMA of weights and gradient clipping are extra switches, off in both presets. The
learning rate follows the paper's linear scaling rule (Sec. 3.1): ``lr`` is for ``batch_size``;
:meth:`Recipe.with_batch_size` rescales it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

from ..spec import Spec, check, check_choice, check_positive

__all__ = ["Recipe", "RECIPES", "get_recipe"]

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "step", "constant")


@dataclass(frozen=True, kw_only=True)
class Recipe(Spec):
    kind: ClassVar[str] = "recipe"

    name: str = "custom"
    epochs: int = 10
    batch_size: int = 64  # global batch (split across DDP processes)
    optimizer: str = "sgd"
    lr: float = 0.025  # at ``batch_size``: 0.1 per 256 images, the paper's baseline rate (Sec. 2.1)
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    no_bias_decay: bool = False  # Sec. 3.1: decay only conv/linear weights
    schedule: str = "step"  # step: x0.1 at 50% and 75% of training (the baseline's shape); cosine: Sec. 5.1
    warmup_epochs: float = 0.0  # Sec. 3.1: linear from 0 to lr
    label_smoothing: float = 0.0  # Sec. 5.2: epsilon
    mixup_alpha: float = 0.0  # Sec. 5.4: Beta(alpha, alpha)
    cutmix_alpha: float = 0.0  # Yun et al. 2019; with mixup on too, each batch picks one
    zero_init_residual: bool = False  # Sec. 3.1: gamma = 0 in each residual branch's last BN
    ema_decay: float | None = None  # e.g. 0.999: evaluate an exponential moving average of the weights
    grad_clip_norm: float | None = None  # clip the global gradient L2 norm
    crop_padding: int = 4  # random crop with zero padding (0 turns it off)
    horizontal_flip: bool = True  # used only where the dataset allows it (not on digits)

    def validate(self) -> None:
        check(self, "name", bool(self.name), "a non-empty string")
        check_positive(self, "epochs", "batch_size", "lr")
        check_choice(self, "optimizer", OPTIMIZERS)
        check_choice(self, "schedule", SCHEDULES)
        check(self, "momentum", 0.0 <= self.momentum < 1.0, "in [0, 1)")
        check(self, "nesterov", not self.nesterov or (self.optimizer == "sgd" and self.momentum > 0), "False unless optimizer='sgd' with momentum > 0")
        check_positive(self, "weight_decay", "warmup_epochs", "label_smoothing", "mixup_alpha", "cutmix_alpha", "crop_padding", allow_zero=True)
        check(self, "label_smoothing", self.label_smoothing < 1.0, "in [0, 1)")
        check(self, "warmup_epochs", self.warmup_epochs <= self.epochs, f"at most epochs ({self.epochs})")
        check(self, "ema_decay", self.ema_decay is None or 0.0 < self.ema_decay < 1.0, "None or in (0, 1)")
        check_positive(self, "grad_clip_norm")

    def with_batch_size(self, batch_size: int) -> "Recipe":
        """The same recipe at another global batch size, lr scaled linearly (Bag of Tricks Sec. 3.1)."""
        return dataclasses.replace(self, batch_size=batch_size, lr=self.lr * batch_size / self.batch_size)

    def switches(self) -> dict[str, object]:
        """The tricks as a flat dict (what the benchmark table and the metadata show)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


#: the two presets of the ablation; both train with the same batch, lr, epochs and augmentation
RECIPES: dict[str, Recipe] = {
    "basic": Recipe(name="basic"),
    "tricks": Recipe(
        name="tricks",
        nesterov=True,
        no_bias_decay=True,
        schedule="cosine",
        warmup_epochs=1.0,
        label_smoothing=0.1,
        mixup_alpha=0.2,
        zero_init_residual=True,
    ),
}


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; choose {' or '.join(RECIPES)}")
    return RECIPES[name]
