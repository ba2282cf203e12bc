"""Layers, losses and the Module machinery, named as in ``torch.nn``."""

from minidl.nn import init
from minidl.nn.containers import ModuleDict, ModuleList, Sequential
from minidl.nn.layers import (
    GELU,
    AvgPool2d,
    BatchNorm1d,
    BatchNorm2d,
    Conv2d,
    CrossEntropyLoss,
    Dropout,
    Embedding,
    Flatten,
    LayerNorm,
    Linear,
    MaxPool2d,
    MSELoss,
    NLLLoss,
    ReLU,
    Sigmoid,
    Tanh,
)
from minidl.nn.module import Module
from minidl.nn.parameter import Parameter

__all__ = [
    "Module", "Parameter", "init", "Linear", "Embedding", "Conv2d", "MaxPool2d", "AvgPool2d",
    "ReLU", "Tanh", "Sigmoid", "GELU", "Flatten", "Dropout", "BatchNorm1d", "BatchNorm2d",
    "LayerNorm", "Sequential", "ModuleList", "ModuleDict", "CrossEntropyLoss", "NLLLoss",
    "MSELoss",
]
