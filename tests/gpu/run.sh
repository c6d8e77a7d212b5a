#!/usr/bin/env bash
# tests/gpu/run.sh: the CUDA backend's acceptance run on a GPU machine, in one call:
#   1. build (CMake, Release, CUDA) unless LLT_GPU_PREBUILT names a folder of built binaries;
#   2. ctest: every CPU and GPU test (GPU tests exit 77 = skipped where there is no device);
#   3. compute-sanitizer (memcheck; racecheck + synccheck on the op tests) on the GPU tests;
#   4. benchmarks: llama-triton bench --device cuda on the built-in shapes;
# logs under $OUT (few files: at most 8 come back from the device tool), a short table last.
#
# usage: tests/gpu/run.sh [full|tests|bench|explore|all|latency|spec|serve|device|longctx|attnsets|multi]
#   full     everything above (default)
#   tests    1-3 only
#   bench    1 and 4 only
#   explore  bench, then llama2-7b / tinyllama with PDL, graphs, autotuning switched off in turn,
#            and an Nsight Compute summary of the decode kernels (what limits them)
#   all      tests, bench and explore
#   latency  decode latency work (bench/notes-cuda-latency.md), one call within 10 minutes, in
#            order of priority under a deadline (LATENCY_BUDGET s, default 540): test_cuda_ops,
#            test_cuda_model, tinyllama-1.1b / llama3.2-1b / llama2-7b benches, tinyllama
#            ablations (split attention kernel, cluster size 8, QKV late trigger, GEMV table
#            with U = 8, QKV late trigger, cluster size 8, ...; each with a fresh autotune
#            cache), autotune decisions, compute-sanitizer memcheck + racecheck on the attention
#            cases, an ncu summary of decode kernels (NCU=1)
#   spec     the specification's interface on the GPU (issue 12): tests/python/test_spec_interface.py
#            with the image's python3 + torch, device 'cuda' and CUDA tensors (log: spec.log);
#            builds only the shared library (or uses LLT_GPU_PREBUILT/libllama_triton.so)
#   serve    `llama-triton serve` under load (issue 13): llama3-8b-shaped random f16 weights with the
#            Llama 3 tokenizer, bench/serve_load.py at concurrency SERVE_CONC (1,16,64,256;
#            SERVE_INPUT prompt tokens (1024), 128 generated; SERVE_CONC="" skips them; SERVE_PEAK="INPUT:CONC ..."
#            adds levels for the peak output rate, each SERVE_PEAK_REQUESTS requests (default 2 x CONC) from
#            SERVE_PROCS client processes (4); SERVE_PARALLEL,
#            SERVE_STEP, SERVE_PAGES, SERVE_HTTP_THREADS: the server's --parallel, --max-step-tokens, --max_pages, --http-threads), beside `llama-triton bench` -b 1 and -b 64 of the
#            same shape (logs: serve.log, serve_load.jsonl, bench.jsonl); needs libmicrohttpd and
#            PCRE2 (the Llama 3 tokenizer), which the image lacks: LLT_MHD_ROOT and LLT_PCRE2_ROOT
#            name unpacked Debian packages (dpkg -x of libmicrohttpd-dev + libmicrohttpd12,
#            libpcre2-dev + libpcre2-8-0; their lib folders on LD_LIBRARY_PATH)
#   device   the default device (issue 18): test_device and test_cli by ctest (auto picks the GPU,
#            CUDA_VISIBLE_DEVICES=-1 children see none, forced cpu/cuda), then the `make run` story
#            with no --device (the load line says cuda:0), timed; build only those targets with
#            TARGETS="llama-triton test_device test_cli"; log: device.log
#   longctx  long-context work (issue 19), one call under a deadline (LONGCTX_BUDGET s, default
#            400): test_cuda_ops (flash prefill / long decode against the CPU op on random
#            shapes up to 131072 keys), test_cuda_model, the attention kernels' speed
#            (LLT_ATTN_SPEED: TFLOP/s of a 512-row prefill chunk at depth 512..131072, decode
#            GB/s), llama3.2-1b benches -p P -n 128 for P in LONGCTX_P (default 512 4096 16384
#            32768 130944: + 128 = the 131072 context) with the f16 cache and LONGCTX_P8 with
#            the f8 cache, the older kernels for comparison (LONGCTX_CMP=""
#            skips: LLT_CUDA_PREFILL=v1 at 16384, the cluster decode kernel at 32768), then
#            compute-sanitizer (LONGCTX_SAN, default
#            memcheck racecheck) on small flash cases; logs: tests.log, attn.log, bench.*,
#            sanitizer.log; LONGCTX_PS="P..." also benches under LONGCTX_PS_ENV (default
#            LLT_CUDA_PREFILL_SPLITS=auto; label LONGCTX_PS_LABEL), LONGCTX_ATTN_ENV="VAR=x ..."
#            times the kernels once more under those switches; LONGCTX_8B="P..." benches the
#            llama3.1-8b shape (llama3-8b with Llama 3.1's 128k context; label 8b), LONGCTX_8BS="P..."
#            that shape under LONGCTX_PS_ENV
#   attnsets the prefill attention kernel's variants against each other (issue 19), one short call:
#            test_cuda_ops' attention cases (test_attention, test_flash_shapes, or the comma list
#            ATTN_TESTS_ONLY, e.g. adding test_flash_decode; ATTN_TESTS="" skips),
#            then LLT_ATTN_SPEED=sets at hd ATTN_HD (64) for ATTN_ROWS (512 2048) rows under the
#            environment sets ATTN_SETS ("-" = the defaults; a set: VAR=x pairs joined by commas),
#            ATTN_BATCH launches a timing (4); ATTN_NCU="set ..." adds Nsight Compute's pipe use and warp
#            states of one launch at depth 131072 under each set; ATTN_E2E="P ..." llama3.2-1b benches
#            -p P -n 16 with the defaults and under ATTN_E2E_ENV ("VAR=x ..."); ATTN_SAN="memcheck ..."
#            compute-sanitizer on test_flash_shapes; logs: tests.log, sets.log, ncu.log, e2e.log,
#            sanitizer.log (build only test_cuda_ops and llama-triton with
#            TARGETS="llama-triton test_cuda_ops", or carry them: LLT_GPU_PREBUILT)
#   multi    the multi-GPU layer split (needs 2 GPUs for all of it): test_cuda_multi on both
#            GPUs while test_cuda_model / test_cuda_ops run side by side one per GPU, then
#            llama2-7b on one GPU, split over cuda:0,cuda:0 and over cuda:0,cuda:1, then
#            llama2-70b split over both GPUs with a KV pool of 32k tokens (and, to show that
#            it does not fit, alone on cuda:0); logs: multi.log, tests.log, bench.log
# env: OUT (default ./gpu-out), LLT_GPU_PREBUILT (folder with llama-triton and test_* binaries, or
#      the .tar.xz that tests/gpu/prebuild.sh packs),
#      JOBS (build parallelism, default nproc), SHAPES (bench shapes), REPS (default 5),
#      SAN_TOOLS (compute-sanitizer tools, default "memcheck racecheck synccheck"; "" skips),
#      SAN_TIMEOUT (seconds per sanitizer run, default 900; exit 124 = not finished in time),
#      SAN_ONLY=1 (tests mode: skip the plain runs of the GPU tests, sanitizer only),
#      SAN_TESTS (programs under the sanitizer), LLT_TEST_ONLY (test_cuda_ops cases, comma list),
#      TARGETS (build only these targets, e.g. "llama-triton test_cuda_multi")
set -u
# never NVLink multicast on shared hosts (KINDS.md): keep it off for anything started here
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
MODE=${1:-full}
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
JOBS=${JOBS:-$(nproc)}
REPS=${REPS:-5}
SHAPES=${SHAPES:-"tinyllama-1.1b llama3.2-1b llama2-7b llama3-8b"}
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
export PATH=/usr/local/cuda/bin:$PATH
SUMMARY=$OUT/summary.txt
: >"$SUMMARY"
note() { echo "$*" | tee -a "$SUMMARY"; }

