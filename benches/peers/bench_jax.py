#!/usr/bin/env python3
"""JAX (CPU, XLA) versions of the tapegrad benchmark workloads W1-W7.

The workloads are defined in docs/benchmarks.md ("Workload definitions"). Every result is
printed as one JSON line on stdout, in the schema of `tapegrad bench`:

    {"peer":"jax","workload":"matmul_fb","params":{"n":1024},"median_ms":..,"metric":"gflops","value":..}

Each repetition is jitted whole (forward, backward and update in one XLA program) and
timed up to `block_until_ready`. W2 is also run op by op without `jit` (peer
"jax-eager"), since the jitted program fuses its 3000 ops into one loop. Versions and
notes go to stderr.

    python bench_jax.py --workload mlp_train,matmul_fb --threads 2 --reps 30
"""
import argparse
import json
import os
import statistics
import sys
import time

WORKLOADS = [
    "mlp_train",
    "op_overhead",
    "matmul_fb",
    "elementwise_big",
    "conv_train",
    "transformer_train",
    "lstm_train",
]
DEFAULT_REPS = {"transformer_train": 20}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workload", default=",".join(WORKLOADS),
                   help="comma-separated workloads to run (default: all): " + ", ".join(WORKLOADS))
    p.add_argument("--threads", type=int, default=2,
                   help="CPUs the process may use (default 2; XLA sizes its pool from them)")
    p.add_argument("--reps", type=int, default=None,
                   help="timed repetitions per result (default 30; 20 for transformer_train; "
                        "W1 at batch <= 128 runs 4x as many; eager W2 a tenth, at least 3)")
    p.add_argument("--warmup", type=int, default=5,
                   help="untimed repetitions first, compilation included (default 5)")
    args = p.parse_args()
    args.workload = [w.strip() for w in args.workload.split(",") if w.strip()]
    unknown = [w for w in args.workload if w not in WORKLOADS]
    if unknown:
        p.error(f"unknown workload(s) {', '.join(unknown)} (known: {', '.join(WORKLOADS)})")
    if args.threads < 1:
        p.error("--threads must be at least 1")
    if args.reps is not None and args.reps < 1:
        p.error("--reps must be at least 1")
    if args.warmup < 0:
        p.error("--warmup must not be negative")
    return args


ARGS = parse_args()
# XLA's CPU client has no thread-count option: it sizes its pools from the CPUs the
# process may run on, so restrict those before jax is imported.
_allowed = sorted(os.sched_getaffinity(0))
if ARGS.threads < len(_allowed):
    os.sched_setaffinity(0, _allowed[: ARGS.threads])
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402  (after the affinity)
import jax.numpy as jnp  # noqa: E402
from jax import lax  # noqa: E402


def reps_for(workload, factor=1):
    base = ARGS.reps if ARGS.reps is not None else DEFAULT_REPS.get(workload, 30)
    return base * factor


def median_ms(step, reps, warmup=None):
    """Runs `step` (which returns arrays) warmup times, then `reps` times timed up to
    `block_until_ready`; median in ms."""
    for _ in range(ARGS.warmup if warmup is None else warmup):
        jax.block_until_ready(step())
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        jax.block_until_ready(step())
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def emit(workload, params, ms, metric, value, peer="jax"):
    line = {"peer": peer, "workload": workload, "params": params,
            "median_ms": round(ms, 4), "metric": metric, "value": round(value, 4)}
    print(json.dumps(line, separators=(",", ":")), flush=True)


def note(msg):
    print(f"# {msg}", file=sys.stderr, flush=True)


def uniform(key, shape, bound):
    return jax.random.uniform(key, shape, jnp.float32, -bound, bound)


def linear(key, fan_in, fan_out):
    """PyTorch's nn.Linear initialisation: weight [out, in] and bias, U(+-1/sqrt(in))."""
    kw, kb = jax.random.split(key)
    bound = fan_in ** -0.5
    return {"w": uniform(kw, (fan_out, fan_in), bound), "b": uniform(kb, (fan_out,), bound)}


