#!/usr/bin/env python3
"""Generate the ONNX importer's test vectors in testdata/onnx/.

    training/.venv/bin/python training/make_test_vectors.py
    training/.venv/bin/python training/make_test_vectors.py --only conv_relu_linear

For each case: NAME.onnx, NAME.input.npy (float32, batch dimension 1) and
NAME.output.npy (float32, what **onnxruntime** computes on that input), exported by
`torch.onnx.export` with the TorchScript exporter (dynamo=False) at opsets 13-18,
with the dynamo exporter (dynamo=True), and a few graphs built by hand with
onnx.helper (what torch never emits, e.g. asymmetric Conv pads). Cases exported with
`external_data=True` (tag `_external`) also have NAME.onnx.data, the ONNX external
data file the .onnx refers to. `--only CASE...` regenerates those torch cases and
their manifest entries, leaving the other files as they are. testdata/onnx/
manifest.json lists every case: exporter, options, opset, ops present, shapes.
testdata/onnx/malformed/ holds broken files and their own manifest.json saying
which error each must produce. Everything is seeded: rerunning gives the same
weights and inputs (the ONNX bytes may differ with other torch/onnx versions).
"""

import json
import os
import shutil
import sys
import warnings
import zlib

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper
from torch import nn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "testdata", "onnx")
SEED = 7

warnings.filterwarnings("ignore")


# ---------------------------------------------------------------- torch cases


class ConvStridePad(nn.Module):
    """Conv with stride 2 and symmetric padding 1, ReLU, Flatten, Linear (Gemm)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, stride=2, padding=1)
        self.fc = nn.Linear(4 * 4 * 4, 5)

    def forward(self, x):
        return self.fc(torch.flatten(F.relu(self.conv(x)), 1))


class ConvBnReluGap(nn.Module):
    """Conv, BatchNorm2d, ReLU, AdaptiveAvgPool2d(1) (GlobalAveragePool), Linear."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(6, 4)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(F.relu(self.bn(self.conv(x)))), 1))


class LinearBn(nn.Module):
    """Flatten, Linear, BatchNorm1d, ReLU, Linear."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(16, 12)
        self.bn = nn.BatchNorm1d(12)
        self.fc2 = nn.Linear(12, 3)

    def forward(self, x):
        return self.fc2(F.relu(self.bn(self.fc1(torch.flatten(x, 1)))))


class MatMulAdd(nn.Module):
    """x.view(1, -1) (Reshape with a constant shape), then explicit x @ W + b twice."""

    def __init__(self):
        super().__init__()
        self.w1 = nn.Parameter(torch.randn(18, 7) * 0.4)
        self.b1 = nn.Parameter(torch.randn(7) * 0.3)
        self.w2 = nn.Parameter(torch.randn(7, 4) * 0.5)
        self.b2 = nn.Parameter(torch.randn(4) * 0.3)

    def forward(self, x):
        h = torch.relu(torch.matmul(x.view(1, -1), self.w1) + self.b1)
        return torch.matmul(h, self.w2) + self.b2


class SquareMul(nn.Module):
    """Conv, square as x * x (ONNX Mul(x, x)), Flatten, Linear, x * x, Linear."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3, stride=2)
        self.fc1 = nn.Linear(3 * 3 * 3, 8)
        self.fc2 = nn.Linear(8, 4)

    def forward(self, x):
        h = self.conv(x)
        h = torch.flatten(h * h, 1)
        h = self.fc1(h)
        return self.fc2(h * h)


class SquarePow(nn.Module):
    """Linear, square as x ** 2 (ONNX Pow(x, 2)), Linear."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(10, 8)
        self.fc2 = nn.Linear(8, 3)

    def forward(self, x):
        return self.fc2(self.fc1(x) ** 2)


class AvgPool(nn.Module):
    """Conv, AvgPool2d(2), Flatten, Linear."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.pool = nn.AvgPool2d(2)
        self.fc = nn.Linear(4 * 4 * 4, 5)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.conv(x)), 1))


