#!/usr/bin/env bash
# tests/gpu/quant_deq3.sh: issue 20's dequantisation v3 and small-batch variants in one device
# call, from prebuilt binaries: BIN (llama-triton, test_cuda_quant), or QBIN_TAR, a tar.xz of
# them unpacked into BIN first. test_cuda_quant (default; kernel cases with LLT_CUDA_QMMA_RW=2),
# the dequantisation kernel alone under LLT_CUDA_QDEQ_V3 = 4 0 8 2 (LLT_TEST_ONLY=bench_dequant),
# llama2-7b pp512 of q4_k q6_k q8_0 f16 (and q4_k with v1), 64 sequences of q4_k (RW 1, 2) and
# f16, memcheck on q_dequant3 / q4k_mma. Summary in $OUT/summary.txt, logs in $OUT/logs.tgz.
set -u
OUT=${OUT:-$PWD/gpu-out}; mkdir -p "$OUT"
B=${BIN:-build-gpu}
if [ -n "${QBIN_TAR:-}" ]; then mkdir -p "$B" && tar -xJf "$QBIN_TAR" -C "$B" || exit 3; fi
export LD_LIBRARY_PATH=$PWD/.gpu-coord/debroot/usr/lib/x86_64-linux-gnu:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
export PATH=/usr/local/cuda/bin:$PATH
export LLT_FIXTURES=$PWD/tests/fixtures XDG_CACHE_HOME=/tmp/llt-cache
S=$OUT/summary.txt; L=/tmp/logs; mkdir -p $L
trap 'tar -czf "$OUT/logs.tgz" -C "$L" . 2>/dev/null' EXIT
note() { echo "$*" | tee -a "$S"; }
note "== $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader) $(cat "$B/COMMIT" 2>/dev/null || git rev-parse --short HEAD) $(date -u +%T)"
t0=$SECONDS
timeout 90 $B/test_cuda_quant >$L/tq.log 2>&1; note "test_cuda_quant default rc $?: $(tail -1 $L/tq.log) [$((SECONDS-t0))s]"
grep -m8 "CHECK failed\|FAIL" $L/tq.log | tee -a $S
grep -E "(decode|prefill) *:" $L/tq.log | tr -s ' ' | tee -a $S
t0=$SECONDS
LLT_CUDA_QMMA_RW=2 LLT_TEST_ONLY=test_ops timeout 60 $B/test_cuda_quant >$L/tq2.log 2>&1; note "test_cuda_quant ops RW=2 rc $?: $(tail -1 $L/tq2.log) [$((SECONDS-t0))s]"
grep -m8 "CHECK failed\|FAIL" $L/tq2.log | tee -a $S
for v in 4 0 8 2; do
  LLT_CUDA_QDEQ_V3=$v LLT_TEST_ONLY=bench_dequant timeout 30 $B/test_cuda_quant 2>&1 | grep bench_dequant | sed "s/^/V3=$v /" | tee -a $S
done
bench() { local lab=$1; shift; t0=$SECONDS; env "$@" >$L/b.log 2>&1; note "$lab rc $?: $(grep -E '^ *(pp|tg)[0-9]' $L/b.log | tr -s ' ' | tr '\n' ';') [$((SECONDS-t0))s]"; cat $L/b.log >>$L/bench.log; }
LT="$B/llama-triton bench --shape llama2-7b --device cuda"
for dt in q4_k q6_k q8_0 f16; do bench "pp $dt" timeout 60 $LT --dtype $dt -p 512 -n 8 --reps 3; done
bench "pp q4_k V3=0" LLT_CUDA_QDEQ_V3=0 timeout 60 $LT --dtype q4_k -p 512 -n 8 --reps 3
bench "b64 q4_k" timeout 60 $LT --dtype q4_k -p 512 -n 64 -b 64 --reps 2
bench "b64 q4_k RW=2" LLT_CUDA_QMMA_RW=2 timeout 60 $LT --dtype q4_k -p 512 -n 64 -b 64 --reps 2
bench "b64 f16" timeout 60 $LT --dtype f16 -p 512 -n 64 -b 64 --reps 2
t0=$SECONDS
LLT_CUDA_QMMA_RW=2 LLT_TEST_ONLY=test_ops XDG_CACHE_HOME=/tmp/llt-san timeout 150 compute-sanitizer --tool memcheck --error-exitcode 9 \
  --kernel-name kns=q_dequant3 --kernel-name kns=q4k_mma $B/test_cuda_quant >$L/san.log 2>&1
note "memcheck (q_dequant3, q4k_mma; RW=2) rc $?: $(grep -E 'ERROR SUMMARY' $L/san.log | tail -1) [$((SECONDS-t0))s]"
grep -m5 -E "Invalid|out of bounds|rror:|unrecognized|CHECK failed" $L/san.log | tee -a $S
