#!/usr/bin/env python3
"""PyTorch (eager, CPU) versions of the tapegrad benchmark workloads W1-W7.

The workloads are defined in docs/benchmarks.md ("Workload definitions"). Every result is
printed as one JSON line on stdout, in the schema of `tapegrad bench`:

    {"peer":"pytorch","workload":"matmul_fb","params":{"n":1024},"median_ms":..,"metric":"gflops","value":..}

Versions, thread counts and notes go to stderr, so stdout can be piped into a file.

    python bench_torch.py --workload mlp_train,matmul_fb --threads 2 --reps 30
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
# Timed repetitions when --reps is not given (W1 at batch <= 128 runs four times as many).
DEFAULT_REPS = {"transformer_train": 20}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workload", default=",".join(WORKLOADS),
                   help="comma-separated workloads to run (default: all): " + ", ".join(WORKLOADS))
    p.add_argument("--threads", type=int, default=2, help="intra-op threads (default 2)")
    p.add_argument("--reps", type=int, default=None,
                   help="timed repetitions per result (default 30; 20 for transformer_train; "
                        "W1 at batch <= 128 runs 4x as many)")
    p.add_argument("--warmup", type=int, default=5, help="untimed repetitions first (default 5)")
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
# OpenMP reads these when torch is imported; set them first so that every pool agrees.
for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[var] = str(ARGS.threads)

import torch  # noqa: E402  (after the thread variables)
import torch.nn.functional as F  # noqa: E402

torch.set_num_threads(ARGS.threads)
torch.set_num_interop_threads(1)


def reps_for(workload, factor=1):
    base = ARGS.reps if ARGS.reps is not None else DEFAULT_REPS.get(workload, 30)
    return base * factor


def median_ms(step, reps):
    """Runs `step` ARGS.warmup times untimed, then `reps` times timed; median in ms."""
    for _ in range(ARGS.warmup):
        step()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def emit(workload, params, ms, metric, value):
    line = {"peer": "pytorch", "workload": workload, "params": params,
            "median_ms": round(ms, 4), "metric": metric, "value": round(value, 4)}
    print(json.dumps(line, separators=(",", ":")), flush=True)


def note(msg):
    print(f"# {msg}", file=sys.stderr, flush=True)


def kernels_used(step, wanted):
    """Names of the profiled ops of one step that contain one of `wanted` (which kernel ran)."""
    # The profiler's back-end logs start/stop lines straight to file descriptor 2.
    sys.stderr.flush()
    saved_stderr = os.dup(2)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
        try:
            with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
                step()
        finally:
            os.dup2(saved_stderr, 2)
            os.close(saved_stderr)
    names = {e.key for e in prof.key_averages()}
    return sorted(n for n in names if any(w in n for w in wanted))


def train_step(model, optimizer, x, y):
    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
    return step


def w1_mlp_train():
    for batch in [1, 8, 32, 128, 512, 1024]:
        torch.manual_seed(0)
        model = torch.nn.Sequential(
            torch.nn.Linear(784, 512), torch.nn.ReLU(),
            torch.nn.Linear(512, 256), torch.nn.ReLU(),
            torch.nn.Linear(256, 10),
        )
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
        x = torch.randn(batch, 784)
        y = torch.randint(0, 10, (batch,))
        ms = median_ms(train_step(model, optimizer, x, y),
                       reps_for("mlp_train", 4 if batch <= 128 else 1))
        emit("mlp_train", {"batch": batch}, ms, "samples_per_s", batch / (ms * 1e-3))


def w2_op_overhead():
    torch.manual_seed(0)
    x0 = torch.randn(16)
    repeats = 1000

    def step():
        x = x0.clone().requires_grad_(True)
        y = x
        for _ in range(repeats):
            y = torch.tanh(y * 1.01 + 0.1)
        y.sum().backward()

    ops = 3 * repeats
    ms = median_ms(step, reps_for("op_overhead"))
    emit("op_overhead", {"len": 16, "ops": ops}, ms, "us_per_op", ms * 1e3 / ops)


def w3_matmul_fb():
    torch.manual_seed(0)
    n = 1024
    a = torch.randn(n, n, requires_grad=True)
    b = torch.randn(n, n, requires_grad=True)

    def step():
        a.grad = None
        b.grad = None
        (a @ b).sum().backward()

    ms = median_ms(step, reps_for("matmul_fb"))
    emit("matmul_fb", {"n": n}, ms, "gflops", 3 * 2 * n**3 / (ms * 1e-3) / 1e9)


def w4_elementwise_big():
    torch.manual_seed(0)
    n = 4_000_000
    x = torch.randn(n, requires_grad=True)

    def step():
        x.grad = None
        (torch.exp(x) * x).sum().backward()

    ms = median_ms(step, reps_for("elementwise_big"))
    emit("elementwise_big", {"n": n}, ms, "gb_per_s", 4 * 4 * n / (ms * 1e-3) / 1e9)


def w5_conv_train():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(16 * 14 * 14, 10),
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.randn(64, 1, 28, 28)
    y = torch.randint(0, 10, (64,))
    ms = median_ms(train_step(model, optimizer, x, y), reps_for("conv_train"))
    emit("conv_train", {"batch": 64}, ms, "ms_per_step", ms)


class ByteLm(torch.nn.Module):
    """W6: byte embedding + learned positions, pre-norm causal encoder layers, final
    LayerNorm, linear head back to the 256 byte values."""

    def __init__(self, seq, d_model=256, heads=4, ff=1024, layers=2):
        super().__init__()
        self.embed = torch.nn.Embedding(256, d_model)
        # A bare parameter has no PyTorch default; the definition fixes N(0, 0.02^2).
        self.positions = torch.nn.Parameter(0.02 * torch.randn(seq, d_model))
        self.layers = torch.nn.ModuleList(
            torch.nn.TransformerEncoderLayer(
                d_model=d_model, nhead=heads, dim_feedforward=ff, dropout=0.0,
                activation="gelu", batch_first=True, norm_first=True)
            for _ in range(layers))
        self.norm = torch.nn.LayerNorm(d_model)
        self.head = torch.nn.Linear(d_model, 256)
        self.register_buffer("causal", torch.nn.Transformer.generate_square_subsequent_mask(seq))

    def forward(self, tokens):
        h = self.embed(tokens) + self.positions
        for layer in self.layers:
            h = layer(h, src_mask=self.causal, is_causal=True)
        return self.head(self.norm(h))


def w6_transformer_train():
    torch.manual_seed(0)
    batch, seq = 16, 128
    model = ByteLm(seq)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4, betas=(0.9, 0.999),
                                  eps=1e-8, weight_decay=0.01)
    rows = torch.randint(0, 256, (batch, seq + 1))
    inputs, targets = rows[:, :-1], rows[:, 1:]

    def step():
        optimizer.zero_grad(set_to_none=True)
        logits = model(inputs)
        F.cross_entropy(logits.reshape(-1, 256), targets.reshape(-1)).backward()
        optimizer.step()

    step()
    note("transformer_train attention kernels: "
         + ", ".join(kernels_used(step, ["scaled_dot_product"])))
    ms = median_ms(step, reps_for("transformer_train"))
    emit("transformer_train", {"batch": batch, "seq": seq, "d_model": 256, "layers": 2},
         ms, "tokens_per_s", batch * seq / (ms * 1e-3))


def w7_lstm_train():
    torch.manual_seed(0)
    batch, seq, features, hidden = 32, 64, 64, 256
    lstm = torch.nn.LSTM(features, hidden, batch_first=True)
    head = torch.nn.Linear(hidden, 10)
    optimizer = torch.optim.SGD(list(lstm.parameters()) + list(head.parameters()), lr=0.01)
    x = torch.randn(batch, seq, features)
    y = torch.randint(0, 10, (batch,))

    def step():
        optimizer.zero_grad(set_to_none=True)
        _, (h_last, _) = lstm(x)  # zero initial state
        F.cross_entropy(head(h_last[-1]), y).backward()
        optimizer.step()

    step()
    note("lstm_train recurrent kernels: " + ", ".join(kernels_used(step, ["lstm", "rnn"])))
    ms = median_ms(step, reps_for("lstm_train"))
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
    note(f"pytorch {torch.__version__}, {torch.get_num_threads()} threads, "
         f"{ARGS.warmup} warm-up repetitions, eager mode")
    for name in WORKLOADS:
        if name in ARGS.workload:
            RUN[name]()