note "== device"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv,noheader 2>&1 | tee -a "$SUMMARY"
note "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown) $(git status --porcelain 2>/dev/null | grep -c . ) uncommitted paths; $(date -u +%FT%TZ)"

# ---- 1. build -------------------------------------------------------------------------------
if [ -n "${LLT_GPU_PREBUILT:-}" ]; then
  BIN=$LLT_GPU_PREBUILT
  case $BIN in *.tar.xz) # tests/gpu/prebuild.sh's pack: unpacked under /tmp
    mkdir -p /tmp/llt-prebuilt && tar -xJf "$BIN" -C /tmp/llt-prebuilt && BIN=/tmp/llt-prebuilt/bin ;;
  esac
  note "== build: prebuilt binaries from $BIN ($(cat "$BIN/TAG" 2>/dev/null || echo no TAG))"
else
  BIN=build-gpu
  t0=$(date +%s)
  GEN=""; command -v ninja >/dev/null && GEN="-G Ninja"
  if ! { cmake -S . -B "$BIN" $GEN -DCMAKE_BUILD_TYPE=Release -DLLT_WERROR=OFF ${LLT_MHD_ROOT:+-DLLT_MHD_ROOT=$LLT_MHD_ROOT} ${LLT_PCRE2_ROOT:+-DLLT_PCRE2_ROOT=$LLT_PCRE2_ROOT} &&
         cmake --build "$BIN" -j "$JOBS" ${TARGETS:+--target $TARGETS}; } >"$OUT/build.log" 2>&1; then
    note "== build FAILED (see build.log)"; tail -30 "$OUT/build.log"; exit 1
  fi
  note "== build: ok in $(( $(date +%s) - t0 )) s"
