"""Ready-made models for the course: an MLP and a LeNet-style CNN.

>>> import minidl.models as models
>>> models.mlp()
Sequential(
  (0): Flatten(start_dim=1)
  (1): Linear(in_features=64, out_features=128, bias=True)
  (2): ReLU()
  (3): Linear(in_features=128, out_features=64, bias=True)
  (4): ReLU()
  (5): Linear(in_features=64, out_features=10, bias=True)
)
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from minidl import nn


def mlp(in_features: int = 64, hidden: Sequence[int] = (128, 64), num_classes: int = 10,
        dtype=np.float32) -> nn.Sequential:
    """A multi-layer perceptron: flatten, then Linear + ReLU per hidden size, then a Linear.

    Parameters
    ----------
    in_features : int, default 64
        Pixels per image (8 x 8 digits: 64; 28 x 28 MNIST: 784).
    hidden : sequence of int, default (128, 64)
        Width of each hidden layer.
    num_classes : int, default 10
    dtype : dtype, default float32
    """
    layers: list[nn.Module] = [nn.Flatten()]
    width = in_features
    for h in hidden:
        layers += [nn.Linear(width, h, dtype=dtype), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, num_classes, dtype=dtype))
    return nn.Sequential(*layers)


def lenet(
    image_size: int = 8, in_channels: int = 1, num_classes: int = 10, dtype=np.float32
) -> nn.Sequential:
    """A LeNet-style CNN (LeCun et al., 1998): two conv + max-pool blocks, then three linear layers.

    =========  ==========================  ==========================
    image      8 x 8 (bundled digits)      28 x 28 (MNIST)
    =========  ==========================  ==========================
    block 1    conv 3x3, 16 ch, pad 1      conv 5x5, 6 ch, pad 2
    block 2    conv 3x3, 32 ch, pad 1      conv 5x5, 16 ch
    each       ReLU, max-pool 2x2          ReLU, max-pool 2x2
    features   32 x 2 x 2 = 128            16 x 5 x 5 = 400
    head       128 -> 64 -> 10             400 -> 120 -> 84 -> 10
    =========  ==========================  ==========================

    Parameters
    ----------
    image_size : int, default 8
        Height (= width) of the input images: 8 or 28 (other sizes use the
        small variant when < 16 and the classic one otherwise).
    in_channels : int, default 1
    num_classes : int, default 10
    dtype : dtype, default float32
    """
    if image_size < 4:
        raise ValueError(f"lenet needs images of at least 4 x 4 pixels, got {image_size}")
    if image_size < 16:
        c1, c2, k, pad2, head = 16, 32, 3, 1, (64,)
    else:
        c1, c2, k, pad2, head = 6, 16, 5, 0, (120, 84)
    side = (image_size // 2 + 2 * pad2 - k + 1) // 2
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, c1, k, padding=k // 2, dtype=dtype), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, k, padding=pad2, dtype=dtype), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
    ]
    width = c2 * side * side
    for h in head:
        layers += [nn.Linear(width, h, dtype=dtype), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, num_classes, dtype=dtype))
    return nn.Sequential(*layers)
