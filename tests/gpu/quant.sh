#!/usr/bin/env bash
# tests/gpu/quant.sh: the GGML-block CUDA kernels (issue 20) on a GPU machine, in one call:
#   1. build llama-triton and the CUDA tests (Release), or take them from LLT_GPU_PREBUILT;
#   2. test_cuda_quant (block GEMV / dequantise + cuBLASLt vs the CPU block kernels; the
#      llama-quantize fixtures vs gguf-py's logits), its kernel cases again on the register GEMV
#      (LLT_CUDA_QTMA=0), test_cuda_model and the linear cases of test_cuda_ops (the float path
#      shares the GEMV prologue/epilogues) where built;
#   3. bench: decode and prefill of random-block models next to f16 (SHAPES x DTYPES);
#   4. VARIANTS: bench (and the kernel cases) under other settings of the block GEMV, each a
#      comma list of environment assignments, e.g.
#      VARIANTS="LLT_CUDA_QTMA=0 LLT_CUDA_QTMA_WARPS=4,LLT_CUDA_QTMA_STAGES=8";
#   5. NCU=1: Nsight Compute times and DRAM bytes of every kernel of one decode step
#      (NCU_SHAPE / NCU_DTYPE, default llama2-7b q4_k; NCU_ENVS settings; ncu-N.csv, summarised
#      by bench/ncu_step.py);
#   6. compute-sanitizer memcheck on test_cuda_quant (SAN_ONLY: its cases, default test_ops;
#      SAN_TIMEOUT), last.
# logs under $OUT; a short table last.
# env: OUT, JOBS, LLT_GPU_PREBUILT, SHAPES (default "llama2-7b llama3-8b"), DTYPES (default
#      "q4_k q8_0 f16"), REPS (default 3), SKIP_SAN=1, SKIP_TESTS=1, VARIANTS, VSHAPE, VDTYPE,
#      VTESTS=1 (kernel cases under each variant), NCU, NCU_SHAPE, NCU_DTYPE, TEST_TIMEOUT,
#      FALLBACK=1 (test_cuda_quant failed: the rest with LLT_CUDA_QTMA=0, no sanitizer, no ncu),
#      BATCH=N (bench -b N -n 64 of BDTYPES under each of BENVS), VTESTS_ONLY (cases under each variant),
#      SAN_ENVS (settings for the sanitizer runs, "-" none)
set -u
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
JOBS=${JOBS:-$(nproc)}
REPS=${REPS:-3}
SHAPES=${SHAPES:-"llama2-7b llama3-8b"}
DTYPES=${DTYPES:-"q4_k q8_0 f16"}
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
export PATH=/usr/local/cuda/bin:$PATH
export LLT_FIXTURES=${LLT_FIXTURES:-$PWD/tests/fixtures}
S=$OUT/summary.txt
: >"$S"
note() { echo "$*" | tee -a "$S"; }
note "== $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1)"
note "commit $(git rev-parse --short HEAD 2>/dev/null || cat COMMIT 2>/dev/null || echo unknown); $(date -u +%FT%TZ)"
if [ -n "${LLT_GPU_PREBUILT:-}" ]; then
  BIN=$LLT_GPU_PREBUILT
  note "== prebuilt binaries from $BIN"
else
  BIN=build-gpu
  t0=$(date +%s)
  cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DLLT_WERROR=OFF >"$OUT/build.log" 2>&1 &&
    cmake --build build-gpu -j "$JOBS" --target llama-triton test_cuda_quant ${BUILD_MORE-test_cuda_model test_cuda_ops} \
      >>"$OUT/build.log" 2>&1
  rc=$?
  note "== build rc $rc in $(( $(date +%s) - t0 )) s"
  [ $rc -ne 0 ] && { tail -40 "$OUT/build.log"; exit 1; }
