#!/usr/bin/env bash
# All GPU checks of the project in one timed script, for a leased GPU machine:
#   1. the CUDA tests (pytest -m cuda) while the NRI dataset is generated on the CPUs,
#   2. the GPU benchmarks (estimator overhead, batched solvers vs CPU baselines),
#   3. NRI (AIMLE forward seeds 0 and 1, AIMLE central, I-MLE forward) trained side by side
#      for what is left of DEADLINE seconds, then evaluated on the test split and plotted;
#      NRI_CONTINUE="name ..." instead resumes those runs of $RUNS (carried to the machine) with
#      --resume, so a 50,000-iteration run can be spread over several leases.
# Results land in $OUT (default ./device-out): logs, a tarball of the NRI runs and checkpoints.
#
#   OUT=/tmp/out DEADLINE=540 bash benchmarks/device_checks.sh
#   DEVICE=cpu NRI_TIME_LIMIT=20 NRI_SIZES="--train 64 --valid 16 --test 16" \
#     NRI_TRAIN_EXTRA="--hidden 8 --batch-size 8 --validate-every 5" SKIP_BENCH=1 bash benchmarks/device_checks.sh
#                                                                # a dry run of the plumbing on a CPU
#   SKIP_TESTS=1 SKIP_BENCH=1 NRI_CONTINUE=aimle-forward-s0 RUNS=runs/device bash benchmarks/device_checks.sh
#                                    # a lease spent on continuing one run (carry runs/device/aimle-forward-s0)
set -u
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
OUT=${OUT:-device-out}
DEVICE=${DEVICE:-cuda}
# The NRI runs get what is left of DEADLINE seconds (from the start of this script), less a reserve
# for their last validation, the test evaluation, plots and tarballs; NRI_TIME_LIMIT caps it.
DEADLINE=${DEADLINE:-540}
RESERVE=${RESERVE:-75}
NRI_TIME_LIMIT=${NRI_TIME_LIMIT:-100000}
NRI_SIZES=${NRI_SIZES:-}
NRI_TRAIN_EXTRA=${NRI_TRAIN_EXTRA:-}
NRI_DATA=${NRI_DATA:-data}
RUNS=${RUNS:-runs/device}
PY=${PY:-python3}
mkdir -p "$OUT" "$RUNS"
START=$(date +%s)
stamp() { echo "[$(($(date +%s) - START)) s] $*"; }

stamp "environment" | tee "$OUT/checks.log"
{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 || true
    "$PY" -c "import sys, torch, numpy, networkx; print(sys.version.split()[0], 'torch', torch.__version__, \
'numpy', numpy.__version__, 'networkx', networkx.__version__, 'cuda', torch.cuda.is_available())"
    echo "cpus $(nproc)"
} >>"$OUT/checks.log" 2>&1

