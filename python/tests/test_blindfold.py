"""The Python package against the engine: load, inspect, run, evaluate, split,
a LocalCluster bit-exact against run(mode="plain"), a Client, bad input."""

import os
import stat
from pathlib import Path

import numpy as np
import pytest

import blindfold
from blindfold import BlindfoldError

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data" / "mnist-test-1k"


def digits(n):
    """The first n bundled MNIST test digits as float32 [n, 1, 28, 28] in [0, 1], and labels."""
    raw = (DATA / "images.idx3-ubyte").read_bytes()
    count, rows, cols = (int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(3))
    images = np.frombuffer(raw[16:], dtype=np.uint8).reshape(count, rows, cols)[:n]
    labels = np.frombuffer((DATA / "labels.idx1-ubyte").read_bytes()[8:], dtype=np.uint8)[:n]
    return images, labels


@pytest.fixture(scope="module")
def ppml_b():
    return blindfold.Model.load("ppml_b")


def test_load_and_shapes(ppml_b):
    assert ppml_b.name
    assert int(np.prod(ppml_b.input_shape)) == 784
    assert ppml_b.output_shape[-1] == 10
    assert "Model(" in repr(ppml_b)


def test_load_from_path():
    m = blindfold.Model.load(ROOT / "models" / "secureml.onnx")
    assert int(np.prod(m.input_shape)) == 784


def test_inspect_lists_layers_with_protocols(ppml_b):
    info = ppml_b.inspect()
    assert info["supported"] is True
    assert info["mode"] == "two-server"
    assert info["parameters"] > 0
    assert all("protocol" in l for l in info["layers"])
    assert any("OT" in l["protocol"] or "garbled" in l["protocol"] for l in info["layers"])
    gc = blindfold.Model.load("ppml_b", nonlinear="gc").inspect()
    assert gc["nonlinear_protocol"] == "gc"
    assert isinstance(gc["nonlinear"], int)  # the element count, as inspect --json
    assert not any("OT comparisons" in l["protocol"] for l in gc["layers"])


def test_run_plain_and_float_agree_on_digits(ppml_b):
    images, labels = digits(20)
    right = 0
    for img, lab in zip(images, labels):
        x = (img.astype(np.float32) / 255.0).reshape(1, 28, 28)
        p = ppml_b.run(x)
        f = ppml_b.run(x, mode="float")
        assert p.scores.shape == (10,)
        assert p.label == int(np.argmax(p.scores))
        assert np.max(np.abs(p.scores - f.scores)) < 0.1
        right += p.label == lab
    assert right >= 17  # the model's accuracy is about 97 %


def test_evaluate_directory_and_arrays(ppml_b):
    r = ppml_b.evaluate(DATA, limit=50)
    assert r["n"] == 50
    assert r["plain_accuracy"] > 0.85
    images, labels = digits(50)
    r2 = ppml_b.evaluate((images, labels))
    assert r2["n"] == 50
    assert r2["plain_accuracy"] == r["plain_accuracy"]


def test_split_writes_private_shares(ppml_b, tmp_path):
    p0, p1 = ppml_b.split(tmp_path / "shares")
    for p in (p0, p1):
        st = os.stat(p)
        assert st.st_size > 1000
        assert stat.S_IMODE(st.st_mode) == 0o600
    assert Path(p0).read_bytes() != Path(p1).read_bytes()
    # Existing files are never overwritten (they might be readable by others).
    with pytest.raises(BlindfoldError, match="never overwritten"):
        ppml_b.split(tmp_path / "shares")


def test_errors_pickle_across_processes():
    import pickle

    e = pickle.loads(pickle.dumps(BlindfoldError("boom")))
    assert isinstance(e, BlindfoldError) and str(e) == "boom"


def test_client_accepts_the_cli_server_list():
    with pytest.raises(BlindfoldError, match="two servers are needed"):
        blindfold.Client("127.0.0.1:1,127.0.0.1:2,127.0.0.1:3", insecure_plaintext=True)
    blindfold.Client("127.0.0.1:1,127.0.0.1:2", insecure_plaintext=True)


def test_local_cluster_is_bit_exact_with_the_reference(ppml_b):
    images, _ = digits(4)
    with blindfold.LocalCluster(ppml_b) as cluster:
        assert len(cluster.addresses) == 2
        for img in images:
            x = img.astype(np.float32) / 255.0
            want = ppml_b.run(x)
            a = cluster.query(x)
            assert a.ring.tolist() == want.ring.tolist()
            assert a.label == want.label
            assert np.allclose(a.scores, want.scores)
            assert a.client_bytes > 0 and a.latency_ms > 0
            assert cluster.query_label(x) == want.label
        # A client of the same two servers (plain TCP on loopback).
        client = blindfold.Client(cluster.addresses, insecure_plaintext=True)
        x = images[0].astype(np.float32) / 255.0
        assert client.query(x).ring.tolist() == ppml_b.run(x).raw["ring"]
        assert client.query_label(x) == ppml_b.run(x).label


