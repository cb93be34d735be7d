#!/usr/bin/env bash
# `mpirun -np N tapegrad train --distributed` end to end, on the embedded digits:
#   1. np = 2 reaches the test accuracy of one process at the same global batch;
#   2. only rank 0 prints and writes the run folder's files;
#   3. the run resumes at np = 3 and continues;
#   4. a rank that is killed, or that stalls, stops the job with an error (a non-zero
#      exit, not a hang), and the last checkpoint stays loadable.
# Needs OpenMPI (apt-get install libopenmpi-dev openmpi-bin libclang-dev). Called by
# .ci/run; about 2-3 minutes in a debug build.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --quiet -p tapegrad-cli --features mpi
BIN=target/debug/tapegrad
# Ranks on one machine talk through shared memory; containers often forbid the
# cross-process copy OpenMPI would use for large messages.
export OMPI_MCA_btl_vader_single_copy_mechanism=none
# One thread per rank: the ranks share the machine's cores.
export RAYON_NUM_THREADS=1
MPIRUN=(mpirun --allow-run-as-root --oversubscribe)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=0
fail() {
    echo "FAIL: $*"
    failed=1
}
# The test accuracy in a run's output.
accuracy() {
    sed -n 's/^test accuracy \([0-9.]*\) .*/\1/p' "$1"
}

echo "== one process, 2 epochs"
"$BIN" train --epochs 2 --quiet --out "$work/single" >"$work/single.log"
single=$(accuracy "$work/single.log")
echo "test accuracy $single"

echo "== mpirun -np 2, 2 epochs"
timeout 300 "${MPIRUN[@]}" -np 2 "$BIN" train --distributed --epochs 2 --quiet \
    --out "$work/run" >"$work/np2.log" 2>&1 || fail "np = 2 exited with $?"
cat "$work/np2.log"
dist=$(accuracy "$work/np2.log")
if [ -z "$dist" ]; then
    fail "np = 2 printed no test accuracy"
elif ! python3 -c "import sys; s, d = float('$single'), float('$dist'); sys.exit(0 if d >= 0.9 and d >= s - 0.01 else 1)"; then
    fail "np = 2 test accuracy $dist is below one process's $single"
else
    echo "np = 2 test accuracy $dist (one process: $single) ... ok"
fi
# The ranks together see one process's samples in its order, so the losses are one
# process's (f32: up to the order of the sums).
if python3 - "$work/single/metrics.jsonl" "$work/run/metrics.jsonl" <<'EOF_PY'
import json, sys
a, b = ([json.loads(l) for l in open(p)] for p in sys.argv[1:3])
assert len(a) == len(b) == 2, (len(a), len(b))
for x, y in zip(a, b):
    for k in ("train_loss", "val_loss", "val_accuracy", "iteration"):
        assert abs(x[k] - y[k]) <= 1e-4 * max(1.0, abs(x[k])), (k, x[k], y[k])
EOF_PY
then
    echo "np = 2 losses equal one process's ... ok"
else
    fail "np = 2 losses differ from one process's"
fi
# Rank 0 alone prints and writes: one set of lines, one TensorBoard event file (its
# name holds the writer's process id), the checkpoint of iteration 82 (41 per epoch).
lines=$(grep -c '^epoch ' "$work/np2.log" || true)
[ "$lines" -eq 2 ] || fail "expected 2 epoch lines (rank 0 alone prints), got $lines"
events=$(find "$work/run" -name 'events.out.tfevents.*' | wc -l)
[ "$events" -eq 1 ] || fail "expected 1 TensorBoard event file (rank 0 alone writes), got $events"
[ "$(wc -l <"$work/run/metrics.jsonl")" -eq 2 ] || fail "metrics.jsonl should have 2 lines"
grep -q '"iteration": 82' "$work/run/checkpoint.json" || fail "checkpoint.json is not at iteration 82"
[ "$failed" -eq 0 ] && echo "rank 0 alone printed and wrote ... ok"

echo "== resumed with mpirun -np 3 for a third epoch"
timeout 300 "${MPIRUN[@]}" -np 3 "$BIN" train --distributed --epochs 3 --quiet \
    --resume "$work/run" >"$work/np3.log" 2>&1 || fail "np = 3 resume exited with $?"
cat "$work/np3.log"
grep -q '^data-parallel over 3 ranks' "$work/np3.log" || fail "np = 3 did not run on 3 ranks"
grep -q '^resumed at epoch 2, iteration 82' "$work/np3.log" || fail "np = 3 did not resume at epoch 2"
[ "$(wc -l <"$work/run/metrics.jsonl")" -eq 3 ] || fail "metrics.jsonl should have 3 lines after the resume"
grep -q '"iteration": 123' "$work/run/checkpoint.json" || fail "checkpoint.json is not at iteration 123"

# A long run on 2 ranks; once its first checkpoint is written, `signal` goes to rank 1.
# The job must end with an error within `limit` seconds and leave a loadable checkpoint.
drill() {
    local name=$1 signal=$2 limit=$3
    local dir="$work/$name" log="$work/$name.log"
    echo "== a rank that gets SIG$signal mid-run"
    TAPEGRAD_DIST_TIMEOUT=5 timeout "$limit" "${MPIRUN[@]}" -np 2 "$BIN" train --distributed \
        --epochs 500 --quiet --out "$dir" >"$log" 2>&1 &
    local guard=$!
    local waited=0
    until [ -f "$dir/checkpoint.json" ] || [ "$waited" -ge 600 ]; do
        sleep 0.2
        waited=$((waited + 1))
    done
    local mpirun_pid rank_pids victim
    mpirun_pid=$(pgrep -P "$guard" | head -n 1)
    # The ranks are mpirun's children, in rank order of their start.
    rank_pids=$(pgrep -P "$mpirun_pid" | sort -n)
    victim=$(echo "$rank_pids" | sed -n 2p)
    if [ -z "$victim" ]; then
        fail "$name: could not find rank 1 (ranks: $rank_pids)"
        wait "$guard" || true
        return
    fi
    kill -s "$signal" "$victim"
    set +e
    wait "$guard"
    local code=$?
    set -e
    # A stopped rank that outlived the job: end it.
    kill -s KILL "$victim" 2>/dev/null || true
    tail -n 4 "$log"
    if [ "$code" -eq 0 ] || [ "$code" -eq 124 ]; then
        fail "$name: expected the job to stop with an error, got exit code $code"
    elif [ "$signal" = STOP ] && ! grep -q "did not complete within" "$log"; then
        fail "$name: the timeout error is missing from the output"
    else
        echo "$name: the job stopped with exit code $code ... ok"
    fi
    local epoch
    epoch=$(sed -n 's/^ *"epoch": \([0-9]*\),$/\1/p' "$dir/checkpoint.json" | head -n 1)
    if "$BIN" train --resume "$dir" --epochs $((epoch + 1)) --quiet >"$log.resume" 2>&1 \
        && grep -q "^resumed at epoch $epoch" "$log.resume"; then
        echo "$name: its last checkpoint (epoch $epoch) loads and trains on ... ok"
    else
        cat "$log.resume"
        fail "$name: the last checkpoint does not resume"
    fi
}
drill killed KILL 120
drill stalled STOP 120

if [ "$failed" -eq 0 ]; then
    echo "distributed train: all checks passed"
else
    echo "distributed train: some checks FAILED"
fi
exit "$failed"