class MaxPool(nn.Module):
    """Conv, ReLU, MaxPool2d(2), MaxPool2d(3, stride 2, padding 1), Flatten, Linear."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.pool1 = nn.MaxPool2d(2)
        self.pool2 = nn.MaxPool2d(3, stride=2, padding=1)
        self.fc = nn.Linear(4 * 3 * 3, 6)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool2(self.pool1(F.relu(self.conv(x)))), 1))


class DropoutIdentity(nn.Module):
    """Linear, Dropout (eval), Identity, ReLU, Linear."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(12, 9)
        self.drop = nn.Dropout(0.3)
        self.ident = nn.Identity()
        self.fc2 = nn.Linear(9, 4)

    def forward(self, x):
        return self.fc2(F.relu(self.ident(self.drop(self.fc1(x)))))


class SoftmaxOut(nn.Module):
    """MLP ending in Softmax(dim=1)."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(20, 16)
        self.fc2 = nn.Linear(16, 10)

    def forward(self, x):
        return torch.softmax(self.fc2(F.relu(self.fc1(x))), dim=1)


class LogSoftmaxOut(nn.Module):
    """Conv, ReLU, Flatten, Linear, LogSoftmax(dim=1)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3)
        self.fc = nn.Linear(3 * 4 * 4, 10)

    def forward(self, x):
        return F.log_softmax(self.fc(torch.flatten(F.relu(self.conv(x)), 1)), dim=1)


class SignAct(nn.Module):
    """Linear, Sign, Linear (a binarized-network style activation)."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(16, 12)
        self.fc2 = nn.Linear(12, 5)

    def forward(self, x):
        return self.fc2(torch.sign(self.fc1(x)))


class ConcatBranches(nn.Module):
    """Two conv branches concatenated on channels (Concat axis 1), ReLU, conv 1x1, Linear."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(2, 3, 3, padding=1)
        self.b = nn.Conv2d(2, 2, 1)
        self.mix = nn.Conv2d(5, 2, 1)
        self.fc = nn.Linear(2 * 6 * 6, 4)

    def forward(self, x):
        h = F.relu(torch.cat([self.a(x), self.b(x)], dim=1))
        return self.fc(torch.flatten(self.mix(h), 1))


class ConvTranspose(nn.Module):
    """Conv, ReLU, ConvTranspose2d(k2 s2), ReLU, ConvTranspose2d(k3 s2 p1 output_padding 1)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.up1 = nn.ConvTranspose2d(4, 3, 2, stride=2)
        self.up2 = nn.ConvTranspose2d(3, 2, 3, stride=2, padding=1, output_padding=1)

    def forward(self, x):
        return self.up2(F.relu(self.up1(F.relu(self.conv(x)))))


class UpsampleNearest(nn.Module):
    """Conv, nn.Upsample(scale_factor=2, mode='nearest') (ONNX Resize), Conv."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 3, 3, padding=1)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.conv2 = nn.Conv2d(3, 2, 3, padding=1)

    def forward(self, x):
        return self.conv2(self.up(F.relu(self.conv1(x))))


class PadConv(nn.Module):
    """F.pad with asymmetric padding (left 1, right 2, top 0, bottom 1), then Conv."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3)
        self.fc = nn.Linear(3 * 4 * 6, 4)

    def forward(self, x):
        return self.fc(torch.flatten(self.conv(F.pad(x, (1, 2, 0, 1))), 1))


class LeNetMix(nn.Module):
    """MNIST-sized LeNet: conv, BN, ReLU, maxpool, conv, BN, ReLU, avgpool, dropout, FCs, LogSoftmax."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 4, 5)
        self.bn1 = nn.BatchNorm2d(4)
        self.c2 = nn.Conv2d(4, 8, 5)
        self.bn2 = nn.BatchNorm2d(8)
        self.drop = nn.Dropout(0.5)
        self.fc1 = nn.Linear(8 * 4 * 4, 32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x):
        h = F.max_pool2d(F.relu(self.bn1(self.c1(x))), 2)
        h = F.avg_pool2d(F.relu(self.bn2(self.c2(h))), 2)
        h = self.drop(torch.flatten(h, 1))
        return F.log_softmax(self.fc2(F.relu(self.fc1(h))), dim=1)


class BnDefault(nn.Module):
    """Conv, BatchNorm2d, Reshape, Linear, BatchNorm1d, the BNs as initialised (weight
    and running_var 1, bias and running_mean 0): the TorchScript exporter deduplicates
    equal initializers and emits Identity nodes on initializers."""

    keep_bn_default = True

    def __init__(self):
        super().__init__()
        self.c = nn.Conv2d(1, 2, 3)
        self.bn = nn.BatchNorm2d(2)
        self.fc = nn.Linear(72, 4)
        self.bn1 = nn.BatchNorm1d(4)

    def forward(self, x):
        return self.bn1(self.fc(self.bn(self.c(x)).view(1, -1)))


