"""Training: the Bag of Tricks recipe (each trick a switch), the loop, transfer learning, DDP."""

from .ddp import DistributedContext, init_from_environment
from .loop import TrainResult, seed_everything, train
from .optim import make_optimizer, parameter_groups
from .recipe import RECIPES, Recipe, get_recipe
from .schedule import learning_rate
from .zero_init import zero_init_residual_norms

__all__ = [
    "DistributedContext",
    "RECIPES",
    "Recipe",
    "TrainResult",
    "get_recipe",
    "init_from_environment",
    "learning_rate",
    "make_optimizer",
    "parameter_groups",
    "seed_everything",
    "train",
    "zero_init_residual_norms",
]