fi
if [ -z "${SKIP_TESTS:-}" ]; then
  t1=$(date +%s)
  XDG_CACHE_HOME=/tmp/llt-cache timeout ${TEST_TIMEOUT:-240} $BIN/test_cuda_quant >"$OUT/test_cuda_quant.log" 2>&1
  rc=$?
  note "test_cuda_quant rc $rc ($(( $(date +%s) - t1 )) s): $(tail -1 "$OUT/test_cuda_quant.log")"
  if [ $rc -ne 0 ] && [ -n "${FALLBACK:-}" ]; then # the rest on the register GEMV
    export LLT_CUDA_QTMA=0 SKIP_SAN=1 NCU=
    note "FALLBACK: LLT_CUDA_QTMA=0 for the rest"
  fi
  grep -E "rel err|CHECK failed" "$OUT/test_cuda_quant.log" | head -30 | tee -a "$S"
  LLT_CUDA_QTMA=0 LLT_TEST_ONLY=test_ops XDG_CACHE_HOME=/tmp/llt-cache timeout 120 $BIN/test_cuda_quant \
    >"$OUT/test_cuda_quant_reg.log" 2>&1
  note "test_cuda_quant test_ops, register GEMV (LLT_CUDA_QTMA=0) rc $?: $(tail -1 "$OUT/test_cuda_quant_reg.log")"
  grep -E "CHECK failed" "$OUT/test_cuda_quant_reg.log" | head -10 | tee -a "$S"
  if [ -x $BIN/test_cuda_model ]; then
    t1=$(date +%s)
    XDG_CACHE_HOME=/tmp/llt-cache timeout 240 $BIN/test_cuda_model >"$OUT/test_cuda_model.log" 2>&1
    note "test_cuda_model rc $? ($(( $(date +%s) - t1 )) s): $(tail -1 "$OUT/test_cuda_model.log")"
  fi
  if [ -x $BIN/test_cuda_ops ]; then
    t1=$(date +%s)
    LLT_TEST_ONLY=test_linear,test_qkv,test_swiglu_embed timeout 240 $BIN/test_cuda_ops >"$OUT/test_cuda_ops.log" 2>&1
    note "test_cuda_ops (linear, qkv, swiglu) rc $? ($(( $(date +%s) - t1 )) s): $(tail -1 "$OUT/test_cuda_ops.log")"
  fi
fi
B=$OUT/bench.txt
: >"$B"
note "== bench (-p 512 -n 128, reps $REPS)"
for sh in $SHAPES; do
  for dt in $DTYPES; do
    t1=$(date +%s)
    XDG_CACHE_HOME=/tmp/llt-cache timeout 200 $BIN/llama-triton bench --shape "$sh" --dtype "$dt" --device cuda \
      -p 512 -n 128 --reps "$REPS" >/tmp/bench.log 2>&1
    note "$sh $dt rc $? ($(( $(date +%s) - t1 )) s)"
    { echo "## $sh $dt"; cat /tmp/bench.log; } >>"$B"
    grep -E "pp512|tg128|weights read" /tmp/bench.log | tee -a "$S"
  done
done
for v in ${VARIANTS:-}; do
  sh=${VSHAPE:-llama2-7b}
  envs=$(echo "$v" | tr ',' ' ')
  if [ -n "${VTESTS:-}" ]; then # the kernel cases under this setting too
    env $envs LLT_TEST_ONLY=${VTESTS_ONLY:-test_ops,test_models} XDG_CACHE_HOME=/tmp/llt-cache timeout 120 \
      $BIN/test_cuda_quant >/tmp/test_variant.log 2>&1
    note "variant $v: test_cuda_quant rc $?: $(tail -1 /tmp/test_variant.log)"
    grep -m3 "CHECK failed" /tmp/test_variant.log | tee -a "$S"
    grep "decode :" /tmp/test_variant.log | awk '{printf "%s %s; ", $1, $7}' | tee -a "$S"; echo | tee -a "$S"
  fi
  for dt in ${VDTYPE:-q4_k}; do
    env $envs XDG_CACHE_HOME=/tmp/llt-cache timeout 200 $BIN/llama-triton bench --shape "$sh" --dtype "$dt" \
      --device cuda -p 512 -n 128 --reps "$REPS" >/tmp/bench.log 2>&1
    rc=$?
    { echo "## variant $v $sh $dt"; cat /tmp/bench.log; } >>"$B"
    note "variant $v ($sh $dt) rc $rc: $(grep -E "pp512|tg128" /tmp/bench.log | tr -s ' ' | tr '\n' ';')"
  done