class TinyUNet(nn.Module):
    """Segmentation-style: conv, maxpool, conv, nearest upsample, concat skip, conv, 1x1 conv."""

    def __init__(self):
        super().__init__()
        self.enc = nn.Conv2d(1, 4, 3, padding=1)
        self.mid = nn.Conv2d(4, 8, 3, padding=1)
        self.up = nn.ConvTranspose2d(8, 4, 2, stride=2)
        self.dec = nn.Conv2d(8, 4, 3, padding=1)
        self.head = nn.Conv2d(4, 2, 1)

    def forward(self, x):
        e = F.relu(self.enc(x))
        m = F.relu(self.mid(F.max_pool2d(e, 2)))
        u = self.up(m)
        d = F.relu(self.dec(torch.cat([e, u], dim=1)))
        return self.head(d)


class UpsampleConcat(nn.Module):
    """Upsample (nearest) of a pooled branch concatenated with the full-resolution one."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.out = nn.Conv2d(4, 1, 1)

    def forward(self, x):
        a = F.relu(self.conv(x))
        b = self.up(F.avg_pool2d(a, 2))
        return self.out(torch.cat([a, b], dim=1))


class ConvReluLinear(nn.Module):
    """Conv 3x3 (8 channels), ReLU, Flatten, Linear (2,970 parameters); exported with
    external data: the large initializers live in NAME.onnx.data."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3)
        self.fc = nn.Linear(8 * 6 * 6, 10)

    def forward(self, x):
        return self.fc(torch.flatten(F.relu(self.conv(x)), 1))


TS = "torchscript"
DYN = "dynamo"
PRESERVE = {"training": "PRESERVE"}
NOOPT = {"optimize": False}
# torch.onnx.export(..., external_data=True): initializers above the exporter's size
# threshold go to NAME.onnx.data beside NAME.onnx (ONNX external data).
EXTERNAL = {"external_data": True}

# name -> (module class, input shape, input kind, [(exporter, opset, options)])
CASES = {
    "conv_stride_pad": (ConvStridePad, (1, 1, 8, 8), "randn",
                        [(TS, 13, {}), (TS, 17, {}), (DYN, 18, {}), (DYN, 17, {}), (DYN, 13, {})]),
    "conv_bn_relu_gap": (ConvBnReluGap, (1, 3, 8, 8), "randn",
                         [(TS, 13, PRESERVE), (TS, 15, {}), (DYN, 18, {}), (DYN, 18, NOOPT), (DYN, 15, {})]),
    "linear_bn": (LinearBn, (1, 16), "randn", [(TS, 13, PRESERVE), (TS, 17, {}), (DYN, 18, {}), (DYN, 18, NOOPT)]),
    "matmul_add": (MatMulAdd, (1, 2, 3, 3), "randn", [(TS, 13, {}), (TS, 18, {}), (DYN, 18, {})]),
    "square_mul": (SquareMul, (1, 1, 8, 8), "randn", [(TS, 13, {}), (TS, 15, {}), (DYN, 18, {})]),
    "square_pow": (SquarePow, (1, 10), "randn", [(TS, 13, {}), (TS, 17, {}), (DYN, 18, {}), (DYN, 15, {})]),
    "avgpool": (AvgPool, (1, 2, 8, 8), "randn", [(TS, 13, {}), (TS, 18, {}), (DYN, 18, {})]),
    "maxpool": (MaxPool, (1, 1, 12, 12), "randn", [(TS, 15, {}), (TS, 17, {}), (DYN, 18, {}), (DYN, 17, {})]),
    "dropout_identity": (DropoutIdentity, (1, 12), "randn",
                         [(TS, 13, PRESERVE), (TS, 17, {}), (DYN, 18, {}), (DYN, 18, NOOPT)]),
    "softmax_out": (SoftmaxOut, (1, 20), "randn", [(TS, 13, {}), (TS, 18, {}), (DYN, 18, {}), (DYN, 15, {})]),
    "log_softmax_out": (LogSoftmaxOut, (1, 1, 6, 6), "randn", [(TS, 15, {}), (TS, 17, {}), (DYN, 18, {})]),
    "sign": (SignAct, (1, 16), "randn", [(TS, 13, {}), (TS, 18, {}), (DYN, 18, {})]),
    "concat_branches": (ConcatBranches, (1, 2, 6, 6), "randn", [(TS, 13, {}), (TS, 17, {}), (DYN, 18, {})]),
    "conv_transpose": (ConvTranspose, (1, 1, 4, 4), "randn", [(TS, 13, {}), (TS, 17, {}), (DYN, 18, {})]),
    "upsample_nearest": (UpsampleNearest, (1, 1, 5, 5), "randn",
                         [(TS, 13, {}), (TS, 18, {}), (DYN, 18, {}), (DYN, 17, {})]),
    "pad_conv": (PadConv, (1, 1, 5, 5), "randn", [(TS, 13, {}), (TS, 17, {}), (DYN, 18, {}), (DYN, 18, NOOPT)]),
    "lenet_mix": (LeNetMix, (1, 1, 28, 28), "rand",
                  [(TS, 13, PRESERVE), (TS, 15, {}), (DYN, 18, {}), (DYN, 17, {}), (DYN, None, {})]),
    "bn_default": (BnDefault, (1, 1, 8, 8), "randn", [(TS, 13, PRESERVE), (TS, 17, {}), (DYN, 18, NOOPT)]),
    "tiny_unet": (TinyUNet, (1, 1, 8, 8), "randn", [(TS, 17, {}), (DYN, 18, {})]),
    "upsample_concat": (UpsampleConcat, (1, 1, 6, 6), "randn", [(TS, 15, {}), (DYN, 18, {})]),
    "conv_relu_linear": (ConvReluLinear, (1, 1, 8, 8), "randn", [(DYN, 18, EXTERNAL)]),
}