def apply_linear(p, x):
    return x @ p["w"].T + p["b"]


def cross_entropy(logits, labels):
    """Mean softmax cross-entropy with integer labels."""
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, labels[:, None], axis=-1))


def sgd(params, grads, lr=0.01):
    return jax.tree_util.tree_map(lambda p, g: p - lr * g, params, grads)


def time_training(step, state, batch_args, reps):
    """Times a jitted `step(state, *batch_args) -> state`, threading the state through."""
    holder = [state]

    def one():
        holder[0] = step(holder[0], *batch_args)
        return holder[0]

    return median_ms(one, reps)


def w1_mlp_train():
    def loss(params, x, y):
        h = x
        for i, layer in enumerate(params):
            h = apply_linear(layer, h)
            if i < len(params) - 1:
                h = jax.nn.relu(h)
        return cross_entropy(h, y)

    step = jax.jit(lambda p, x, y: sgd(p, jax.grad(loss)(p, x, y)))
    for batch in [1, 8, 32, 128, 512, 1024]:
        k = jax.random.split(jax.random.PRNGKey(0), 5)
        params = [linear(k[0], 784, 512), linear(k[1], 512, 256), linear(k[2], 256, 10)]
        x = jax.random.normal(k[3], (batch, 784), jnp.float32)
        y = jax.random.randint(k[4], (batch,), 0, 10)
        ms = time_training(step, params, (x, y),
                           reps_for("mlp_train", 4 if batch <= 128 else 1))
        emit("mlp_train", {"batch": batch}, ms, "samples_per_s", batch / (ms * 1e-3))