fi

# ---- 2-3. tests -------------------------------------------------------------------------------
run_tests() {
  local log=$OUT/tests.log
  : >"$log"
  if [ -z "${LLT_GPU_PREBUILT:-}" ]; then
    (ctest --test-dir "$BIN" -j 8 --output-on-failure 2>&1 | tail -60) >>"$log"
    note "ctest: $(grep -E 'tests passed|tests failed' "$log" | tail -1)"
    grep -E "Failed|\*\*\*|Not Run|Skipped" "$log" | head -20 | tee -a "$SUMMARY"
  fi
  for t in test_cuda_ops test_cuda_model; do
    [ -n "${SAN_ONLY:-}" ] && break
    echo "---- $t" >>"$log"
    LLT_FIXTURES=tests/fixtures timeout 400 "$BIN/$t" >>"$log" 2>&1
    local rc=$?
    note "$t: exit $rc ($( [ $rc = 0 ] && echo pass || { [ $rc = 77 ] && echo skipped || echo FAIL; } ))"
    grep -E "FAIL|CHECK failed|rel err|agrees|bandwidth|greedy" "$log" | grep -v "^  ok" | tail -25 >>"$SUMMARY"
  done
  local slog=$OUT/sanitizer.log
  : >"$slog"
  for tool in ${SAN_TOOLS-memcheck racecheck synccheck}; do
    for t in ${SAN_TESTS:-test_cuda_ops test_cuda_model}; do
      [ "$tool" != memcheck ] && [ "$t" = test_cuda_model ] && continue
      echo "---- compute-sanitizer --tool $tool $t" >>"$slog"
      LLT_SANITIZER=1 LLT_FIXTURES=tests/fixtures LLT_AUTOTUNE=${SAN_TUNE:-0} timeout "${SAN_TIMEOUT:-900}" \
        compute-sanitizer --tool "$tool" --error-exitcode 99 "$BIN/$t" >>"$slog" 2>&1
      local rc=$?
      note "compute-sanitizer $tool $t: exit $rc $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$slog" | tail -1)"
    done
  done
}

# ---- 4. benchmarks -----------------------------------------------------------------------------
bench_one() { # shape, extra env..., label
  local shape=$1 label=$2; shift 2
  env "$@" timeout 300 "$BIN/llama-triton" bench --shape "$shape" --device cuda --dtype f16 -p 512 -n 128 \
      --reps "$REPS" --json 2>>"$OUT/bench.log" | sed "s/^{/{\"label\": \"$label\", /" >>"$OUT/bench.jsonl"
}

run_bench() {
  : >"$OUT/bench.jsonl"
  for s in $SHAPES; do bench_one "$s" default; done
}