# 1. Dataset on the CPUs (bit-exact, parallel) while the CUDA tests use the GPU.
stamp "generate NRI T=10 data" | tee -a "$OUT/checks.log"
WORKERS=$(($(nproc) > 3 ? $(nproc) - 2 : 1))
(
    t0=$(date +%s)
    # shellcheck disable=SC2086  # NRI_SIZES is a list of flags
    "$PY" -m examples.nri generate --timesteps 10 --workers "$WORKERS" --data-dir "$NRI_DATA" $NRI_SIZES \
        >"$OUT/generate.log" 2>&1
    echo "generate exit $? after $(($(date +%s) - t0)) s with $WORKERS workers" >>"$OUT/generate.log"
    (cd "$NRI_DATA" && sha256sum ./*.npy) >>"$OUT/generate.log" 2>&1
) &
GEN=$!
if [ "$DEVICE" = cuda ] && [ -z "${SKIP_TESTS:-}" ]; then
    stamp "pytest -m cuda" | tee -a "$OUT/checks.log"
    timeout 150 "$PY" -m pytest -m cuda -q -p no:cacheprovider tests/test_core_adapter.py tests/test_core_aimle.py \
        tests/test_core_noise.py tests/test_estimators_matrix.py tests/test_nri_cli.py tests/test_solvers_grid.py \
        tests/test_solvers_spanning_tree.py >>"$OUT/checks.log" 2>&1
    echo "pytest exit $?" >>"$OUT/checks.log"
fi
wait $GEN
grep -a "generate exit" "$OUT/generate.log" | tee -a "$OUT/checks.log"

# 2. Benchmarks, alone on the machine (timings).
if [ -z "${SKIP_BENCH:-}" ]; then
    stamp "benchmarks" | tee -a "$OUT/checks.log"
    timeout 60 "$PY" -m benchmarks.estimator_overhead --device "$DEVICE" >>"$OUT/checks.log" 2>&1
    echo "estimator_overhead exit $?" >>"$OUT/checks.log"
    timeout 90 "$PY" -m benchmarks.solvers --device "$DEVICE" --quick >>"$OUT/checks.log" 2>&1
    echo "solvers exit $?" >>"$OUT/checks.log"
fi

# 3. NRI, four runs side by side (each is bound by kernel-launch latency, not by the GPU).
LEFT=$((DEADLINE - ($(date +%s) - START) - RESERVE))
LIMIT=$((LEFT < NRI_TIME_LIMIT ? LEFT : NRI_TIME_LIMIT))
LIMIT=$((LIMIT < 10 ? 10 : LIMIT))
stamp "NRI training, $LIMIT s each" | tee -a "$OUT/checks.log"
if [ -n "${NRI_CONTINUE:-}" ]; then
    read -r -a names <<<"$NRI_CONTINUE"
else
    names=(aimle-forward-s0 aimle-forward-s1 aimle-central-s0 imle-forward-s0)
    flags=("--seed 0" "--seed 1" "--difference central --seed 0" "--estimator imle --seed 0")
fi
pids=()
for i in "${!names[@]}"; do
    if [ -n "${NRI_CONTINUE:-}" ]; then
        # Everything but the device and the time limit comes from the run's own config.json.
        "$PY" -m examples.nri train --run-dir "$RUNS/${names[$i]}" --data-dir "$NRI_DATA" --device "$DEVICE" \
            --resume --time-limit "$LIMIT" >>"$RUNS/${names[$i]}.out" 2>&1 &
    else
        # shellcheck disable=SC2086  # word splitting of the flag strings is intended
        "$PY" -m examples.nri train --run-dir "$RUNS/${names[$i]}" --data-dir "$NRI_DATA" --device "$DEVICE" \
            --eval-batch-size 1000 --time-limit "$LIMIT" ${flags[$i]} $NRI_TRAIN_EXTRA \
            >"$RUNS/${names[$i]}.out" 2>&1 &
    fi
    pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done
stamp "NRI evaluate and plot" | tee -a "$OUT/checks.log"
for name in "${names[@]}"; do
    (
        "$PY" -m examples.nri evaluate --run-dir "$RUNS/$name" --data-dir "$NRI_DATA" --device "$DEVICE" \
            >"$RUNS/$name.eval.out" 2>&1
        "$PY" -m examples.nri plot --run-dir "$RUNS/$name" --data-dir "$NRI_DATA" >>"$RUNS/$name.eval.out" 2>&1
    ) &
done
wait
for name in "${names[@]}"; do
    echo "== $name: $(grep -a "trained" "$RUNS/$name.out" | tail -1)" >>"$OUT/checks.log"
    cat "$RUNS/$name/eval.json" >>"$OUT/checks.log" 2>&1
done
tar czf "$OUT/nri_runs.tgz" --exclude='*.pt' "$RUNS"
tar czf "$OUT/nri_best.tgz" "$RUNS"/*/best.pt 2>/dev/null
if [ -n "${NRI_CONTINUE:-}" ]; then
    # The continued runs' checkpoints come back whole, to be carried to the next lease.
    for name in "${names[@]}"; do
        tar cf "$OUT/run_$name.tar" -C "$RUNS" "$name"
    done
else
    for name in aimle-forward-s0 aimle-forward-s1; do
        cp "$RUNS/$name/last.pt" "$OUT/last_$name.pt" 2>/dev/null
    done
fi
stamp "done" | tee -a "$OUT/checks.log"
