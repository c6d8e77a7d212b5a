#!/usr/bin/env bash
# tests/gpu/quant_batch.sh: the block-weight prefill / batched paths (issue 20) on a GPU machine,
# in one call, from prebuilt binaries (BIN: llama-triton, test_cuda_quant[, test_cuda_model,
# test_cuda_ops]):
#   1. test_cuda_quant under each of TENVS (comma lists of settings, "-" none), test_cuda_model
#      and the linear cases of test_cuda_ops;
#   2. bench: llama2-7b pp512 / tg128 of DTYPES (default settings), prefill of PDTYPES under each
#      of PENVS, batched decode (-b B -p 512 -n 64) of BDTYPES under each of BENVS for B in BS;
#   3. compute-sanitizer (memcheck, and racecheck where RACE=1) on test_cuda_quant's kernel cases
#      under each of SAN_ENVS.
# A short table in $OUT/summary.txt (printed as it goes), the logs in $OUT/logs.tgz (the device
# tool returns 8 files).
set -u
OUT=${OUT:-$PWD/gpu-out}
L=${LOGS:-/tmp/qb-logs}
mkdir -p "$L"
trap 'tar -czf "$OUT/logs.tgz" -C "$L" . 2>/dev/null' EXIT
BIN=${BIN:-build-gpu}
REPS=${REPS:-3}
SHAPE=${SHAPE:-llama2-7b}
mkdir -p "$OUT"
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
export PATH=/usr/local/cuda/bin:$PATH
export LLT_FIXTURES=${LLT_FIXTURES:-$PWD/tests/fixtures} XDG_CACHE_HOME=/tmp/llt-cache
S=$OUT/summary.txt
: >"$S"
note() { echo "$*" | tee -a "$S"; }
envs_of() { [ "$1" = "-" ] && echo "" || echo "$1" | tr ',' ' '; }
note "== $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1)"
note "commit $(cat COMMIT 2>/dev/null || git rev-parse --short HEAD); $(date -u +%FT%TZ)"
n=0
for v in ${TENVS:--}; do
  env $(envs_of "$v") timeout ${TEST_TIMEOUT:-60} $BIN/test_cuda_quant >"$L/tq-$n.log" 2>&1
  note "test_cuda_quant [$v] rc $?: $(tail -1 "$L/tq-$n.log")"
  grep -m6 "CHECK failed" "$L/tq-$n.log" | tee -a "$S"
  grep -E "(decode|prefill) *:" "$L/tq-$n.log" | sed -E 's/ *([A-Za-z0-9_]+) +(prefill|decode) *: logits rel err ([0-9.e-]+).*/\1 \2 \3;/' \
    | tr '\n' ' ' | tee -a "$S"; echo | tee -a "$S"
  n=$((n + 1))
done
if [ -x $BIN/test_cuda_model ]; then
  timeout ${TEST_TIMEOUT:-60} $BIN/test_cuda_model >"$L/tm.log" 2>&1
  note "test_cuda_model rc $?: $(tail -1 "$L/tm.log")"
fi
if [ -x $BIN/test_cuda_ops ]; then
  LLT_TEST_ONLY=test_linear,test_qkv,test_swiglu_embed timeout ${TEST_TIMEOUT:-60} $BIN/test_cuda_ops >"$L/to.log" 2>&1
  note "test_cuda_ops (linear, qkv, swiglu) rc $?: $(tail -1 "$L/to.log")"
fi
B=$L/bench.txt
: >"$B"
bench() { # label envs args...
  local label=$1 envs=$2; shift 2
  env $(envs_of "$envs") timeout ${BENCH_TIMEOUT:-90} $BIN/llama-triton bench --shape "$SHAPE" --device cuda "$@" >/tmp/bench.log 2>&1
  local rc=$?
  { echo "## $label [$envs] $*"; cat /tmp/bench.log; } >>"$B"
  note "$label [$envs] rc $rc: $(grep -E "^ *(pp|tg)[0-9]" /tmp/bench.log | tr -s ' ' | tr '\n' ';')"
}
for dt in ${DTYPES-q4_k q6_k q8_0 f16}; do bench "$dt" - --dtype "$dt" -p 512 -n 128 --reps "$REPS"; done
for v in ${PENVS:-}; do
  for dt in ${PDTYPES:-q4_k q6_k q8_0}; do bench "prefill $dt" "$v" --dtype "$dt" -p 512 -n 16 --reps "$REPS"; done
done
for b in ${BS:-}; do
  for v in ${BENVS:--}; do
    for dt in ${BDTYPES:-q4_k}; do bench "batch $b $dt" "$v" --dtype "$dt" -p 512 -n 64 -b "$b" --reps 2; done
  done
  [ -n "${BF16:-1}" ] && bench "batch $b f16" - --dtype f16 -p 512 -n 64 -b "$b" --reps 2
done
n=0
for v in ${SAN_ENVS:-}; do
  for tool in memcheck ${RACE:+racecheck}; do
    env $(envs_of "$v") LLT_TEST_ONLY=test_ops XDG_CACHE_HOME=/tmp/llt-cache-san timeout ${SAN_TIMEOUT:-200} \
      compute-sanitizer --tool $tool --error-exitcode 9 $BIN/test_cuda_quant >"$L/san-$n.log" 2>&1
    note "compute-sanitizer $tool [$v] rc $?: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$L/san-$n.log" | tail -1)"
    grep -m5 -E "Invalid|out of bounds|hazard|CHECK failed" "$L/san-$n.log" | tee -a "$S"
    n=$((n + 1))
  done
done
