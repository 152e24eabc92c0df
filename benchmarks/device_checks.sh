#!/usr/bin/env bash
# The GPU checks of the project in one deadline-bounded script, for a leased GPU machine:
#   1. the CUDA tests (pytest -m cuda) while the NRI dataset is generated on the CPUs,
#   2. (BENCH=1 only) the GPU benchmarks (estimator overhead, batched solvers vs CPU baselines),
#   3. the NRI full recipe, AIMLE forward T = 10, with the captured step (--compile: torch.compile
#      with CUDA graphs): seed 0 first, then seeds 1, 2, ... while time is left, one run at a
#      time (a captured run keeps the GPU busy); each run stops at the first validation after the
#      deadline and stays resumable. If the captured step fails, the run continues eagerly.
#      NRI_CONTINUE="name ..." instead resumes those runs of $RUNS (carried to the machine).
#   4. the test evaluation and plots of every run; logs, checkpoints and plots land in $OUT.
#
#   OUT=/tmp/out DEADLINE=540 bash benchmarks/device_checks.sh
#   DEVICE=cpu NRI_COMPILE=0 DEADLINE=120 RESERVE=30 NRI_SIZES="--train 64 --valid 16 --test 16" \
#     NRI_TRAIN_EXTRA="--hidden 8 --batch-size 8 --validate-every 5 --iterations 20" NRI_MIN_RUN=5 \
#     bash benchmarks/device_checks.sh                          # a dry run of the plumbing on a CPU
#   SKIP_TESTS=1 NRI_CONTINUE=aimle-forward-s0 RUNS=runs/device bash benchmarks/device_checks.sh
#                                    # a lease spent on continuing one run (carry runs/device/aimle-forward-s0)
set -u
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
OUT=${OUT:-device-out}
DEVICE=${DEVICE:-cuda}
# Training gets what is left of DEADLINE seconds (from the start of this script), less a reserve
# for the last validation, the test evaluation, plots and tarballs.
DEADLINE=${DEADLINE:-540}
RESERVE=${RESERVE:-60}
NRI_SIZES=${NRI_SIZES:-}
NRI_TRAIN_EXTRA=${NRI_TRAIN_EXTRA:-}
NRI_DATA=${NRI_DATA:-data}
NRI_SEEDS=${NRI_SEEDS:-0 1 2 3}
NRI_COMPILE=${NRI_COMPILE:-1}
NRI_MIN_RUN=${NRI_MIN_RUN:-90}   # seconds: a further seed is started only with this much time left
RUNS=${RUNS:-runs/device}
PY=${PY:-python3}
mkdir -p "$OUT" "$RUNS"
START=$(date +%s)
stamp() { echo "[$(($(date +%s) - START)) s] $*"; }
left() { echo $((DEADLINE - ($(date +%s) - START) - RESERVE)); }

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
    timeout "${TEST_TIMEOUT:-150}" "$PY" -m pytest -m cuda -q -p no:cacheprovider tests/test_core_adapter.py \
        tests/test_core_aimle.py tests/test_core_noise.py tests/test_estimators_matrix.py tests/test_nri_cli.py \
        tests/test_nri_step.py tests/test_solvers_grid.py tests/test_solvers_spanning_tree.py \
        >>"$OUT/checks.log" 2>&1
    echo "pytest exit $?" >>"$OUT/checks.log"
fi
wait $GEN
grep -a "generate exit" "$OUT/generate.log" | tee -a "$OUT/checks.log"

# 2. Benchmarks, alone on the machine (timings); not part of the NRI lease unless asked for.
if [ -n "${BENCH:-}" ]; then
    stamp "benchmarks" | tee -a "$OUT/checks.log"
    timeout 60 "$PY" -m benchmarks.estimator_overhead --device "$DEVICE" >>"$OUT/checks.log" 2>&1
    echo "estimator_overhead exit $?" >>"$OUT/checks.log"
    timeout 90 "$PY" -m benchmarks.solvers --device "$DEVICE" --quick >>"$OUT/checks.log" 2>&1
    echo "solvers exit $?" >>"$OUT/checks.log"
fi

# 3. NRI: one run at a time, each until it finishes or the deadline comes.
COMPILE_FLAG=$([ "$NRI_COMPILE" = 1 ] && echo --compile)
train_run() {  # train_run NAME [flags for a new run]; resumes NAME if it has a last.pt
    local name=$1 limit
    shift
    limit=$(left)
    [ "$limit" -lt 10 ] && limit=10
    stamp "NRI $name: up to $limit s ${COMPILE_FLAG:-eager}" | tee -a "$OUT/checks.log"
    if [ -f "$RUNS/$name/last.pt" ]; then
        # Everything but the device, --compile and the time limit comes from the run's config.json.
        "$PY" -m examples.nri train --run-dir "$RUNS/$name" --data-dir "$NRI_DATA" --device "$DEVICE" --resume \
            --time-limit "$limit" $COMPILE_FLAG >>"$RUNS/$name.out" 2>&1
    else
        # shellcheck disable=SC2086  # word splitting of the flag strings is intended
        "$PY" -m examples.nri train --run-dir "$RUNS/$name" --data-dir "$NRI_DATA" --device "$DEVICE" \
            --eval-batch-size 1000 --time-limit "$limit" $COMPILE_FLAG "$@" $NRI_TRAIN_EXTRA \
            >>"$RUNS/$name.out" 2>&1
    fi
    local rc=$?
    echo "train $name exit $rc" >>"$OUT/checks.log"
    if [ "$rc" != 0 ] && [ -n "$COMPILE_FLAG" ] && [ "$(left)" -ge 10 ]; then
        # The captured step failed (a torch.compile / CUDA-graph problem): the rest of the lease
        # goes to the eager step, resuming from the run's last validation if it reached one.
        tail -5 "$RUNS/$name.out" >>"$OUT/checks.log"
        COMPILE_FLAG=
        if [ -f "$RUNS/$name/last.pt" ]; then
            train_run "$name"
        else
            train_run "$name" "$@" --overwrite
        fi
    fi
}
finished() {  # whether run NAME has done all its iterations
    "$PY" -c "import json, sys, torch; c = torch.load(sys.argv[1] + '/last.pt', weights_only=True); \
sys.exit(0 if c['state']['iteration'] >= c['config']['iterations'] else 1)" "$RUNS/$1" 2>/dev/null
}
names=()
if [ -n "${NRI_CONTINUE:-}" ]; then
    read -r -a names <<<"$NRI_CONTINUE"
    for name in "${names[@]}"; do train_run "$name"; done
else
    for seed in $NRI_SEEDS; do
        if [ "${#names[@]}" -gt 0 ] && [ "$(left)" -lt "$NRI_MIN_RUN" ]; then
            break
        fi
        names+=("aimle-forward-s$seed")
        train_run "aimle-forward-s$seed" --seed "$seed"
        finished "aimle-forward-s$seed" || break  # stopped by the deadline: no time for another seed
    done
fi

# 4. Test evaluation and plots (the GPU is free again: all runs at once), then the files for $OUT.
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
    # Logs, plots, evaluation and both checkpoints (last.pt: carry it to the next lease to resume).
    tar cf "$OUT/run_$name.tar" -C "$RUNS" "$name" "$name.out" "$name.eval.out"
done
stamp "done" | tee -a "$OUT/checks.log"