run_explore() {
  for s in tinyllama-1.1b llama2-7b; do
    bench_one "$s" no-pdl LLT_CUDA_PDL=0
    bench_one "$s" no-graphs LLT_CUDA_GRAPHS=0
    bench_one "$s" no-autotune LLT_AUTOTUNE=0
    bench_one "$s" attn-late LLT_CUDA_ATTN_EARLY=0
    bench_one "$s" gemv-early LLT_CUDA_EARLY_TRIGGER=1
  done
  # autotune decisions with their timings (fresh cache)
  XDG_CACHE_HOME=$(mktemp -d) LLT_AUTOTUNE_VERBOSE=1 timeout 200 "$BIN/llama-triton" bench --shape tinyllama-1.1b \
      --device cuda --dtype f16 -p 512 -n 8 --reps 1 2>&1 | grep autotune >"$OUT/autotune.txt"
  XDG_CACHE_HOME=$(mktemp -d) LLT_AUTOTUNE_VERBOSE=1 timeout 200 "$BIN/llama-triton" bench --shape llama2-7b \
      --device cuda --dtype f16 -p 512 -n 8 --reps 1 2>&1 | grep autotune >>"$OUT/autotune.txt"
  note "autotune decisions: $(grep -c . "$OUT/autotune.txt") in autotune.txt"
  [ -n "${NCU:-}" ] || return
  command -v ncu >/dev/null || { note "ncu not found"; return; }
  timeout 300 ncu --clock-control none --launch-skip 3000 --launch-count 30 \
      --metrics gpu__time_duration.sum,dram__bytes_read.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,sm__throughput.avg.pct_of_peak_sustained_elapsed,launch__grid_size,launch__registers_per_thread \
      "$BIN/llama-triton" bench --shape tinyllama-1.1b --device cuda --dtype f16 -p 512 -n 32 --reps 1 \
      >"$OUT/ncu.txt" 2>&1
  note "ncu: $(grep -c 'gpu__time_duration' "$OUT/ncu.txt") kernel records in ncu.txt"
}

# ---- multi-GPU layer split ---------------------------------------------------------------------
bench_split() { # label, timeout, bench args...
  local label=$1 t=$2; shift 2
  echo "---- $label: bench $*" >>"$OUT/bench.log"
  timeout "$t" "$BIN/llama-triton" bench --json "$@" 2>>"$OUT/bench.log" | sed "s/^{/{\"label\": \"$label\", /" \
      >>"$OUT/bench.jsonl"
  note "bench $label: exit ${PIPESTATUS[0]}"
}

run_multi() {
  nvidia-smi topo -m 2>&1 | head -6 | tee -a "$SUMMARY"
  LLT_FIXTURES=tests/fixtures timeout "${MULTI_TIMEOUT:-180}" "$BIN/test_cuda_multi" >"$OUT/multi.log" 2>&1
  note "test_cuda_multi: exit $?"
  grep -E "FAIL|CHECK failed|bit-equal|entry|SKIPPED|passed|checks" "$OUT/multi.log" | tail -30 >>"$SUMMARY"
  : >"$OUT/bench.jsonl"
  : >"$OUT/bench.log"
  local b7="--shape llama2-7b --dtype f16 -p ${P7:-512} -n ${N7:-64} --reps ${REPS7:-3}"
  bench_split 7b-1gpu 120 $b7 --device cuda:0
  bench_split 7b-2gpu 120 $b7 --device cuda:0,cuda:1
  bench_split 7b-same-gpu 120 $b7 --device cuda:0,cuda:0
  local b70="--shape llama2-70b --dtype bf16 -p ${P70:-128} -n ${N70:-32} --reps ${REPS70:-2} --max_pages 2048"
  bench_split 70b-2gpu 180 $b70 --device cuda:0,cuda:1
  bench_split 70b-1gpu 60 $b70 --device cuda:0
  grep -E "cuda:[0-9] \(|layers .* go from|cannot allocate|rror" "$OUT/bench.log" | tail -20 >>"$SUMMARY"
  local log=$OUT/tests.log t=${ONE_GPU_TIMEOUT:-150}
  (CUDA_VISIBLE_DEVICES=0 LLT_FIXTURES=tests/fixtures timeout "$t" "$BIN/test_cuda_model" >"$OUT/t_model.log" 2>&1
   echo "test_cuda_model: exit $?" >>"$OUT/t_model.log") &
  (CUDA_VISIBLE_DEVICES=1 LLT_FIXTURES=tests/fixtures timeout "$t" "$BIN/test_cuda_ops" >"$OUT/t_ops.log" 2>&1
   echo "test_cuda_ops: exit $?" >>"$OUT/t_ops.log") &
  wait
  cat "$OUT/t_model.log" "$OUT/t_ops.log" >"$log" && rm -f "$OUT/t_model.log" "$OUT/t_ops.log"
  grep -E "^test_cuda_(model|ops): exit|FAIL|CHECK failed|checks" "$log" | tail -12 | tee -a "$SUMMARY"
}