done
if [ -n "${BATCH:-}" ]; then # batched decode: BATCH sequences, BDTYPES (default "q4_k f16") under BENVS
  for v in ${BENVS:--}; do   # settings as in NCU_ENVS ("-" none; comma lists)
    envs=$(echo "$v" | tr ',' ' '); [ "$v" = "-" ] && envs=""
    for dt in ${BDTYPES:-q4_k f16}; do
      env $envs XDG_CACHE_HOME=/tmp/llt-cache timeout 200 $BIN/llama-triton bench --shape ${VSHAPE:-llama2-7b} --dtype "$dt" \
        --device cuda -p 512 -n 64 -b "$BATCH" --reps 2 >/tmp/bench.log 2>&1
      rc=$?
      { echo "## batch $BATCH ${VSHAPE:-llama2-7b} $dt [$v]"; cat /tmp/bench.log; } >>"$B"
      note "batch $BATCH $dt [$v] rc $rc: $(grep -E "pp512|tg64" /tmp/bench.log | tr -s ' ' | tr '\n' ';')"
    done
  done
fi
if [ -n "${NCU:-}" ]; then
  # one steady decode step: -p 1 -n 40 runs ~80 steps of ~165 kernels after the random fill;
  # skip into the warm-up rep's decode and profile one step and a bit; NCU_ENVS: settings
  # ("-" none; comma lists), one ncu-N.csv each
  n=0
  for v in ${NCU_ENVS:--}; do
    envs=$(echo "$v" | tr ',' ' '); [ "$v" = "-" ] && envs=""
    t1=$(date +%s)
    env $envs XDG_CACHE_HOME=/tmp/llt-cache timeout ${NCU_TIMEOUT:-150} ncu --clock-control none --csv --print-units base \
      --metrics gpu__time_duration.sum,dram__bytes_read.sum,dram__bytes_write.sum,sm__inst_executed.avg.per_cycle_active,sm__warps_active.avg.pct_of_peak_sustained_active \
      --launch-skip ${NCU_SKIP:-4000} --launch-count ${NCU_COUNT:-200} \
      $BIN/llama-triton bench --shape "${NCU_SHAPE:-llama2-7b}" --dtype "${NCU_DTYPE:-q4_k}" --device cuda \
      -p 1 -n 40 --reps 1 >"$OUT/ncu-$n.csv" 2>/tmp/ncu.err
    note "ncu [$v] rc $? ($(( $(date +%s) - t1 )) s), $(grep -c gpu__time_duration "$OUT/ncu-$n.csv") kernels"
    python3 bench/ncu_step.py "$OUT/ncu-$n.csv" 2>&1 | head -12 | tee -a "$S"
    n=$((n + 1))
  done
fi
if [ -z "${SKIP_SAN:-}" ]; then
  n=0
  for v in ${SAN_ENVS:--}; do
    envs=$(echo "$v" | tr ',' ' '); [ "$v" = "-" ] && envs=""
    t1=$(date +%s)
    env $envs LLT_TEST_ONLY=${SAN_ONLY:-test_ops} XDG_CACHE_HOME=/tmp/llt-cache-san timeout ${SAN_TIMEOUT:-300} compute-sanitizer \
      --tool memcheck --error-exitcode 9 $BIN/test_cuda_quant >"$OUT/sanitizer-$n.log" 2>&1
    note "compute-sanitizer memcheck test_cuda_quant [$v] rc $? ($(( $(date +%s) - t1 )) s): $(grep -E 'ERROR SUMMARY' "$OUT/sanitizer-$n.log" | tail -1)"
    grep -m5 -E "Invalid|out of bounds|CHECK failed" "$OUT/sanitizer-$n.log" | tee -a "$S"
    n=$((n + 1))
  done
fi
