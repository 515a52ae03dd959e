"""TenSEAL (CKKS) on the zoo's square-activation MLPs, one image, for the FHE
table of docs/BENCHMARKS.md. Weights come from the zoo's ONNX files; the
evaluation is TenSEAL's CKKSVector API (vector-matrix products, square), as in
its tutorials. Run through scripts/tenseal-bench.sh (which makes the venv)."""
import json, sys, time
import numpy as np
import onnx
from onnx import numpy_helper
import tenseal as ts

def layers(path):
    m = onnx.load(path)
    w = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    out = []
    for n in m.graph.node:
        if n.op_type == "Gemm":
            out.append(("fc", w[n.input[1]].astype(np.float64), w[n.input[2]].astype(np.float64)))
        elif n.op_type == "Mul" and n.input[0] == n.input[1]:
            out.append(("sq",))
        elif n.op_type in ("Flatten", "Reshape"):
            pass
        else:
            raise SystemExit(f"{path}: {n.op_type} is not in this script's MLP subset")
    return out

def run(name, x, depth):
    # CKKS as in TenSEAL's encrypted-MNIST tutorial: scale 2^26, one 26-bit
    # modulus per multiplicative level, n = 8192 while log q <= 218
    bits = [31] + [26] * depth + [31]
    deg = 8192 if sum(bits) <= 218 else 16384
    ctx = ts.context(ts.SCHEME_TYPE.CKKS, poly_modulus_degree=deg, coeff_mod_bit_sizes=bits)
    ctx.global_scale = 2 ** 26
    ctx.generate_galois_keys()
    t0 = time.time()
    enc = ts.ckks_vector(ctx, x.tolist())
    t_enc = time.time() - t0
    t0 = time.time()
    for l in layers(f"models/{name}.onnx"):
        if l[0] == "fc":
            enc = enc.mm(l[1].T.tolist()) + l[2].tolist()
        else:
            enc = enc.square()
    t_eval = time.time() - t0
    y = np.array(enc.decrypt())
    return {"network": name, "system": f"TenSEAL {ts.__version__} CKKS", "degree": deg,
            "encrypt_s": round(t_enc, 3), "eval_s": round(t_eval, 2), "label": int(np.argmax(y))}

if __name__ == "__main__":
    for name in sys.argv[1:] or ["sok_ecg", "ppml_a", "secureml"]:
        n_in = 180 if name == "sok_ecg" else 784
        x = np.random.RandomState(0).rand(n_in)
        depth = sum(1 for l in layers(f"models/{name}.onnx") if l[0] == "sq") + sum(1 for l in layers(f"models/{name}.onnx") if l[0] == "fc")
        print(json.dumps(run(name, x, depth)), flush=True)