# ---- decode latency (H9) ------------------------------------------------------------------------
T_START=$(date +%s)
in_budget() { # what: true while the deadline leaves room for it
  if [ $(( $(date +%s) - T_START )) -lt "${LATENCY_BUDGET:-540}" ]; then return 0; fi
  note "skipped (deadline): $1"; return 1
}

gpu_tests() { # per-program timeout (s): test_cuda_ops and test_cuda_model into tests.log
  local log=$OUT/tests.log t
  : >"$log"
  for t in test_cuda_ops test_cuda_model; do
    echo "---- $t" >>"$log"
    LLT_FIXTURES=tests/fixtures timeout "$1" "$BIN/$t" >>"$log" 2>&1
    note "$t: exit $? after $(( $(date +%s) - T_START )) s"
  done
  grep -E "FAIL|CHECK failed|rel err|agrees|bandwidth|greedy" "$log" | grep -v "^  ok" | tail -20 >>"$SUMMARY"
}

san_cases() { # test_cuda_ops case, default timeout (s), tools...: compute-sanitizer into sanitizer.log
  local case=$1 tmo=$2 slog=$OUT/sanitizer.log tool
  shift 2
  : >"$slog"
  for tool in "$@"; do
    in_budget "sanitizer $tool" || continue
    echo "---- compute-sanitizer --tool $tool test_cuda_ops ($case)" >>"$slog"
    LLT_TEST_ONLY=$case LLT_SANITIZER=1 LLT_AUTOTUNE=0 timeout "${SAN_TIMEOUT:-$tmo}" \
      compute-sanitizer --tool "$tool" --error-exitcode 99 "$BIN/test_cuda_ops" >>"$slog" 2>&1
    note "compute-sanitizer $tool test_cuda_ops ($case): exit $? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$slog" | tail -1)"
  done
}

run_latency() {
  gpu_tests 300
  : >"$OUT/bench.jsonl"
  for s in tinyllama-1.1b llama3.2-1b llama2-7b; do in_budget "bench $s" && bench_one "$s" default; done
  # each variant with its own fresh autotune cache (the picks vary run to run), decisions in bench.log
  local v
  for v in "tinyllama-1.1b fresh-1" "tinyllama-1.1b fresh-2" "tinyllama-1.1b u8 LLT_CUDA_GEMV_U8=1" \
           "tinyllama-1.1b qkv-late LLT_CUDA_QKV_EARLY=0" "tinyllama-1.1b cs8 LLT_CUDA_ATTN_CS=8" \
           "tinyllama-1.1b attn-v1 LLT_CUDA_ATTN=v1" "tinyllama-1.1b u8-2 LLT_CUDA_GEMV_U8=1" \
           "llama3.2-1b fresh-1" "llama3.2-1b cs8 LLT_CUDA_ATTN_CS=8" "llama2-7b u8 LLT_CUDA_GEMV_U8=1" \
           "llama2-7b fresh-1" "tinyllama-1.1b fresh-3"; do
    set -- $v
    in_budget "$1 $2" || continue
    echo "---- $1 $2" >>"$OUT/bench.log"
    bench_one "$@" XDG_CACHE_HOME="$(mktemp -d)" LLT_AUTOTUNE_VERBOSE=1
  done
  san_cases test_attention 120 memcheck racecheck
  if [ -n "${NCU:-}" ] && in_budget "ncu" && command -v ncu >/dev/null; then
    timeout "${NCU_TIMEOUT:-90}" ncu --clock-control none --launch-skip 3000 --launch-count 24 \
      --metrics gpu__time_duration.sum,dram__bytes_read.sum,launch__grid_size,launch__cluster_dim_x,launch__registers_per_thread \
      "$BIN/llama-triton" bench --shape tinyllama-1.1b --device cuda --dtype f16 -p 512 -n 32 --reps 1 \
      >"$OUT/ncu.txt" 2>&1
    note "ncu: exit $?, $(grep -c 'gpu__time_duration' "$OUT/ncu.txt") kernel records in ncu.txt"
  fi
}

