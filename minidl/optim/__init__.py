"""Optimizers and learning-rate schedules, named as in ``torch.optim``."""

from minidl.optim import lr_scheduler
from minidl.optim.adam import Adam, AdamW
from minidl.optim.lr_scheduler import CosineAnnealingLR, StepLR
from minidl.optim.optimizer import Optimizer
from minidl.optim.sgd import SGD

__all__ = [
    "Optimizer", "SGD", "Adam", "AdamW", "StepLR", "CosineAnnealingLR", "lr_scheduler",
]
