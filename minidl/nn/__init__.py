"""Layers, losses and the Module machinery, named as in ``torch.nn``."""

from minidl.nn import init
from minidl.nn.layers import (
    AvgPool2d,
    BatchNorm1d,
    BatchNorm2d,
    Conv2d,
    CrossEntropyLoss,
    Dropout,
    Flatten,
    Linear,
    MaxPool2d,
    MSELoss,
    ReLU,
    Sequential,
    Sigmoid,
    Tanh,
)
from minidl.nn.module import Module
from minidl.nn.parameter import Parameter

__all__ = [
    "Module", "Parameter", "init", "Linear", "Conv2d", "MaxPool2d", "AvgPool2d", "ReLU", "Tanh",
    "Sigmoid", "Flatten", "Dropout", "BatchNorm1d", "BatchNorm2d", "Sequential", "CrossEntropyLoss",
    "MSELoss",
]