run_spec() {
  local log=$OUT/spec.log
  python3 -c 'import torch; print("torch", torch.__version__, "cuda devices", torch.cuda.device_count())' >"$log" 2>&1
  local lib=$BIN/libllama_triton.so
  [ "${lib#/}" = "$lib" ] && lib=$PWD/$lib
  LLT_LIB=$lib timeout "${SPEC_TIMEOUT:-240}" python3 -m pytest -q -rA --timeout=200 \
    -p no:cacheprovider tests/python/test_spec_interface.py >>"$log" 2>&1
  note "spec (test_spec_interface.py on the GPU): exit $? $(grep -E '(passed|failed|error)' "$log" | tail -1)"
  grep -E "^(FAILED|ERROR|PASSED)" "$log" | head -30 >>"$SUMMARY"
}

run_serve() {
  local log=$OUT/serve.log tok=tests/fixtures/tokenizers/llama3/tokenizer.model port="" pid
  : >"$OUT/bench.jsonl"
  for b in ${SERVE_BENCH_B:-1 64}; do
    "$BIN/llama-triton" bench --shape llama3-8b --device cuda -p "${SERVE_BENCH_P:-1024}" -n 128 -b $b --reps "${REPS:-3}" --json \
      >>"$OUT/bench.jsonl" 2>>"$log"
    note "bench llama3-8b -b $b: $(tail -1 "$OUT/bench.jsonl")"
  done
  "$BIN/llama-triton" serve --shape llama3-8b --tokenizer "$tok" --device cuda --port 0 --parallel "${SERVE_PARALLEL:-256}" \
    --ctx 1280 --max_pages "${SERVE_PAGES:-21000}" --max-step-tokens "${SERVE_STEP:-2048}" --max-queue 4096 --timeout 0 \
    --http-threads "${SERVE_HTTP_THREADS:-4}" --max-connections 4096 >"$OUT/serve-stderr.log" 2>&1 &
  pid=$!
  for _ in $(seq 600); do
    port=$(grep -o 'ready on http://127.0.0.1:[0-9]*' "$OUT/serve-stderr.log" | grep -o '[0-9]*$')
    [ -n "$port" ] && break
    kill -0 $pid 2>/dev/null || break
    sleep 0.2
  done
  if [ -z "$port" ]; then note "serve did not start"; tail -20 "$OUT/serve-stderr.log"; kill $pid 2>/dev/null; return 1; fi
  note "== serve ready on port $port"
  : >"$OUT/serve_load.jsonl"
  if [ -n "${SERVE_CONC-1,16,64,256}" ]; then
    PYTHONUNBUFFERED=1 python3 bench/serve_load.py --url "http://127.0.0.1:$port" --concurrency "${SERVE_CONC-1,16,64,256}" \
      --input "${SERVE_INPUT:-1024}" --output 128 --max-id 128000 --json >>"$OUT/serve_load.jsonl" 2>>"$log"
    tail -8 "$log" | tee -a "$SUMMARY"
  fi
  local lv
  for lv in ${SERVE_PEAK:-}; do # "INPUT:CONC": short-prompt levels for the peak output rate
    PYTHONUNBUFFERED=1 python3 bench/serve_load.py --url "http://127.0.0.1:$port" --concurrency "${lv#*:}" \
      --requests "${SERVE_PEAK_REQUESTS:-0}" --procs "${SERVE_PROCS:-4}" --input "${lv%%:*}" --output 128 --max-id 128000 --json \
      >>"$OUT/serve_load.jsonl" 2>>"$log"
    tail -3 "$log" | tee -a "$SUMMARY"
  done
  python3 -c "import urllib.request as u; print(u.urlopen('http://127.0.0.1:$port/metrics').read().decode())" |
    grep -E "^llt_(kv_pages|prefix|requests_total|generation|requests_in)" >>"$log"
  kill -TERM $pid; wait $pid; note "serve exit status $?"
}

run_device() {
  local log=$OUT/device.log
  ctest --test-dir "$BIN" -R 'test_device|test_cli' --output-on-failure >"$log" 2>&1
  note "device tests: $(grep -E 'tests passed|tests failed' "$log" | tail -1)"
  local t0; t0=$(date +%s.%N)
  "$BIN/llama-triton" models/stories260K.gguf -p "Once upon a time" --echo -n 200 --temperature 0.8 --seed 42 >>"$log" 2>&1
  note "story (auto device): exit $?, $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }') s; $(grep -o 'on [a-z0-9:,]*: [^)]*$' "$log" | tail -1)"
}

