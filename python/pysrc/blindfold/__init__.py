"""blindfold: private neural-network prediction.

Two servers that do not collude hold additive shares of a model and answer
queries on secret shares: neither sees the input, the answer or the weights.

    import blindfold, numpy as np
    model = blindfold.Model.load("minionn")          # a zoo name or an .onnx file
    x = np.random.rand(*model.input_shape).astype(np.float32)
    print(model.run(x))                              # the fixed-point reference
    with blindfold.LocalCluster(model) as cluster:   # both servers in this process
        print(cluster.query(x).scores)               # the same, computed on shares

Every heavy call releases the GIL. Errors raise :class:`BlindfoldError` with
the message the ``blindfold`` CLI prints for the same failure.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _native
from ._native import BlindfoldError

__all__ = [
    "BlindfoldError",
    "Model",
    "Client",
    "LocalCluster",
    "ClientServerClient",
    "LocalServer",
    "FheClient",
    "LocalFheServer",
    "FheAnswer",
    "Answer",
    "Prediction",
    "__version__",
]

__version__: str = _native.__version__

_MODES = ("plain", "float", "two-server", "client-server")


def _flat(x: Any, shape: Tuple[int, ...]) -> List[float]:
    """A float32 input of the model's shape: exactly ``shape``, the same up to
    dimensions of size 1 (a batch of one, a single channel), or flat (1-D) in
    the model's order. Anything else (an HWC image for a CHW model) is refused
    rather than silently reordered."""
    a = np.asarray(x, dtype=np.float32)
    want = tuple(d for d in shape if d != 1)
    flat = a.ndim == 1 and a.size == int(np.prod(shape))
    if not flat and a.shape != tuple(shape) and tuple(d for d in a.shape if d != 1) != want:
        raise BlindfoldError(
            f"input has shape {a.shape} ({a.size} values), the model takes {tuple(shape)}"
            f" ({int(np.prod(shape))} values)"
        )
    return a.reshape(-1).tolist()


def _count(name: str, v: Optional[int], minimum: int = 0) -> Optional[int]:
    if v is not None and (not isinstance(v, (int, np.integer)) or v < minimum):
        raise BlindfoldError(f"{name} must be an integer of at least {minimum}, not {v!r}")
    return None if v is None else int(v)


def _mode(mode: str) -> str:
    m = mode.replace("_", "-")
    if m not in _MODES:
        raise BlindfoldError(f"unknown mode '{mode}' (one of: {', '.join(_MODES)})")
    return m


@dataclass
class Prediction:
    """What :meth:`Model.run` returns."""

    label: int
    scores: np.ndarray
    #: The fixed-point outputs (plain mode and the secure modes), else None.
    ring: Optional[np.ndarray] = None
    mask: Optional[np.ndarray] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class Answer:
    """A private answer from two servers.

    ``scores`` are the decoded outputs (empty for a label-only query);
    ``ring`` the raw fixed-point outputs, bit-exact with ``Model.run(mode="plain")``.
    """

    label: int
    scores: np.ndarray
    ring: np.ndarray
    latency_ms: float
    client_bytes: int
    mask: Optional[np.ndarray] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @staticmethod
    def _from_json(s: str) -> "Answer":
        d = json.loads(s)
        return Answer(
            label=int(d["label"]),
            scores=np.asarray(d["scores"], dtype=np.float64),
            ring=np.asarray(d["ring"], dtype=np.uint64),
            latency_ms=float(d["latency_ms"]),
            client_bytes=int(d["client_bytes"]),
            mask=None if d.get("mask") is None else np.asarray(d["mask"], dtype=np.uint32),
            raw=d,
        )


class Model:
    """A model: the float graph as imported and its fixed-point program."""

    def __init__(self, native: "_native.NativeModel") -> None:
        self._native = native

    @staticmethod
    def load(
        path: Union[str, os.PathLike],
        frac_bits: int = 12,
        nonlinear: str = "auto",
        link: Optional[str] = None,
    ) -> "Model":
        """Load an ONNX file, or a zoo model by name (``minionn``, ``secureml``...).

        ``nonlinear`` picks the protocol of ReLU / max-pool / sign layers in the
        secure modes (``auto``, ``gc``, ``ot``); ``link`` (``"100mbit,20ms"``) is
        the link ``auto`` prices them on.
        """
        frac_bits = _count("frac_bits", frac_bits, 1)
        return Model(_native.NativeModel.load(os.fspath(path), frac_bits, nonlinear, link))

    @staticmethod
    def from_torch(
        module: Any,
        example_input: Any,
        path: Optional[Union[str, os.PathLike]] = None,
        frac_bits: int = 12,
        name: Optional[str] = None,
        **load_options: Any,
    ) -> "Model":
        """Export a PyTorch module with ``torch.onnx.export`` and load it.

        Needs ``torch`` (an optional dependency). ``example_input`` is a tensor of
        the input's shape, batch dimension included (``[1, C, H, W]``). The ONNX
        file goes to ``path`` (default: a temporary directory, removed after
        loading); the model is named after the file (``name``, default the
        module's class name in lower case).
        """
        try:
            import torch
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise BlindfoldError("Model.from_torch needs PyTorch: pip install torch") from e

        import inspect as _inspect

        was_training = module.training
        module.eval()
        tmpdir = None
        if path is None:
            tmpdir = tempfile.mkdtemp(prefix="blindfold-")
            path = os.path.join(tmpdir, (name or type(module).__name__.lower()) + ".onnx")
        kwargs = dict(input_names=["input"], output_names=["output"], opset_version=17)
        # The TorchScript exporter writes weights inline; recent torch
        # defaults to the dynamo exporter (which needs onnxscript).
        if "dynamo" in _inspect.signature(torch.onnx.export).parameters:
            kwargs["dynamo"] = False
        try:
            with torch.no_grad():
                torch.onnx.export(module, (example_input,), os.fspath(path), **kwargs)
            return Model.load(path, frac_bits=frac_bits, **load_options)
        finally:
            module.train(was_training)
            if tmpdir is not None:
                shutil.rmtree(tmpdir, ignore_errors=True)

    @property
    def name(self) -> str:
        return self._native.name

    @property
    def input_shape(self) -> Tuple[int, ...]:
        return tuple(self._native.input_shape)

    @property
    def output_shape(self) -> Tuple[int, ...]:
        return tuple(self._native.output_shape)

    def inspect(self, mode: str = "two-server") -> Dict[str, Any]:
        """``blindfold inspect --json``: layers, costs and each layer's protocol."""
        return json.loads(self._native.inspect_json(_mode(mode)))

    def run(self, x: Any, mode: str = "plain") -> Prediction:
        """Predict one input (numpy array of the input shape).

        ``plain`` is the fixed-point reference the secure engines equal bit for
        bit, ``float`` the model as trained; ``two-server`` and ``client-server``
        run the real protocols on loopback for this one input.
        """
        d = json.loads(self._native.run_json(_flat(x, self.input_shape), _mode(mode)))
        return Prediction(
            label=int(d["label"]),
            scores=np.asarray(d["scores"], dtype=np.float64),
            ring=None if d.get("ring") is None else np.asarray(d["ring"], dtype=np.uint64),
            mask=None if d.get("mask") is None else np.asarray(d["mask"], dtype=np.uint32),
            raw=d,
        )

    def evaluate(
        self,
        data: Union[str, os.PathLike, Tuple[Any, Any]],
        mode: str = "plain",
        limit: Optional[int] = None,
    ) -> Dict[str, Any]:
        """Accuracy and agreement on a data set (``blindfold eval --json``).

        ``data`` is an IDX directory (``images.idx3-ubyte``, ``labels.idx1-ubyte``,
        as ``data/mnist-test-1k``) or a pair ``(images, labels)``: ``uint8``
        images ``[N, H, W]`` (0-255) and integer labels ``[N]``. Either way the
        model gets each pixel divided by 255 (``[0, 1]``, one channel), as the
        IDX files are read; a model trained on other normalisation (mean/std)
        must fold it into its first layer, or be evaluated with :meth:`run`.
        """
        m = _mode(mode)
        limit = _count("limit", limit)
        if isinstance(data, (str, os.PathLike)):
            return json.loads(self._native.evaluate_dir(os.fspath(data), m, limit))
        images, labels = data
        im = np.asarray(images)
        if im.dtype != np.uint8:
            raise BlindfoldError(f"images must be uint8 (0-255), not {im.dtype}")
        if im.ndim != 3:
            raise BlindfoldError(f"images must be [N, H, W], not shape {im.shape}")
        lab = np.asarray(labels).astype(np.int64).reshape(-1)
        if lab.size != im.shape[0]:
            raise BlindfoldError(f"{im.shape[0]} images but {lab.size} labels")
        if lab.size and (lab.min() < 0 or lab.max() > 255):
            raise BlindfoldError("labels must be classes between 0 and 255")
        return json.loads(
            self._native.evaluate_arrays(
                im.tobytes(), int(im.shape[1]), int(im.shape[2]),
                lab.astype(np.uint8).tobytes(), m, limit,
            )
        )

    def split(self, out_dir: Union[str, os.PathLike]) -> Tuple[str, str]:
        """Write the two share files (``party0.share``, ``party1.share``) to
        ``out_dir``, owner read/write only; give one to each server."""
        return self._native.split(os.fspath(out_dir))

    def __repr__(self) -> str:
        return f"Model({self.name!r}, input {self.input_shape}, output {self.output_shape})"


class Client:
    """A client of a two-server deployment (``blindfold serve --party 0/1``).

    ``servers``: P0's and P1's addresses (``["10.0.0.1:7000", "10.0.0.2:7001"]``).
    ``tls``: the directory of the deployment's certificates (``blindfold certs``;
    the client reads ``ca.pem``, ``client.pem``, ``client.key``). Without it,
    ``insecure_plaintext=True`` is required (loopback tests only).
    """

    def __init__(
        self,
        servers: Sequence[str],
        tls: Optional[Union[str, os.PathLike]] = None,
        insecure_plaintext: bool = False,
    ) -> None:
        if isinstance(servers, str):
            servers = servers.split(",")  # "p0:7000,p1:7001", as the CLI's --servers
        self._native = _native.NativeClient(
            [str(s).strip() for s in servers],
            None if tls is None else os.fspath(tls),
            insecure_plaintext,
        )

    def query(self, x: Any) -> Answer:
        """Secret-share ``x`` between the servers and reconstruct the scores
        (the servers check the number of values against their model)."""
        a = np.asarray(x, dtype=np.float32)
        return Answer._from_json(self._native.query_json(a.reshape(-1).tolist(), False))

    def query_label(self, x: Any) -> int:
        """Only the label: the servers compute the argmax on shares too."""
        a = np.asarray(x, dtype=np.float32)
        return Answer._from_json(self._native.query_json(a.reshape(-1).tolist(), True)).label


class LocalCluster:
    """Both servers of one split, in this process on loopback (notebooks, tests).

        with blindfold.LocalCluster(model) as cluster:
            answer = cluster.query(x)

    The links are plain TCP on 127.0.0.1: for experiments on one machine; a
    deployment runs ``blindfold serve`` with TLS on two machines.
    """

    def __init__(self, model: Model, pool: int = 2) -> None:
        self.model = model
        self._native = _native.NativeCluster(model._native, _count("pool", pool, 1))

    @property
    def addresses(self) -> List[str]:
        return list(self._native.addresses)

    def query(self, x: Any) -> Answer:
        """Query both servers; the answer equals ``model.run(x)`` bit for bit."""
        flat = _flat(x, self.model.input_shape)
        return Answer._from_json(self._native.query_json(flat, False))

    def query_label(self, x: Any) -> int:
        """Only the label (the argmax computed on shares)."""
        flat = _flat(x, self.model.input_shape)
        return Answer._from_json(self._native.query_json(flat, True)).label

    def close(self) -> None:
        """Stop both servers."""
        self._native.close()

    def __enter__(self) -> "LocalCluster":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class ClientServerClient:
    """A client of one client-server server (``blindfold serve --mode
    client-server``): the server holds the model in clear, only this client
    learns the answer (HE + garbled circuits / OT comparisons).

    The connection keeps a pool of preprocessed queries: :meth:`preprocess`
    fills it ahead, so later queries pay only the online phase
    (``answer.raw["preprocessed_first"]`` says when one had to wait).
    ``tls``: the deployment's certificates; without it ``insecure_plaintext=True``.
    """

    def __init__(
        self,
        server: str,
        tls: Optional[Union[str, os.PathLike]] = None,
        insecure_plaintext: bool = False,
    ) -> None:
        self._native = _native.NativeCsClient(
            server, None if tls is None else os.fspath(tls), insecure_plaintext
        )

    def preprocess(self, n: int) -> None:
        """Run the offline phase of up to ``n`` queries now."""
        self._native.preprocess(_count("n", n))

    def query(self, x: Any) -> Answer:
        a = np.asarray(x, dtype=np.float32)
        return Answer._from_json(self._native.query_json(a.reshape(-1).tolist(), False))

    def query_label(self, x: Any) -> int:
        a = np.asarray(x, dtype=np.float32)
        return Answer._from_json(self._native.query_json(a.reshape(-1).tolist(), True)).label


class LocalServer:
    """A client-server server in this process on loopback (notebooks, tests);
    ``ClientServerClient(server.address, insecure_plaintext=True)`` talks to it."""

    def __init__(self, model: Model) -> None:
        self.model = model
        self._native = _native.NativeCsServer(model._native)

    @property
    def address(self) -> str:
        return self._native.address

    def close(self) -> None:
        self._native.close()

    def __enter__(self) -> "LocalServer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


@dataclass
class FheAnswer:
    """One input's answer from an FHE server, decrypted by the client.

    ``outputs`` are the exact integers of the lowered program (decrypted and
    CRT-combined; Python ints, they can exceed 64 bits), ``scores`` the same
    divided by the output scale.
    """

    label: int
    scores: np.ndarray
    outputs: List[int]
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)


