#!/usr/bin/env bash
# tests/gpu/quant.sh: the GGML-block CUDA kernels (issue 20) on a GPU machine, in one call:
#   1. build llama-triton and the CUDA tests (Release);
#   2. test_cuda_quant (block GEMV / dequantise + cuBLASLt vs the CPU block kernels; the
#      llama-quantize fixtures vs gguf-py's logits), test_cuda_model and the linear cases of
#      test_cuda_ops (the float path shares the GEMV prologue/epilogues);
#   3. compute-sanitizer memcheck on test_cuda_quant;
#   4. bench: decode and prefill of random-block models next to f16 (SHAPES x DTYPES).
# logs under $OUT; a short table last.
#   5. VARIANTS: the block GEMV's launch shapes on llama2-7b q4_k, each "warps:bps:pf" (the
#      LLT_CUDA_QGEMV_WARPS / _BPS / _PF knobs of quant.cu), e.g. VARIANTS="8:0:1 8:2:1 16:1:0".
# env: OUT, JOBS, SHAPES (default "llama2-7b llama3-8b"), DTYPES (default "q4_k q8_0 f16"),
#      REPS (default 3), SKIP_SAN=1, SKIP_TESTS=1, VARIANTS (default none), VSHAPE, VDTYPE
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
t0=$(date +%s)
cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DLLT_WERROR=OFF >"$OUT/build.log" 2>&1 &&
  cmake --build build-gpu -j "$JOBS" --target llama-triton test_cuda_quant test_cuda_model test_cuda_ops \
    >>"$OUT/build.log" 2>&1
rc=$?
note "== build rc $rc in $(( $(date +%s) - t0 )) s"
[ $rc -ne 0 ] && { tail -40 "$OUT/build.log"; exit 1; }
if [ -z "${SKIP_TESTS:-}" ]; then
  for t in test_cuda_quant test_cuda_model; do
    t1=$(date +%s)
    XDG_CACHE_HOME=/tmp/llt-cache timeout 240 build-gpu/$t >"$OUT/$t.log" 2>&1
    note "$t rc $? ($(( $(date +%s) - t1 )) s): $(tail -1 "$OUT/$t.log")"
  done
  grep -E "rel err|CHECK failed" "$OUT/test_cuda_quant.log" | head -30 | tee -a "$S"
  t1=$(date +%s)
  LLT_TEST_ONLY=test_linear,test_qkv,test_swiglu_embed timeout 240 build-gpu/test_cuda_ops >"$OUT/test_cuda_ops.log" 2>&1
  note "test_cuda_ops (linear, qkv, swiglu) rc $? ($(( $(date +%s) - t1 )) s): $(tail -1 "$OUT/test_cuda_ops.log")"
fi
if [ -z "${SKIP_SAN:-}" ]; then
  t1=$(date +%s)
  LLT_TEST_ONLY=${SAN_ONLY:-test_ops} XDG_CACHE_HOME=/tmp/llt-cache-san timeout 300 compute-sanitizer \
    --tool memcheck --error-exitcode 9 build-gpu/test_cuda_quant >"$OUT/sanitizer.log" 2>&1
  note "compute-sanitizer memcheck test_cuda_quant rc $? ($(( $(date +%s) - t1 )) s): $(grep -E 'ERROR SUMMARY' "$OUT/sanitizer.log" | tail -1)"
fi
note "== bench (-p 512 -n 128, reps $REPS)"
for sh in $SHAPES; do
  for dt in $DTYPES; do
    t1=$(date +%s)
    XDG_CACHE_HOME=/tmp/llt-cache timeout 200 build-gpu/llama-triton bench --shape "$sh" --dtype "$dt" --device cuda \
      -p 512 -n 128 --reps "$REPS" >"$OUT/bench-$sh-$dt.log" 2>&1
    note "$sh $dt rc $? ($(( $(date +%s) - t1 )) s)"
    grep -E "pp512|tg128|weights|tok/s" "$OUT/bench-$sh-$dt.log" | tee -a "$S"
  done
done
for v in ${VARIANTS:-}; do
  IFS=: read -r vw vb vp <<<"$v"
  sh=${VSHAPE:-llama2-7b} dt=${VDTYPE:-q4_k}
  if [ -z "${SKIP_TESTS:-}" ]; then # the kernel cases under this launch shape too
    LLT_CUDA_QGEMV_WARPS=$vw LLT_CUDA_QGEMV_BPS=$vb LLT_CUDA_QGEMV_PF=$vp LLT_TEST_ONLY=test_ops \
      XDG_CACHE_HOME=/tmp/llt-cache timeout 120 build-gpu/test_cuda_quant >"$OUT/test-variant-$vw-$vb-$vp.log" 2>&1
    note "variant warps $vw bps $vb pf $vp: test_cuda_quant test_ops rc $?: $(tail -1 "$OUT/test-variant-$vw-$vb-$vp.log")"
  fi
  LLT_CUDA_QGEMV_WARPS=$vw LLT_CUDA_QGEMV_BPS=$vb LLT_CUDA_QGEMV_PF=$vp XDG_CACHE_HOME=/tmp/llt-cache timeout 200 \
    build-gpu/llama-triton bench --shape "$sh" --dtype "$dt" --device cuda -p 512 -n 128 --reps "$REPS" \
    >"$OUT/variant-$vw-$vb-$vp.log" 2>&1
  note "variant warps $vw bps $vb pf $vp ($sh $dt) rc $?: $(grep -E "tg128" "$OUT/variant-$vw-$vb-$vp.log" | tr -s ' ')"
done