def test_bad_input_is_an_error_with_the_cli_message(ppml_b):
    with pytest.raises(BlindfoldError, match="no model file 'no-such-model'"):
        blindfold.Model.load("no-such-model")
    with pytest.raises(BlindfoldError, match=r"input has shape \(5,\)"):
        ppml_b.run(np.zeros(5, dtype=np.float32))
    with pytest.raises(BlindfoldError, match="the model takes"):
        ppml_b.run(np.zeros((28, 14, 2), dtype=np.float32))  # 784 values, wrong shape
    with pytest.raises(BlindfoldError, match="not a finite number"):
        ppml_b.run(np.full(784, np.nan, dtype=np.float32))
    with pytest.raises(BlindfoldError, match="unknown mode"):
        ppml_b.run(np.zeros(784), mode="quantum")
    with pytest.raises(BlindfoldError, match="unknown non-linear protocol"):
        blindfold.Model.load("ppml_b", nonlinear="magic")
    with pytest.raises(BlindfoldError, match="uint8"):
        ppml_b.evaluate((np.zeros((2, 28, 28), dtype=np.float32), [0, 1]))
    with pytest.raises(BlindfoldError, match="give tls_dir"):
        blindfold.Client(["127.0.0.1:1", "127.0.0.1:2"])
    with pytest.raises(BlindfoldError, match="two servers are needed"):
        blindfold.Client(["127.0.0.1:1"], insecure_plaintext=True)
    with pytest.raises(BlindfoldError):
        blindfold.Model.load(DATA / "images.idx3-ubyte")  # not an ONNX file
    bad = ROOT / "target" / "python-test-bad.onnx"
    bad.parent.mkdir(exist_ok=True)
    bad.write_bytes(b"\x08\x07garbage")
    with pytest.raises(BlindfoldError):
        blindfold.Model.load(bad)
    with blindfold.LocalCluster(ppml_b) as cluster:
        with pytest.raises(BlindfoldError, match="input has shape"):
            cluster.query([1.0, 2.0, 3.0])
    with pytest.raises(BlindfoldError, match="stopped"):
        cluster.query(np.zeros(784))
    cluster.close()  # twice is fine
    with pytest.raises(BlindfoldError, match="pool must be"):
        blindfold.LocalCluster(ppml_b, pool=0)
    with pytest.raises(BlindfoldError, match="limit must be"):
        ppml_b.evaluate(DATA, limit=-1)


def test_client_to_nobody_fails_cleanly():
    c = blindfold.Client(["127.0.0.1:9", "127.0.0.1:9"], insecure_plaintext=True)
    with pytest.raises(BlindfoldError):
        c.query(np.zeros(784, dtype=np.float32))


def test_client_server_mode_is_bit_exact_with_the_reference(ppml_b):
    images, _ = digits(3)
    with blindfold.LocalServer(ppml_b) as server:
        client = blindfold.ClientServerClient(server.address, insecure_plaintext=True)
        client.preprocess(2)
        for i, img in enumerate(images):
            x = img.astype(np.float32) / 255.0
            want = ppml_b.run(x)
            a = client.query(x)
            assert a.ring.tolist() == want.ring.tolist()
            assert a.label == want.label
            assert a.raw["preprocessed_first"] == (i >= 2)
        assert client.query_label(images[0].astype(np.float32) / 255.0) == ppml_b.run(
            images[0].astype(np.float32) / 255.0
        ).label
    with pytest.raises(BlindfoldError, match="give tls_dir"):
        blindfold.ClientServerClient("127.0.0.1:1")


def test_fhe_latency_layout_decrypts_to_the_reference():
    ppml_a = blindfold.Model.load("ppml_a")
    images, _ = digits(2)
    x = images.astype(np.float32) / 255.0
    with blindfold.LocalFheServer(ppml_a, layout="latency") as server:
        assert server.profile["layout"] == "latency"
        client = blindfold.FheClient(server.address, insecure_plaintext=True)
        assert client.key_bytes > 0
        assert client.profile["name"] == server.profile["name"]
        answers = client.query(x)
        assert len(answers) == 2
        for xi, a in zip(x, answers):
            want = server.reference(xi)
            assert a.outputs == want
            assert a.label == int(np.argmax(a.scores))
        assert client.last["noise_budget_bits"] > 0
        assert client.query_label(x[0]) == answers[0].label


def test_fhe_batch_layout_decrypts_to_the_reference():
    ecg = blindfold.Model.load("sok_ecg")
    rng = np.random.default_rng(7)
    xs = rng.random((5,) + tuple(ecg.input_shape), dtype=np.float32)
    with blindfold.LocalFheServer(ecg, layout="batch") as server:
        assert server.profile["max_batch"] >= 4096
        client = blindfold.FheClient(server.address, insecure_plaintext=True)
        answers = client.query(xs)
        assert [a.outputs for a in answers] == [server.reference(x) for x in xs]
        assert client.last["upload_bytes"] > 0 and client.last["download_bytes"] > 0


def test_fhe_errors_are_clear(ppml_b):
    with pytest.raises(BlindfoldError, match="(?i)relu"):
        blindfold.LocalFheServer(ppml_b)
    ppml_a = blindfold.Model.load("ppml_a")
    with pytest.raises(BlindfoldError, match="layout"):
        blindfold.LocalFheServer(ppml_a, layout="diagonal")
    with blindfold.LocalFheServer(ppml_a, layout="latency") as server:
        with pytest.raises(BlindfoldError, match="tls_dir"):
            blindfold.FheClient(server.address)
        client = blindfold.FheClient(server.address, insecure_plaintext=True)
        with pytest.raises(BlindfoldError, match="range"):
            client.query(np.full(784, 2.0, dtype=np.float32))
        with pytest.raises(BlindfoldError, match="shape"):
            client.query(np.zeros(10, dtype=np.float32))
        with pytest.raises(BlindfoldError, match="one shape"):
            client.query([np.zeros(784), np.zeros(3)])
        with pytest.raises(BlindfoldError, match="single number"):
            client.query(1.0)
        with pytest.raises(BlindfoldError, match="timeout_s"):
            blindfold.FheClient(server.address, insecure_plaintext=True, timeout_s=10**30)
        # the session survives a refused input
        ok = client.query(np.zeros(784, dtype=np.float32))
        assert ok[0].outputs == server.reference(np.zeros(784, dtype=np.float32))
        client.close()
        with pytest.raises(BlindfoldError, match="closed"):
            client.query(np.zeros(784, dtype=np.float32))