class FheClient:
    """A client of one FHE server (``blindfold serve --mode fhe``): no
    interaction during evaluation. The keys are made here; the secret key never
    leaves this object, the evaluation keys go to the server once, when it
    connects. Inputs are encrypted here, evaluated by the server on
    ciphertexts, and decrypted here.

    ``tls``: the deployment's certificates (``blindfold certs``); without it,
    ``insecure_plaintext=True`` (loopback tests only).
    """

    def __init__(
        self,
        server: str,
        tls: Optional[Union[str, os.PathLike]] = None,
        insecure_plaintext: bool = False,
        timeout_s: int = 600,
    ) -> None:
        t = _count("timeout_s", timeout_s, 1)
        if t > 86_400:
            raise BlindfoldError(f"timeout_s must be at most 86400 (a day), not {timeout_s!r}")
        self._native = _native.NativeFheClient(
            server, None if tls is None else os.fspath(tls), insecure_plaintext, t
        )
        self.profile: Dict[str, Any] = json.loads(self._native.profile_json())
        #: The last query's figures (upload/download bytes, noise budget left, ms).
        self.last: Dict[str, Any] = {}

    @property
    def key_bytes(self) -> int:
        """Bytes of evaluation keys this client sent to the server."""
        return int(self._native.key_bytes)

    def query(self, xs: Any) -> List[FheAnswer]:
        """Encrypt a batch of inputs (a sequence, or an array whose first axis
        is the batch), have the server evaluate it, decrypt. The batch layout
        takes up to ``profile["max_batch"]`` inputs in one set of ciphertexts;
        the latency layout sends one query per input."""
        shape = tuple(self.profile["input_shape"])
        try:
            a = np.asarray(xs, dtype=np.float32)
        except (ValueError, TypeError) as e:
            raise BlindfoldError(f"inputs are not an array of numbers of one shape: {e}") from None
        if a.ndim == 0:
            raise BlindfoldError(f"an input is an array of shape {shape}, not a single number")
        if a.size == int(np.prod(shape)) and a.ndim <= len(shape):
            a = a.reshape((1,) + shape)  # a single input
        flats = [_flat(x, shape) for x in a]
        if not flats:
            raise BlindfoldError("no inputs to query")
        d = json.loads(self._native.query_json(flats))
        self.last = {k: v for k, v in d.items() if k != "answers"}
        return [
            FheAnswer(
                label=int(r["label"]),
                scores=np.asarray(r["scores"], dtype=np.float64),
                outputs=[int(v) for v in r["outputs"]],
                raw=r,
            )
            for r in d["answers"]
        ]

    def query_label(self, x: Any) -> int:
        """The label of one input (the scores are decrypted here and the argmax
        taken here: FHE has no server-side argmax)."""
        return self.query(x)[0].label

    def close(self) -> None:
        """Close the connection; the server drops this client's evaluation keys."""
        self._native.close()

    def __enter__(self) -> "FheClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class LocalFheServer:
    """An FHE server in this process on loopback (notebooks, tests): the model
    in clear and no secret key, as ``blindfold serve --mode fhe``;
    ``FheClient(server.address, insecure_plaintext=True)`` talks to it.

    ``layout``: ``"batch"`` (one input per slot, thousands per query) or
    ``"latency"`` (one input in a few ciphertexts). ``input_bits``,
    ``weight_bits`` and ``input_range`` are the CLI's ``--input-bits``,
    ``--weight-bits`` and ``--input-range``. Refuses a model that has ReLU or
    max-pool (FHE runs square activations only), naming the layer.
    """

    def __init__(
        self,
        model: Model,
        layout: str = "batch",
        input_bits: int = 6,
        weight_bits: int = 6,
        input_range: Tuple[float, float] = (0.0, 1.0),
    ) -> None:
        self.model = model
        lo, hi = input_range
        self._native = _native.NativeFheServer(
            model._native,
            layout,
            _count("input_bits", input_bits, 1),
            _count("weight_bits", weight_bits, 2),
            (float(lo), float(hi)),
        )
        self.profile: Dict[str, Any] = json.loads(self._native.profile_json())

    @property
    def address(self) -> str:
        return self._native.address

    def reference(self, x: Any) -> List[int]:
        """The exact integers every FHE answer to ``x`` decrypts to (the
        lowered program run in the clear)."""
        flat = _flat(x, tuple(self.profile["input_shape"]))
        return [int(v) for v in json.loads(self._native.reference_json(flat))["outputs"]]

    def close(self) -> None:
        self._native.close()

    def __enter__(self) -> "LocalFheServer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