# ---- long context (issue 19) --------------------------------------------------------------------
bench_ctx() { # label (f8*: an f8 KV cache; 8b*: the llama3-8b shape, else llama3.2-1b), P, extra env...
  local label=$1 p=$2 line kv="" shape=llama3.2-1b; shift 2
  case $label in f8*) kv="--kv_dtype f8" ;; 8b*) shape=llama3.1-8b ;; esac
  in_budget "bench $label p$p" || return
  echo "---- $label p$p $*" >>"$OUT/bench.log"
  line=$(env "$@" timeout 200 "$BIN/llama-triton" bench --shape $shape --device cuda --dtype f16 $kv -p "$p" \
      -n 128 --reps "$([ "$p" -ge 32768 ] && echo 1 || echo 3)" --json 2>>"$OUT/bench.log" | sed "s/^{/{\"label\": \"$label\", /")
  [ -n "$line" ] && echo "$line" >>"$OUT/bench.jsonl"
  note "bench $label p$p: $(echo "$line" | python3 -c 'import json,sys; r=json.loads(sys.stdin.read()); print("pp %.0f tok/s, tg %.1f tok/s" % (r["pp_tok_s"]["median"], r["tg_tok_s"]["median"]))' 2>/dev/null || echo failed)"
}

run_longctx() {
  LATENCY_BUDGET=${LONGCTX_BUDGET:-400}
  gpu_tests 240
  LLT_ATTN_SPEED=1 LLT_TEST_ONLY=test_flash_speed timeout 120 "$BIN/test_cuda_ops" >"$OUT/attn.log" 2>&1
  note "attention speed: exit $?"
  grep -E "attention speed|decode speed|FAIL" "$OUT/attn.log" | sed 's/^ *//' >>"$SUMMARY"
  if [ -n "${LONGCTX_ATTN_ENV:-}" ]; then # the same under other switches (e.g. LLT_CUDA_PREFILL_WARPS=8)
    echo "---- $LONGCTX_ATTN_ENV" >>"$OUT/attn.log"
    env $LONGCTX_ATTN_ENV LLT_ATTN_SPEED=1 LLT_TEST_ONLY=test_flash_speed timeout 120 "$BIN/test_cuda_ops" >>"$OUT/attn.log" 2>&1
    note "attention speed with $LONGCTX_ATTN_ENV: exit $?"
    sed -n "/^---- $LONGCTX_ATTN_ENV/,\$p" "$OUT/attn.log" | grep -E "attention speed|decode speed|FAIL" | sed 's/^ */env: /' >>"$SUMMARY"
  fi
  : >"$OUT/bench.jsonl"
  : >"$OUT/bench.log"
  local p
  for p in ${LONGCTX_P:-512 4096 16384 32768 130944}; do bench_ctx flash "$p"; done
  for p in ${LONGCTX_P8-512 32768 130944}; do bench_ctx f8 "$p"; done
  for p in ${LONGCTX_PS-}; do bench_ctx "${LONGCTX_PS_LABEL:-splits-auto}" "$p" ${LONGCTX_PS_ENV:-LLT_CUDA_PREFILL_SPLITS=auto}; done
  for p in ${LONGCTX_8B-}; do bench_ctx 8b "$p"; done
  for p in ${LONGCTX_8BS-}; do bench_ctx "8b-${LONGCTX_PS_LABEL:-splits-auto}" "$p" ${LONGCTX_PS_ENV:-LLT_CUDA_PREFILL_SPLITS=auto}; done
  [ -n "${LONGCTX_CMP-1}" ] && bench_ctx prefill-v1 16384 LLT_CUDA_PREFILL=v1
  [ -n "${LONGCTX_CMP-1}" ] && bench_ctx cluster-decode 32768 LLT_CUDA_ATTN_LONG=1000000000
  grep -iE "error|fail" "$OUT/bench.log" | head -5 >>"$SUMMARY"
  san_cases test_flash_shapes 90 ${LONGCTX_SAN-memcheck racecheck}
}