def randomize(module, gen):
    """Non-trivial parameter scales: weights x U(1, 2.5), biases N(0, 0.5), random BN stats."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear, nn.ConvTranspose2d)):
                m.weight.mul_(1 + 1.5 * torch.rand((), generator=gen))
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.5)
            elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                if getattr(module, "keep_bn_default", False):
                    continue
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=gen) * 0.5)
                m.running_var.copy_(0.5 + 1.5 * torch.rand(c, generator=gen))
                m.weight.copy_(1 + 0.3 * torch.randn(c, generator=gen))
                m.bias.copy_(0.3 * torch.randn(c, generator=gen))


def export_torch(module, x, path, exporter, opset, options):
    kwargs = dict(input_names=["input"], output_names=["output"])
    if opset is not None:
        kwargs["opset_version"] = opset
    if exporter == TS:
        kwargs["dynamo"] = False
        if options.get("training") == "PRESERVE":
            # Model is in eval mode; PRESERVE skips the eval-mode peephole that would
            # fuse BatchNormalization into Conv and drop Dropout.
            kwargs["training"] = torch.onnx.TrainingMode.PRESERVE
    else:
        kwargs["dynamo"] = True
        kwargs["external_data"] = options.get("external_data", False)
        kwargs["optimize"] = options.get("optimize", True)
        kwargs["verbose"] = False
    torch.onnx.export(module, (x,), path, **kwargs)


def run_ort(path, x):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return sess.run(None, {name: x})[0]


def describe(path):
    m = onnx.load(path)
    opset = next((o.version for o in m.opset_import if o.domain in ("", "ai.onnx")), None)
    ops = sorted({n.op_type for n in m.graph.node})
    counts = {}
    for n in m.graph.node:
        counts[n.op_type] = counts.get(n.op_type, 0) + 1
    init_names = {i.name for i in m.graph.initializer}
    inputs = [i.name for i in m.graph.input if i.name not in init_names]
    return m, opset, ops, counts, inputs


def external_initializers(path):
    """Names of the initializers whose data is in an external file."""
    m = onnx.load(path, load_external_data=False)
    return sorted(t.name for t in m.graph.initializer if t.data_location == TensorProto.EXTERNAL)


def tag(exporter, opset, options):
    t = {TS: "ts", DYN: "dynamo", "onnx.helper": "hand"}[exporter] + str(opset)
    if options.get("training") == "PRESERVE":
        t += "_preserve"
    if options.get("optimize") is False:
        t += "_noopt"
    if options.get("external_data"):
        t += "_external"
    return t


# ---------------------------------------------------------------- hand-built cases


def f32(a):
    return np.asarray(a, dtype=np.float32)


def hand_conv_asym_pad(rng, opset):
    w = f32(rng.normal(0, 0.6, (3, 2, 3, 3)))
    b = f32(rng.normal(0, 0.5, (3,)))
    # pads = [top, left, bottom, right]: output (6+0+2-3)+1 = 6 rows, (6+1+1-3)/2+1 = 3 cols
    conv = helper.make_node("Conv", ["input", "W", "B"], ["output"], name="conv_asym",
                            kernel_shape=[3, 3], pads=[0, 1, 2, 1], strides=[1, 2])
    graph = helper.make_graph(
        [conv], "conv_asym_pad",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 2, 6, 6])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, 6, 3])],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B")])
    return graph, (1, 2, 6, 6), "Conv with asymmetric pads [0,1,2,1] and strides [1,2] (torch never emits this)"


def hand_identity_constant_dropout(rng, opset):
    w = f32(rng.normal(0, 0.5, (6, 5)))  # Gemm transB=0: B is K x N
    c = f32(rng.uniform(0.5, 2.0, (1, 6)))
    shape = np.array([1, 5], dtype=np.int64)
    nodes = [
        helper.make_node("Identity", ["input"], ["x1"], name="ident"),
        helper.make_node("Constant", [], ["scale"], name="const_scale",
                         value=numpy_helper.from_array(c, "scale_value")),
        helper.make_node("Mul", ["x1", "scale"], ["x2"], name="mul_const"),
        helper.make_node("Dropout", ["x2"], ["x3"], name="dropout"),
        helper.make_node("Gemm", ["x3", "W"], ["x4"], name="gemm_transb0"),
        helper.make_node("Constant", [], ["shape"], name="const_shape",
                         value=numpy_helper.from_array(shape, "shape_value")),
        helper.make_node("Reshape", ["x4", "shape"], ["x5"], name="reshape_const"),
        helper.make_node("Relu", ["x5"], ["output"], name="relu"),
    ]
    graph = helper.make_graph(
        nodes, "identity_constant_dropout",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 6])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 5])],
        [numpy_helper.from_array(w, "W")])
    return graph, (1, 6), ("Identity, Constant (a tensor multiplied in, and a Reshape shape), Dropout "
                           "(inference: identity), Gemm with transB=0 and no bias, Reshape, Relu")


def hand_global_avgpool_flatten(rng, opset):
    w = f32(rng.normal(0, 0.7, (4, 3, 1, 1)))
    g = f32(rng.normal(0, 0.5, (2, 4)))
    gb = f32(rng.normal(0, 0.5, (2,)))
    nodes = [
        helper.make_node("Conv", ["input", "W"], ["c"], name="conv1x1_nobias", kernel_shape=[1, 1]),
        helper.make_node("GlobalAveragePool", ["c"], ["p"], name="gap"),
        helper.make_node("Flatten", ["p"], ["f"], name="flatten", axis=1),
        helper.make_node("Gemm", ["f", "G", "GB"], ["output"], name="gemm", transB=1),
    ]
    graph = helper.make_graph(
        nodes, "global_avgpool_flatten",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 5, 5])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 2])],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(g, "G"), numpy_helper.from_array(gb, "GB")])
    return graph, (1, 3, 5, 5), "Conv without bias, GlobalAveragePool, Flatten, Gemm"


HAND_CASES = {
    "hand_conv_asym_pad": (hand_conv_asym_pad, [13, 17]),
    "hand_identity_constant_dropout": (hand_identity_constant_dropout, [13, 15]),
    "hand_global_avgpool_flatten": (hand_global_avgpool_flatten, [18]),
}


# ---------------------------------------------------------------- malformed


def malformed(out_dir, valid_path, rng):
    os.makedirs(out_dir, exist_ok=True)
    entries = []

    data = open(valid_path, "rb").read()
    with open(os.path.join(out_dir, "truncated.onnx"), "wb") as f:
        f.write(data[: len(data) // 2])
    entries.append({"file": "truncated.onnx", "error": "parse",
                    "description": f"the first half ({len(data) // 2} of {len(data)} bytes) of "
                                   f"{os.path.basename(valid_path)}; protobuf decoding must fail",
                    "message_should_mention": ["truncated.onnx"]})

    with open(os.path.join(out_dir, "garbage.onnx"), "wb") as f:
        junk = bytearray(rng.integers(0, 256, 1024, dtype=np.uint8).tobytes())
        junk[0] = 0x07  # field number 0, wire type 7: invalid for every protobuf decoder
        f.write(bytes(junk))
    entries.append({"file": "garbage.onnx", "error": "parse",
                    "description": "1,024 random bytes (seeded; first byte 0x07, an invalid protobuf tag); not an ONNX model",
                    "message_should_mention": ["garbage.onnx"]})

    def save(graph, name, opset=13):
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                                  producer_name="blindfold make_test_vectors")
        model.ir_version = 8
        onnx.save(model, os.path.join(out_dir, name))

    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 10])
    w = numpy_helper.from_array(f32(rng.normal(0, 0.5, (4, 10))), "W")
    tanh = helper.make_node("Tanh", ["h"], ["output"], name="tanh_1")
    gemm = helper.make_node("Gemm", ["input", "W"], ["h"], name="gemm_0", transB=1)
    save(helper.make_graph([gemm, tanh], "unsupported_op", [x],
                           [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 4])], [w]),
         "unsupported_op.onnx")
    entries.append({"file": "unsupported_op.onnx", "error": "unsupported_op",
                    "description": "a valid graph Gemm -> Tanh; Tanh is not supported",
                    "node": "tanh_1", "op": "Tanh", "opset": 13,
                    "message_should_mention": ["tanh_1", "Tanh", "13"]})

    gemm = helper.make_node("Gemm", ["input", "W_missing", "B"], ["output"], name="gemm_0", transB=1)
    b = numpy_helper.from_array(f32(np.zeros(4)), "B")
    save(helper.make_graph([gemm], "missing_initializer", [x],
                           [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 4])], [b]),
         "missing_initializer.onnx")
    entries.append({"file": "missing_initializer.onnx", "error": "missing_input",
                    "description": "Gemm gemm_0 whose weight input 'W_missing' is neither an initializer, "
                                   "a graph input nor a node output",
                    "node": "gemm_0", "op": "Gemm", "name": "W_missing",
                    "message_should_mention": ["gemm_0", "W_missing"]})

    w_bad = numpy_helper.from_array(f32(rng.normal(0, 0.5, (4, 7))), "W")
    gemm = helper.make_node("Gemm", ["input", "W", "B"], ["output"], name="gemm_0", transB=1)
    save(helper.make_graph([gemm], "shape_mismatch", [x],
                           [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 4])], [w_bad, b]),
         "shape_mismatch.onnx")
    entries.append({"file": "shape_mismatch.onnx", "error": "shape",
                    "description": "Gemm gemm_0 (transB=1) on input [1, 10] with weight [4, 7]: "
                                   "inner dimensions 10 and 7 differ",
                    "node": "gemm_0", "op": "Gemm",
                    "message_should_mention": ["gemm_0", "10", "7"]})

    lstm_w = numpy_helper.from_array(f32(rng.normal(0, 0.3, (1, 16, 10))), "Wl")
    lstm_r = numpy_helper.from_array(f32(rng.normal(0, 0.3, (1, 16, 4))), "Rl")
    lstm = helper.make_node("LSTM", ["seq", "Wl", "Rl"], ["Y", "output"], name="lstm_0", hidden_size=4)
    seq = helper.make_tensor_value_info("seq", TensorProto.FLOAT, [3, 1, 10])
    save(helper.make_graph([lstm], "unsupported_lstm", [seq],
                           [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 1, 4])],
                           [lstm_w, lstm_r]),
         "unsupported_lstm.onnx", opset=15)
    entries.append({"file": "unsupported_lstm.onnx", "error": "unsupported_op",
                    "description": "a single LSTM node (opset 15)", "node": "lstm_0", "op": "LSTM", "opset": 15,
                    "message_should_mention": ["lstm_0", "LSTM", "15"]})

    with open(os.path.join(out_dir, "manifest.json"), "w") as f:
        json.dump({"note": "Each file must be rejected with a clear error (never a panic). 'error' is the "
                           "kind; message_should_mention lists strings the message should contain.",
                   "cases": entries}, f, indent=2)
        f.write("\n")


# ---------------------------------------------------------------- main


def main():
    torch.set_num_threads(1)
    # `--only CASE [CASE...]`: regenerate those torch cases and update their entries
    # in manifest.json, leaving every other file alone.
    only = sys.argv[sys.argv.index("--only") + 1:] if "--only" in sys.argv else None
    if only is not None and (not only or any(c not in CASES for c in only)):
        sys.exit(f"--only takes case names among: {' '.join(CASES)}")
    manifest = []
    failures = []
    if only is None:
        # Remove what a previous run generated (not README.md).
        for sub in ("extra", "malformed"):
            shutil.rmtree(os.path.join(OUT, sub), ignore_errors=True)
        os.makedirs(OUT, exist_ok=True)
        for fn in os.listdir(OUT):
            if fn.endswith((".onnx", ".onnx.data", ".npy")) or fn == "manifest.json":
                os.remove(os.path.join(OUT, fn))
    else:
        with open(os.path.join(OUT, "manifest.json")) as f:
            old = json.load(f)
        manifest = [e for e in old["cases"] if e["case"] not in only]
        failures = [e for e in old["export_failures"] if not any(e["name"].startswith(c + "_") for c in only)]
        for e in old["cases"]:
            if e["case"] in only:
                for fn in [e["file"], e["input"], e["output"], *e.get("external_data", [])]:
                    if os.path.exists(os.path.join(OUT, fn)):
                        os.remove(os.path.join(OUT, fn))

    for case, (cls, shape, kind, exports) in CASES.items():
        if only is not None and case not in only:
            continue
        # Seeds derived from the case name, so adding a case changes no other.
        case_seed = SEED * 100003 + zlib.crc32(case.encode())
        torch.manual_seed(case_seed)
        gen = torch.Generator().manual_seed(case_seed + 1)
        module = cls()
        randomize(module, gen)
        module.eval()
        x = torch.randn(shape, generator=gen) if kind == "randn" else torch.rand(shape, generator=gen)
        with torch.no_grad():
            want = module(x).numpy()
        for exporter, opset, options in exports:
            external = bool(options.get("external_data"))
            tmp_dir = os.path.join(OUT, "tmp_export")
            os.makedirs(tmp_dir, exist_ok=True)
            # An external-data file names its .data file: export it under its final
            # name (assuming the requested opset; checked below) in a scratch directory.
            tmp_name = f"{case}_{tag(exporter, opset, options)}" if external else "tmp_export"
            tmp = os.path.join(tmp_dir, f"{tmp_name}.onnx")
            try:
                export_torch(module, x, tmp, exporter, opset, options)
            except Exception as e:  # keep going; report which combination failed
                name = f"{case}_{tag(exporter, opset, options)}"
                failures.append({"name": name, "error": f"{type(e).__name__}: {str(e)[:300]}"})
                print(f"FAILED {name}: {type(e).__name__}: {str(e)[:200]}", file=sys.stderr)
                shutil.rmtree(tmp_dir, ignore_errors=True)
                continue
            # Named by the opset actually produced: the dynamo exporter works at opset 18
            # and converts down on request, which fails for 13 (the file stays at 18);
            # without opset_version it uses torch's default (20 in torch 2.15).
            got_opset = describe(tmp)[1]
            name = f"{case}_{tag(exporter, got_opset, options)}"
            if opset is None:
                name += "_default"
            elif opset != got_opset:
                name += f"_req{opset}"
            # Opsets outside the importer's required range (13-18) go to extra/, kept
            # apart so that a test over testdata/onnx/*.onnx sees only required ones.
            sub = "" if 13 <= got_opset <= 18 else "extra"
            os.makedirs(os.path.join(OUT, sub), exist_ok=True)
            path = os.path.join(OUT, sub, f"{name}.onnx")
            data_files = []
            if external:
                if name != tmp_name:
                    raise RuntimeError(f"{tmp_name}: exported at opset {got_opset}, not {opset}")
                data_files = sorted(fn for fn in os.listdir(tmp_dir) if fn != f"{name}.onnx")
                if data_files != [f"{name}.onnx.data"]:
                    raise RuntimeError(f"{name}: expected one {name}.onnx.data, got {data_files}")
                for fn in data_files:
                    os.replace(os.path.join(tmp_dir, fn), os.path.join(OUT, sub, fn))
            os.replace(tmp, path)
            shutil.rmtree(tmp_dir, ignore_errors=True)
            m, got_opset, ops, counts, inputs = describe(path)
            xin = x.numpy().astype(np.float32)
            out = run_ort(path, xin).astype(np.float32)
            err = float(np.abs(out - want).max())
            scale = max(1.0, float(np.abs(want).max()))
            if err > 1e-4 * scale:
                raise RuntimeError(f"{name}: onnxruntime and torch differ by {err}")
            np.save(os.path.join(OUT, sub, f"{name}.input.npy"), xin)
            np.save(os.path.join(OUT, sub, f"{name}.output.npy"), out)
            rel = f"{sub}/{name}" if sub else name
            manifest.append({
                "name": name, "file": f"{rel}.onnx", "input": f"{rel}.input.npy", "output": f"{rel}.output.npy",
                "case": case, "description": cls.__doc__.strip(),
                "exporter": exporter, "export_options": options, "requested_opset": opset, "opset": got_opset,
                "ops": ops, "op_counts": counts, "input_name": inputs[0],
                "input_shape": list(xin.shape), "output_shape": list(out.shape),
                "max_abs_output": float(np.abs(out).max()), "torch_vs_onnxruntime_max_abs_diff": err,
                **({"external_data": [f"{sub}/{fn}" if sub else fn for fn in data_files],
                    "external_initializers": external_initializers(path)} if external else {}),
            })
            print(f"{name}: opset {got_opset}, ops {' '.join(ops)}")

    rng = np.random.default_rng(SEED)
    for case, (build, opsets) in ({} if only is not None else HAND_CASES).items():
        for opset in opsets:
            graph, shape, desc = build(np.random.default_rng(SEED + opset), opset)
            model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                                      producer_name="blindfold make_test_vectors")
            model.ir_version = 8
            onnx.checker.check_model(model, full_check=True)
            name = f"{case}_{opset}"
            path = os.path.join(OUT, f"{name}.onnx")
            onnx.save(model, path)
            xin = f32(rng.normal(0, 1, shape))
            out = run_ort(path, xin).astype(np.float32)
            np.save(os.path.join(OUT, f"{name}.input.npy"), xin)
            np.save(os.path.join(OUT, f"{name}.output.npy"), out)
            _, got_opset, ops, counts, inputs = describe(path)
            manifest.append({
                "name": name, "file": f"{name}.onnx", "input": f"{name}.input.npy", "output": f"{name}.output.npy",
                "case": case, "description": desc,
                "exporter": "onnx.helper", "export_options": {}, "requested_opset": opset, "opset": got_opset,
                "ops": ops, "op_counts": counts, "input_name": inputs[0],
                "input_shape": list(xin.shape), "output_shape": list(out.shape),
                "max_abs_output": float(np.abs(out).max()), "torch_vs_onnxruntime_max_abs_diff": None,
            })
            print(f"{name}: opset {got_opset}, ops {' '.join(ops)}")

    if only is None:
        malformed(os.path.join(OUT, "malformed"), os.path.join(OUT, "conv_stride_pad_ts13.onnx"), rng)

    ops_by_exporter = {}
    for e in manifest:
        ops_by_exporter.setdefault(e["exporter"], set()).update(e["ops"])
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump({
            "generator": "training/make_test_vectors.py",
            "versions": {"torch": torch.__version__, "onnx": onnx.__version__,
                         "onnxruntime": ort.__version__, "numpy": np.__version__},
            "note": ("Files are relative to testdata/onnx/. extra/ holds exports outside the required "
                     "opset range 13-18 (the dynamo exporter's default opset). NAME.output.npy is onnxruntime's result on NAME.input.npy (float32). Compare with "
                     "a tolerance relative to max_abs_output (1e-4 relative is what torch vs onnxruntime "
                     "meets; fixed point needs more)."),
            "ops_by_exporter": {k: sorted(v) for k, v in ops_by_exporter.items()},
            "export_failures": failures,
            "cases": manifest,
        }, f, indent=2)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(d, fn)) for d, _, fs in os.walk(OUT) for fn in fs)
    print(f"{len(manifest)} cases, {len(failures)} export failures, {total} bytes in {OUT}")


if __name__ == "__main__":
    main()
