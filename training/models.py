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


def conv_bn_relu(cin, cout):
    """Conv 3x3 padding 1, batch normalization (folded by the importer), ReLU."""
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU())


class UNet(nn.Module):
    """A small two-level UNet for 64x64 digit segmentation (`unet`, see UNET_* below).

    Input (N, 1, 64, 64), pixels p/255; output (N, 11, 64, 64) logits: class 0 is
    background, class d + 1 digit d. Downsampling is AvgPool2d(2) (linear: free on
    secret shares, as in BUNET); the first upsampling is a ConvTranspose2d (kernel 2,
    stride 2), the second a nearest Upsample x2 (ONNX Resize); skips concatenate
    channels (decoder features first, then the encoder's). Every Conv2d 3x3 (padding 1)
    is followed by BatchNorm2d and ReLU; the head is a 1x1 conv without activation.
    ``mid`` extra 3x3 conv layers run at the 16x16 bottleneck (cheap in ReLUs:
    c2 * 256 each) and widen the receptive field. ``u1`` is the transposed
    convolution's output channel count (default c2): its output is concatenated
    without a ReLU, so in secure mode it needs u1 * 32 * 32 stand-alone truncations.
    """

    def __init__(self, c0=8, c1=16, c2=16, d1=8, d0=8, mid=0, u1=None, classes=11):
        super().__init__()
        self.enc0 = conv_bn_relu(1, c0)                       # 64x64
        self.pool0 = nn.AvgPool2d(2)
        self.enc1 = conv_bn_relu(c0, c1)                      # 32x32
        self.pool1 = nn.AvgPool2d(2)
        self.bottleneck = nn.Sequential(conv_bn_relu(c1, c2),  # 16x16
                                        *[conv_bn_relu(c2, c2) for _ in range(mid)])
        u1 = c2 if u1 is None else u1
        self.up1 = nn.ConvTranspose2d(c2, u1, 2, stride=2)    # 16 -> 32
        self.dec1 = conv_bn_relu(u1 + c1, d1)                 # 32x32
        self.up0 = nn.Upsample(scale_factor=2, mode="nearest")  # 32 -> 64
        self.dec0 = conv_bn_relu(d1 + c0, d0)                 # 64x64
        self.head = nn.Conv2d(d0, classes, 1)
        self.relu_outputs = 64 * 64 * (c0 + d0) + 32 * 32 * (c1 + d1) + 16 * 16 * c2 * (1 + mid)
        self.standalone_truncations = 32 * 32 * u1

    def forward(self, x):
        e0 = self.enc0(x)
        e1 = self.enc1(self.pool0(e0))
        b = self.bottleneck(self.pool1(e1))
        u1 = self.dec1(torch.cat([self.up1(b), e1], 1))
        u0 = self.dec0(torch.cat([self.up0(u1), e0], 1))
        return self.head(u0)


# The zoo's UNet (trained by training/train_unet.py, not train_zoo.py).
UNET_CONFIG = dict(c0=6, c1=16, c2=32, d1=8, d0=6, mid=1, u1=16)


def unet():
    return UNet(**UNET_CONFIG)


def unet_architecture(c0, c1, c2, d1, d0, mid, u1=None, classes=11):
    u1 = c2 if u1 is None else u1
    mids = "".join(f", Conv {c2}-{c2} 3x3 p1 BN ReLU" for _ in range(mid))
    return (f"UNet 64x64: enc0 Conv 1-{c0} 3x3 p1 BN ReLU @64, AvgPool 2, "
            f"enc1 Conv {c0}-{c1} 3x3 p1 BN ReLU @32, AvgPool 2, "
            f"bottleneck Conv {c1}-{c2} 3x3 p1 BN ReLU{mids} @16, "
            f"ConvTranspose {c2}-{u1} 2x2 s2, Concat enc1, dec1 Conv {u1 + c1}-{d1} 3x3 p1 BN ReLU @32, "
            f"nearest Upsample x2, Concat enc0, dec0 Conv {d1 + c0}-{d0} 3x3 p1 BN ReLU @64, "
            f"head Conv {d0}-{classes} 1x1")


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
