#!/usr/bin/env python3
"""NumPy floors for W3 `matmul_fb` and W4 `elementwise_big`, gradients written by hand.

NumPy has no autodiff: this script computes the same forward pass and the gradient that
the chain rule gives, with no tape, no graph and no per-op bookkeeping. What it measures
is the arithmetic and memory traffic of the workload on this machine (W3 through the
BLAS that NumPy links, usually OpenBLAS), a reference for what the autodiff engines add
on top. The workloads are defined in docs/benchmarks.md; output is one JSON line per
result in the schema of `tapegrad bench`, with peer "numpy".

    python bench_numpy.py --workload matmul_fb,elementwise_big --threads 2 --reps 30
"""
import argparse
import json
import os
import statistics
import sys
import time

WORKLOADS = ["matmul_fb", "elementwise_big"]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workload", default=",".join(WORKLOADS),
                   help="comma-separated workloads to run (default: all): " + ", ".join(WORKLOADS))
    p.add_argument("--threads", type=int, default=2, help="BLAS threads (default 2)")
    p.add_argument("--reps", type=int, default=30, help="timed repetitions per result (default 30)")
    p.add_argument("--warmup", type=int, default=5, help="untimed repetitions first (default 5)")
    args = p.parse_args()
    args.workload = [w.strip() for w in args.workload.split(",") if w.strip()]
    unknown = [w for w in args.workload if w not in WORKLOADS]
    if unknown:
        p.error(f"unknown workload(s) {', '.join(unknown)} (this script has: {', '.join(WORKLOADS)})")
    if args.threads < 1 or args.reps < 1 or args.warmup < 0:
        p.error("--threads and --reps must be at least 1, --warmup at least 0")
    return args


ARGS = parse_args()
# The BLAS reads these when NumPy is imported.
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(ARGS.threads)

import numpy as np  # noqa: E402  (after the thread variables)


def median_ms(step):
    for _ in range(ARGS.warmup):
        step()
    times = []
    for _ in range(ARGS.reps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def emit(workload, params, ms, metric, value):
    line = {"peer": "numpy", "workload": workload, "params": params,
            "median_ms": round(ms, 4), "metric": metric, "value": round(value, 4)}
    print(json.dumps(line, separators=(",", ":")), flush=True)


def w3_matmul_fb(rng):
    n = 1024
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)

    upstream = np.ones((n, n), np.float32)  # d loss / d (a @ b), made once

    def step():
        loss = (a @ b).sum()
        grad_a = upstream @ b.T
        grad_b = a.T @ upstream
        return loss, grad_a, grad_b

    ms = median_ms(step)
    emit("matmul_fb", {"n": n}, ms, "gflops", 3 * 2 * n**3 / (ms * 1e-3) / 1e9)


def w4_elementwise_big(rng):
    n = 4_000_000
    x = rng.standard_normal(n, dtype=np.float32)

    def step():
        e = np.exp(x)
        loss = np.dot(e, x)  # sum(exp(x) * x)
        grad = e * (1.0 + x)  # d/dx exp(x) x = exp(x) (1 + x)
        return loss, grad

    ms = median_ms(step)
    emit("elementwise_big", {"n": n}, ms, "gb_per_s", 4 * 4 * n / (ms * 1e-3) / 1e9)


if __name__ == "__main__":
    print(f"# numpy {np.__version__}, {ARGS.threads} BLAS threads, {ARGS.warmup} warm-up repetitions",
          file=sys.stderr, flush=True)
    rng = np.random.default_rng(0)
    if "matmul_fb" in ARGS.workload:
        w3_matmul_fb(rng)
    if "elementwise_big" in ARGS.workload:
        w4_elementwise_big(rng)