def w2_op_overhead():
    repeats = 1000
    ops = 3 * repeats
    x = jax.random.normal(jax.random.PRNGKey(0), (16,), jnp.float32)

    def body(_, y):
        return jnp.tanh(y * 1.01 + 0.1)

    jitted = jax.jit(jax.grad(lambda x: jnp.sum(lax.fori_loop(0, repeats, body, x))))
    ms = median_ms(lambda: jitted(x), reps_for("op_overhead"))
    emit("op_overhead", {"len": 16, "ops": ops}, ms, "us_per_op", ms * 1e3 / ops)

    def chain(x):
        y = x
        for _ in range(repeats):
            y = jnp.tanh(y * 1.01 + 0.1)
        return jnp.sum(y)

    eager = jax.grad(chain)  # no jit: every op is dispatched on its own
    ms = median_ms(lambda: eager(x), max(3, reps_for("op_overhead") // 10), warmup=1)
    emit("op_overhead", {"len": 16, "ops": ops}, ms, "us_per_op", ms * 1e3 / ops,
         peer="jax-eager")


def w3_matmul_fb():
    n = 1024
    ka, kb = jax.random.split(jax.random.PRNGKey(0))
    a = jax.random.normal(ka, (n, n), jnp.float32)
    b = jax.random.normal(kb, (n, n), jnp.float32)
    grads = jax.jit(jax.grad(lambda a, b: jnp.sum(a @ b), argnums=(0, 1)))
    ms = median_ms(lambda: grads(a, b), reps_for("matmul_fb"))
    emit("matmul_fb", {"n": n}, ms, "gflops", 3 * 2 * n**3 / (ms * 1e-3) / 1e9)


def w4_elementwise_big():
    n = 4_000_000
    x = jax.random.normal(jax.random.PRNGKey(0), (n,), jnp.float32)
    grad = jax.jit(jax.grad(lambda x: jnp.sum(jnp.exp(x) * x)))
    ms = median_ms(lambda: grad(x), reps_for("elementwise_big"))
    emit("elementwise_big", {"n": n}, ms, "gb_per_s", 4 * 4 * n / (ms * 1e-3) / 1e9)


def w5_conv_train():
    k = jax.random.split(jax.random.PRNGKey(0), 5)
    bound = (1 * 3 * 3) ** -0.5  # fan_in of the 3x3 kernel over 1 channel
    params = {"conv_w": uniform(k[0], (16, 1, 3, 3), bound),
              "conv_b": uniform(k[1], (16,), bound),
              "fc": linear(k[2], 16 * 14 * 14, 10)}
    x = jax.random.normal(k[3], (64, 1, 28, 28), jnp.float32)
    y = jax.random.randint(k[4], (64,), 0, 10)

    def loss(p, x, y):
        h = lax.conv_general_dilated(x, p["conv_w"], (1, 1), ((1, 1), (1, 1)),
                                     dimension_numbers=("NCHW", "OIHW", "NCHW"))
        h = jax.nn.relu(h + p["conv_b"][None, :, None, None])
        h = lax.reduce_window(h, -jnp.inf, lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")
        return cross_entropy(apply_linear(p["fc"], h.reshape(h.shape[0], -1)), y)

    step = jax.jit(lambda p, x, y: sgd(p, jax.grad(loss)(p, x, y)))
    ms = time_training(step, params, (x, y), reps_for("conv_train"))
    emit("conv_train", {"batch": 64}, ms, "ms_per_step", ms)


def layer_norm(p, x, eps=1e-5):
    mean = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
    return (x - mean) * lax.rsqrt(var + eps) * p["g"] + p["b"]


LM_HEADS = 4


def lm_attention(p, x, heads=LM_HEADS):
    """Causal multi-head self-attention with one packed [3d, d] input projection."""
    b, t, d = x.shape
    dh = d // heads
    qkv = apply_linear(p["in_proj"], x).reshape(b, t, 3, heads, dh).transpose(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]  # [b, heads, t, dh]
    causal = jnp.tril(jnp.ones((t, t), bool))
    scores = jnp.where(causal, q @ k.swapaxes(-1, -2) / dh**0.5, -jnp.inf)
    out = (jax.nn.softmax(scores, axis=-1) @ v).transpose(0, 2, 1, 3).reshape(b, t, d)
    return apply_linear(p["out_proj"], out)


def lm_loss(p, tokens, targets):
    """W6's loss: mean next-byte cross-entropy of the pre-norm causal transformer."""
    h = p["embed"][tokens] + p["positions"]
    for layer in p["layers"]:
        h = h + lm_attention(layer, layer_norm(layer["norm1"], h))
        hidden = jax.nn.gelu(apply_linear(layer["linear1"], layer_norm(layer["norm2"], h)),
                             approximate=False)
        h = h + apply_linear(layer["linear2"], hidden)
    logits = apply_linear(p["head"], layer_norm(p["norm"], h))
    return cross_entropy(logits.reshape(-1, 256), targets.reshape(-1))


def adamw(state, grads, lr=3e-4, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01):
    """torch.optim.AdamW's update, on every parameter; state = (params, m, v, step)."""
    params, m, v, t = state
    t = t + 1
    tm = jax.tree_util.tree_map
    m = tm(lambda m, g: beta1 * m + (1 - beta1) * g, m, grads)
    v = tm(lambda v, g: beta2 * v + (1 - beta2) * g * g, v, grads)
    step_size = lr / (1 - beta1**t)
    root_correction = jnp.sqrt(1 - beta2**t)
    params = tm(lambda p, m, v: p * (1 - lr * weight_decay)
                - step_size * m / (jnp.sqrt(v) / root_correction + eps), params, m, v)
    return params, m, v, t


def w6_transformer_train():
    batch, seq, d, ff, layers = 16, 128, 256, 1024, 2
    keys = iter(jax.random.split(jax.random.PRNGKey(0), 4 + 4 * layers))
    norm = {"g": jnp.ones(d), "b": jnp.zeros(d)}
    xavier = (6.0 / (d + 3 * d)) ** 0.5

    def encoder_layer():
        # nn.TransformerEncoderLayer's defaults: packed in_proj Xavier-uniform with zero
        # bias, out_proj with nn.Linear's weight and a zero bias, linear1/2 as nn.Linear.
        out_proj = linear(next(keys), d, d)
        return {"norm1": norm, "norm2": norm,
                "in_proj": {"w": uniform(next(keys), (3 * d, d), xavier), "b": jnp.zeros(3 * d)},
                "out_proj": {"w": out_proj["w"], "b": jnp.zeros(d)},
                "linear1": linear(next(keys), d, ff), "linear2": linear(next(keys), ff, d)}

    params = {"embed": jax.random.normal(next(keys), (256, d), jnp.float32),
              "positions": 0.02 * jax.random.normal(next(keys), (seq, d), jnp.float32),
              "layers": [encoder_layer() for _ in range(layers)],
              "norm": norm, "head": linear(next(keys), d, 256)}
    rows = jax.random.randint(next(keys), (batch, seq + 1), 0, 256)
    inputs, targets = rows[:, :-1], rows[:, 1:]

    step = jax.jit(lambda s, x, y: adamw(s, jax.grad(lm_loss)(s[0], x, y)))
    zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
    state = (params, zeros, zeros, jnp.zeros((), jnp.float32))
    ms = time_training(step, state, (inputs, targets), reps_for("transformer_train"))
    emit("transformer_train", {"batch": batch, "seq": seq, "d_model": d, "layers": layers},
         ms, "tokens_per_s", batch * seq / (ms * 1e-3))


def lstm_loss(p, x, y):
    """W7's loss: an LSTM over x [batch, time, features] from a zero state, then a linear
    layer on the last hidden state and cross-entropy."""
    hidden = p["w_hh"].shape[1]
    # The input projections of all time steps in one product, then the recurrence.
    projected = jnp.einsum("btf,gf->tbg", x, p["w_ih"]) + p["b_ih"] + p["b_hh"]

    def cell(carry, xt):
        h, c = carry
        i, f, g, o = jnp.split(xt + h @ p["w_hh"].T, 4, axis=-1)  # PyTorch's gate order
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return (h, c), None

    zero = jnp.zeros((x.shape[0], hidden), jnp.float32)
    (h, _), _ = lax.scan(cell, (zero, zero), projected)
    return cross_entropy(apply_linear(p["head"], h), y)


def w7_lstm_train():
    batch, seq, features, hidden = 32, 64, 64, 256
    k = jax.random.split(jax.random.PRNGKey(0), 7)
    bound = hidden ** -0.5  # nn.LSTM: every weight and bias U(+-1/sqrt(hidden))
    params = {"w_ih": uniform(k[0], (4 * hidden, features), bound),
              "w_hh": uniform(k[1], (4 * hidden, hidden), bound),
              "b_ih": uniform(k[2], (4 * hidden,), bound),
              "b_hh": uniform(k[3], (4 * hidden,), bound),
              "head": linear(k[4], hidden, 10)}
    x = jax.random.normal(k[5], (batch, seq, features), jnp.float32)
    y = jax.random.randint(k[6], (batch,), 0, 10)
    step = jax.jit(lambda p, x, y: sgd(p, jax.grad(lstm_loss)(p, x, y)))
    ms = time_training(step, params, (x, y), reps_for("lstm_train"))
    emit("lstm_train", {"batch": batch, "seq": seq, "hidden": hidden},
         ms, "samples_per_s", batch / (ms * 1e-3))


RUN = {
    "mlp_train": w1_mlp_train,
    "op_overhead": w2_op_overhead,
    "matmul_fb": w3_matmul_fb,
    "elementwise_big": w4_elementwise_big,
    "conv_train": w5_conv_train,
    "transformer_train": w6_transformer_train,
    "lstm_train": w7_lstm_train,
}

if __name__ == "__main__":
    note(f"jax {jax.__version__} on {jax.devices()[0].platform}, "
         f"{len(os.sched_getaffinity(0))} CPUs, {ARGS.warmup} warm-up repetitions, jit")
    for name in WORKLOADS:
        if name in ARGS.workload:
            RUN[name]()