run_attnsets() {
  if [ -n "${ATTN_TESTS-1}" ]; then
    LLT_TEST_ONLY=${ATTN_TESTS_ONLY:-test_attention,test_flash_shapes} timeout "${ATTN_TT:-240}" "$BIN/test_cuda_ops" >"$OUT/tests.log" 2>&1
    note "test_cuda_ops attention cases: exit $? $(grep -E 'checks' "$OUT/tests.log" | tail -1)"
    grep -m5 FAIL "$OUT/tests.log" >>"$SUMMARY"
  fi
  local rows e p
  : >"$OUT/sets.log"
  for rows in ${ATTN_ROWS-512 2048}; do
    LLT_ATTN_SPEED=sets LLT_ATTN_SPEED_HD=${ATTN_HD:-64} LLT_ATTN_SPEED_ROWS=$rows LLT_ATTN_SPEED_BATCH=${ATTN_BATCH:-4} \
      LLT_ATTN_SPEED_SETS="${ATTN_SETS:--}" LLT_TEST_ONLY=test_flash_speed timeout 150 "$BIN/test_cuda_ops" 2>&1 |
      grep sets >>"$OUT/sets.log"
  done
  sed 's/^ */sets: /' "$OUT/sets.log" >>"$SUMMARY"
  for e in ${ATTN_NCU-}; do
    echo "---- ncu $e" >>"$OUT/ncu.log"
    env $(echo "$e" | tr ',' ' ' | sed 's/^-$//') LLT_ATTN_SPEED=sets LLT_ATTN_SPEED_HD=${ATTN_HD:-64} \
      LLT_ATTN_SPEED_DEPTH=131072 LLT_ATTN_SPEED_ROWS=512 LLT_TEST_ONLY=test_flash_speed timeout 150 \
      ncu --kernel-name regex:fa_ws_kernel --launch-skip 4 --launch-count 1 \
      --metrics 'regex:^sm__(pipe_.*_cycles_active|inst_executed_pipe_.*|inst_issued)\.avg\.pct_of_peak_sustained_active$' \
      --section WarpStateStats "$BIN/test_cuda_ops" >>"$OUT/ncu.log" 2>&1
    note "ncu $e: exit $?"
  done
  for p in ${ATTN_E2E-}; do
    for e in - ${ATTN_E2E_ENV:+"$ATTN_E2E_ENV"}; do
      echo "---- p$p $e" >>"$OUT/e2e.log"
      env $( [ "$e" = - ] || echo "$e") timeout 200 "$BIN/llama-triton" bench --shape llama3.2-1b --device cuda --dtype f16 \
        -p "$p" -n 16 --reps 1 >>"$OUT/e2e.log" 2>&1
      note "e2e p$p [$e]: $(grep -E 'pp[0-9]+' "$OUT/e2e.log" | tail -1)"
    done
  done
  [ -z "${ATTN_SAN-}" ] || san_cases test_flash_shapes 90 $ATTN_SAN
}

case "$MODE" in
  serve) run_serve ;;
  spec) run_spec ;;
  full) run_tests; run_bench ;;
  tests) run_tests ;;
  bench) run_bench ;;
  explore) : >"$OUT/bench.jsonl"; run_bench; run_explore ;;
  all) run_tests; run_bench; run_explore ;;
  multi) run_multi ;;
  device) run_device ;;
  latency) run_latency ;;
  longctx) run_longctx ;;
  attnsets) run_attnsets ;;
  *) echo "unknown mode $MODE"; exit 2 ;;
esac
tail -5 "$OUT/bench.log" 2>/dev/null
echo "================ summary"
cat "$SUMMARY"
echo "================ table (median tok/s, tg min..max, weight GB/s, fraction of the measured copy bandwidth)"
python3 - "$OUT/bench.jsonl" <<'EOF' 2>/dev/null | tee "$OUT/table.txt"
import json, sys
for line in open(sys.argv[1]):
    try:
        r = json.loads(line)
    except ValueError:
        continue
    print("%-16s %-14s p%-6d pp %8.0f  tg %7.1f [%6.1f..%6.1f]  %5.0f GB/s %5.1f%% of %4.0f" % (r["model"], r["label"], r["p"],
          r["pp_tok_s"]["median"], r["tg_tok_s"]["median"], r["tg_tok_s"]["min"], r["tg_tok_s"]["max"],
          r["tg_gb_s"], 100 * r["fraction_of_copy"], r["copy_gb_s"]))
EOF
