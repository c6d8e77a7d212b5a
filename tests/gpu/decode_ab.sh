#!/usr/bin/env bash
# tests/gpu/decode_ab.sh: decode speed of two builds (or two settings of one build) side by side
# on a GPU machine, in one call, from prebuilt binaries (bench/RESULTS.md, issue 20: decode
# attention's share of a batch-1 step):
#   1. the CUDA tests of NEW (test_cuda_ops' cases in OPS_ONLY, default the attention ones;
#      test_cuda_model; test_cuda_quant where built);
#   2. `llama-triton bench --device cuda` of every CASE under every ARM, the arms alternated
#      A B B A (ROUNDS, default 2) so that drift shows;
#   3. compute-sanitizer memcheck on test_cuda_ops' attention cases (SAN=1), if time is left.
# env: NEW (folder with llama-triton and the tests, default build-gpu), OLD (a second folder, or
#      empty), ARMS (default "old:- new:-" when OLD is set, else "new:-"; an arm is BUILD:ENV
#      with ENV a comma list of settings, "-" none, e.g. "new:LLT_CUDA_ATTN_ABL=1"),
#      CASES (semicolon list of bench arguments after --device cuda, default llama2-7b q4_k at
#      depths 16, 512 and 2048 and 8 sequences), DL (seconds for the whole call, default 500),
#      OUT (default ./gpu-out). Output: $OUT/summary.txt (one line a run), $OUT/bench.log.
set -u
T0=$(date +%s)
DL=${DL:-500}
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
NEW=${NEW:-build-gpu}
OLD=${OLD:-}
ARMS=${ARMS:-$([ -n "$OLD" ] && echo "old:- new:-" || echo "new:-")}
CASES=${CASES:-"--shape llama2-7b --dtype q4_k -p 16 -n 128 --reps 2;--shape llama2-7b --dtype q4_k -p 512 -n 128 --reps 2;--shape llama2-7b --dtype q4_k -p 2048 -n 128 --reps 2;--shape llama2-7b --dtype q4_k -p 512 -n 64 -b 8 --reps 2"}
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
export PATH=/usr/local/cuda/bin:$PATH
export LLT_FIXTURES=${LLT_FIXTURES:-$PWD/tests/fixtures} XDG_CACHE_HOME=${XDG_CACHE_HOME:-/tmp/llt-cache}
S=$OUT/summary.txt
: >"$S"
: >"$OUT/bench.log"
note() { echo "$*" | tee -a "$S"; }
left() { echo $((DL - ($(date +%s) - T0))); }
dir_of() { [ "$1" = old ] && echo "$OLD" || echo "$NEW"; }
envs_of() { if [ "$1" != "-" ]; then echo "$1" | tr ',' ' '; fi; }
note "== $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1)"
note "new $NEW${OLD:+, old $OLD}; $(date -u +%FT%TZ)"
test_one() { # name envs...
    local name=$1
    shift
    [ -x "$NEW/$name" ] || return 0
    env "$@" timeout "${TEST_TIMEOUT:-200}" "$NEW/$name" >"$OUT/$name.log" 2>&1
    note "$name [$*] rc $?: $(grep -E 'checks' "$OUT/$name.log" | tail -1)"
    grep -m5 "CHECK failed" "$OUT/$name.log" | tee -a "$S"
}
test_one test_cuda_ops LLT_TEST_ONLY="${OPS_ONLY:-test_attention,test_flash_decode}"
test_one test_cuda_model
test_one test_cuda_quant
bench_one() { # arm case
    local b=${1%%:*} e=${1#*:} d
    d=$(dir_of "$b")
    [ "$(left)" -lt 20 ] && { note "skip $1 $2 (time)"; return; }
    # shellcheck disable=SC2046,SC2086 # the settings and the case are lists of words
    env $(envs_of "$e") timeout 90 "$d/llama-triton" bench --device cuda $2 >/tmp/decode_ab.log 2>&1
    local rc=$?
    { echo "## $1 $2 (rc $rc)"; cat /tmp/decode_ab.log; } >>"$OUT/bench.log"
    note "$1 | $2 | $(grep -oE '[pt][pg][0-9]+ +[0-9.]+ tok/s' /tmp/decode_ab.log | tr -s ' ' | tr '\n' ' ')"
}
IFS=';' read -r -a CASE_LIST <<<"$CASES"
read -r -a ARM_LIST <<<"$ARMS"
REV=()
for ((i = ${#ARM_LIST[@]} - 1; i >= 0; i--)); do REV+=("${ARM_LIST[$i]}"); done
for ((r = 0; r < ${ROUNDS:-2}; r++)); do
    for arm in "${ARM_LIST[@]}" "${REV[@]}"; do
        for c in "${CASE_LIST[@]}"; do bench_one "$arm" "$c"; done
    done
done
if [ -n "${SAN:-}" ] && [ "$(left)" -gt 100 ]; then
    LLT_TEST_ONLY=test_attention timeout $(($(left) - 20)) compute-sanitizer --tool memcheck --error-exitcode 9 \
        "$NEW/test_cuda_ops" >"$OUT/san.log" 2>&1
    note "compute-sanitizer memcheck test_attention rc $?: $(grep 'ERROR SUMMARY' "$OUT/san.log" | tail -1)"
fi
note "done in $(($(date +%s) - T0)) s"
