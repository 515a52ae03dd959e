"""Architectures of the blindfold model zoo (DESIGN.md section 5).

Every MNIST network takes a float tensor of shape (N, 1, 28, 28) with pixels scaled
to [0, 1] (p / 255) and returns 10 logits; there is no normalisation layer beyond
that scaling. `sok_ecg` takes (N, 180) and returns 16 logits.

"square" is the polynomial activation x * x (exported by the TorchScript exporter as
ONNX Mul(x, x)).
"""

import torch
from torch import nn


class Square(nn.Module):
    """x -> x * x, the activation of the polynomial (HE/MPC-friendly) networks."""

    def forward(self, x):
        return x * x


def secureml():
    # SecureML (Mohassel & Zhang 2017): FC 784-128-128-10 with square activations.
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, 128), Square(),
        nn.Linear(128, 128), Square(),
        nn.Linear(128, 10),
    )


def cryptonets():
    # CryptoNets (Gilad-Bachrach et al. 2016), as usually re-implemented:
    # conv 5x5 stride 2 (28+2-5)/2+1 = 13 -> 5x13x13 = 845.
    return nn.Sequential(
        nn.Conv2d(1, 5, 5, stride=2, padding=1), Square(),
        nn.Flatten(),
        nn.Linear(845, 100), Square(),
        nn.Linear(100, 10),
    )


def deepsecure():
    # DeepSecure (Rouhani et al. 2018) MNIST: conv 5x5 stride 2 pad 2 -> 5x14x14 = 980.
    return nn.Sequential(
        nn.Conv2d(1, 5, 5, stride=2, padding=2), nn.ReLU(),
        nn.Flatten(),
        nn.Linear(980, 100), nn.ReLU(),
        nn.Linear(100, 10),
    )


def minionn():
    # MiniONN (Liu et al. 2017) MNIST CNN: 28 -conv5-> 24 -pool-> 12 -conv5-> 8 -pool-> 4.
    return nn.Sequential(
        nn.Conv2d(1, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(256, 100), nn.ReLU(),
        nn.Linear(100, 10),
    )


def sok_mnist():
    # The SoK's (FHE-based) MNIST model, a small polynomial CNN with an average pool:
    # conv 5x5 stride 2 pad 2 -> 5x14x14, square, avgpool 2 -> 5x7x7 = 245,
    # FC 245-100, square, FC 100-10. Padding 2 (not 1) so the 2x2 pool tiles the
    # 14x14 map exactly instead of silently dropping the last row and column.
    return nn.Sequential(
        nn.Conv2d(1, 5, 5, stride=2, padding=2), Square(),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(245, 100), Square(),
        nn.Linear(100, 10),
    )


def sok_ecg():
    # The SoK's ECG network: FC 180-40, square, FC 40-16. No ECG data here: the zoo
    # ships it with seeded random weights, for cost measurements only.
    return nn.Sequential(
        nn.Linear(180, 40), Square(),
        nn.Linear(40, 16),
    )


def ppml_a():
    # PPML overview, model A: x^2 MLP 784-128-10.
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, 128), Square(),
        nn.Linear(128, 10),
    )


def ppml_b():
    # PPML overview, model B: ReLU MLP 784-128-128-10.
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, 128), nn.ReLU(),
        nn.Linear(128, 128), nn.ReLU(),
        nn.Linear(128, 10),
    )


def ppml_c():
    # PPML overview, model C: LeNet-5 style with max-pool and batch normalization
    # after each conv (exported with the BatchNormalization nodes kept, to exercise
    # BN folding in the importer).
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(400, 120), nn.ReLU(),
        nn.Linear(120, 84), nn.ReLU(),
        nn.Linear(84, 10),
    )


# name -> (builder, input shape without batch, dataset, trained)
ZOO = {
    "minionn": (minionn, (1, 28, 28), "mnist", True),
    "secureml": (secureml, (1, 28, 28), "mnist", True),
    "cryptonets": (cryptonets, (1, 28, 28), "mnist", True),
    "deepsecure": (deepsecure, (1, 28, 28), "mnist", True),
    "sok_mnist": (sok_mnist, (1, 28, 28), "mnist", True),
    "sok_ecg": (sok_ecg, (180,), "ecg (none: random weights)", False),
    "ppml_a": (ppml_a, (1, 28, 28), "mnist", True),
    "ppml_b": (ppml_b, (1, 28, 28), "mnist", True),
    "ppml_c": (ppml_c, (1, 28, 28), "mnist", True),
}

ARCHITECTURES = {
    "secureml": "Flatten, FC 784-128, x^2, FC 128-128, x^2, FC 128-10",
    "cryptonets": "Conv 1-5 5x5 s2 p1, x^2, Flatten, FC 845-100, x^2, FC 100-10",
    "deepsecure": "Conv 1-5 5x5 s2 p2, ReLU, Flatten, FC 980-100, ReLU, FC 100-10",
    "minionn": "Conv 1-16 5x5, ReLU, MaxPool 2, Conv 16-16 5x5, ReLU, MaxPool 2, Flatten, FC 256-100, ReLU, FC 100-10",
    "sok_mnist": "Conv 1-5 5x5 s2 p2, x^2, AvgPool 2, Flatten, FC 245-100, x^2, FC 100-10",
    "sok_ecg": "FC 180-40, x^2, FC 40-16",
    "ppml_a": "Flatten, FC 784-128, x^2, FC 128-10",
    "ppml_b": "Flatten, FC 784-128, ReLU, FC 128-128, ReLU, FC 128-10",
    "ppml_c": "Conv 1-6 5x5 p2, BN, ReLU, MaxPool 2, Conv 6-16 5x5, BN, ReLU, MaxPool 2, Flatten, "
              "FC 400-120, ReLU, FC 120-84, ReLU, FC 84-10",
}


def count_params(model):
    return sum(p.numel() for p in model.parameters())
