#!/usr/bin/env bash
# tests/gpu/anchor.sh: llama.cpp beside llama-triton on the same GGUF files, in one call on the
# GPU machine (issues 19 and 20: "measure llama.cpp on the same files in the same run").
#
# usage: tests/gpu/anchor.sh [quant|longctx|all]
#   quant    for each shape in ANCHOR_QSHAPES (llama2-7b): a random f16 GGUF (make_gguf.py),
#            llama-quantize'd into each of ANCHOR_QTYPES (Q4_K_M Q8_0); on each file ours
#            `bench FILE --device cuda -p 512 -n 128` (and -b ANCHOR_B, default 64, if set) beside
#            `llama-bench -m FILE -ngl 99 -fa 1 -p 512 -n 128` (and llama-batched-bench at ANCHOR_B
#            sequences of 512 + 128 tokens, when it was built)
#   longctx  an f16 GGUF of each shape in ANCHOR_LSHAPE (llama3.2-1b, 131072 context; also
#            llama3.1-8b: llama3-8b with a 131072 context), deleted after use unless ANCHOR_KEEP; for P in ANCHOR_LP
#            (512 16384 32768): ours `bench FILE -p P -n 128` (prefill from an empty cache, then
#            128 tokens decoded at depth P) beside llama-bench's prefill (`-p P -n 0 -d 0
#            -ub 2048`) and decode after depth (`-p 0 -n 128 -d P -ub 2048`); ANCHOR_KV8=1 adds
#            ours with the f8 KV cache
#   all      both (long context first)
# env: LCPP      llama.cpp binaries: a folder with bin/llama-bench, bin/llama-quantize (and
#                optionally bin/llama-batched-bench; shared libraries beside them) and gguf-py/; or LCPP_TAR, a .tar.xz of such
#                a folder named lcpp/, unpacked under /tmp (default /tmp/lcpp); or LCPP_SRC, the anchors' source
#                tarball (llama.cpp-*.tar.xz: 3 MB, where a prebuilt CUDA llama-bench is 42 MB compressed and
#                does not fit the device's 64 MiB working tree beside our files), built here into /tmp/lcpp
#                (CUDA sm_90a, static; about 5 minutes on 16 cores; LCPP_TARGETS, default: llama-bench
#                llama-quantize llama-batched-bench)
#      SHARED    the anchors' folder holding make_gguf.py (default ../shared/anchors, else
#                .gpu-coord/shared/anchors)
#      BIN       folder with our llama-triton (default: build it, Release, into build-anchor)
#      OUT (default ./gpu-out), REPS (default 3), WORK (GGUF files, default /tmp/anchor: they
#      are kept while the machine stays warm and reused)
# Output: $OUT/anchor.jsonl (one line per measurement: engine, file, test, tok/s), anchor.log,
# and a table of ratios (ours / llama.cpp) in $OUT/anchor.txt.
set -u
MODE=${1:-all}
OUT=${OUT:-$PWD/gpu-out}
REPS=${REPS:-3}
WORK=${WORK:-/tmp/anchor}
mkdir -p "$OUT" "$WORK"
LOG=$OUT/anchor.log
JL=$OUT/anchor.jsonl
: >"$JL"
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
export PATH=/usr/local/cuda/bin:$PATH
say() { echo "== $*" | tee -a "$LOG" >&2; }

if [ -n "${LCPP_TAR:-}" ] && [ ! -x /tmp/lcpp/bin/llama-bench ]; then
  tar -xJf "$LCPP_TAR" -C /tmp || { say "cannot unpack $LCPP_TAR"; exit 2; }
fi
LCPP=${LCPP:-/tmp/lcpp}
if [ -n "${LCPP_SRC:-}" ] && [ ! -x "$LCPP/bin/llama-bench" ]; then
  say "build llama.cpp from $LCPP_SRC into $LCPP"
  GEN=(); command -v ninja >/dev/null && GEN=(-G Ninja)
  rm -rf /tmp/lcpp-src && mkdir -p /tmp/lcpp-src && tar -xJf "$LCPP_SRC" -C /tmp/lcpp-src \
    && cmake -S /tmp/lcpp-src/lcpp -B /tmp/lcpp-src/b -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90a -DLLAMA_CURL=OFF \
      -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DBUILD_SHARED_LIBS=OFF \
      -DCMAKE_BUILD_TYPE=Release "${GEN[@]}" >>"$LOG" 2>&1 \
    && cmake --build /tmp/lcpp-src/b -j"$(nproc)" --target ${LCPP_TARGETS:-llama-bench llama-quantize llama-batched-bench} \
      >>"$LOG" 2>&1 || { say "llama.cpp build failed (see anchor.log)"; exit 2; }
  mkdir -p "$LCPP" && rm -rf "${LCPP:?}/bin" "${LCPP:?}/gguf-py" && cp -r /tmp/lcpp-src/b/bin "$LCPP/bin" \
    && cp -r /tmp/lcpp-src/lcpp/gguf-py "$LCPP/gguf-py" || { say "cannot copy the llama.cpp build to $LCPP"; exit 2; }
fi
[ -x "$LCPP/bin/llama-bench" ] || { say "no llama-bench under $LCPP/bin (set LCPP, LCPP_TAR or LCPP_SRC)"; exit 2; }
export LD_LIBRARY_PATH=$LCPP/bin:$LD_LIBRARY_PATH # a shared-library build keeps libggml*/libllama* beside the tools
if ldd "$LCPP/bin/llama-bench" | grep -q "not found"; then
  say "llama-bench misses libraries:"; ldd "$LCPP/bin/llama-bench" | grep "not found" | tee -a "$LOG" >&2; exit 2
fi
if [ -z "${SHARED:-}" ]; then
  if [ -f ../shared/anchors/make_gguf.py ]; then SHARED=../shared/anchors; else SHARED=.gpu-coord/shared/anchors; fi
fi
[ -f "$SHARED/make_gguf.py" ] || { say "no make_gguf.py under $SHARED"; exit 2; }
if [ -z "${BIN:-}" ]; then
  say "build llama-triton"
  cmake -S . -B build-anchor -DCMAKE_BUILD_TYPE=Release ${LLT_PCRE2_ROOT:+-DLLT_PCRE2_ROOT=$LLT_PCRE2_ROOT} \
    -DLLT_SERVER=OFF >>"$LOG" 2>&1 && cmake --build build-anchor -j"$(nproc)" --target llama-triton >>"$LOG" 2>&1 \
    || { say "build failed (see anchor.log)"; exit 2; }
  BIN=build-anchor
fi
LLT=$BIN/llama-triton
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  echo "commit $(git rev-parse --short HEAD 2>/dev/null) $(git status --porcelain 2>/dev/null | wc -l) uncommitted paths; $(date -u +%FT%TZ)"
  "$LCPP/bin/llama-bench" --version 2>&1 | head -2; } | tee -a "$LOG" >&2

gguf_f16() { # shape -> path of a random f16 GGUF (made once)
  local f=$WORK/$1-f16.gguf
  if [ ! -s "$f" ]; then
    say "make_gguf $1"
    # llama3.1-8b: llama3-8b's tensors with Llama 3.1's 131072-token context (not in make_gguf.py's table)
    PYTHONPATH=$LCPP/gguf-py:$SHARED${PYTHONPATH:+:$PYTHONPATH} python3 -c 'import sys, make_gguf as m
m.SHAPES["llama3.1-8b"] = m.SHAPES["llama3-8b"][:6] + (131072,) + m.SHAPES["llama3-8b"][7:]
sys.argv = ["make_gguf.py"] + sys.argv[1:]
m.main()' "$1" "$f.tmp" f16 >>"$LOG" 2>&1 \
      && mv "$f.tmp" "$f" || { say "make_gguf $1 failed"; rm -f "$f.tmp"; return 1; }
  fi
  echo "$f"
}

# one JSON line: engine file test tok/s [extra json fields]
rec() { printf '{"engine": "%s", "file": "%s", "test": "%s", "tok_s": %s%s}\n' "$1" "$(basename "$2")" "$3" "$4" "${5:-}" >>"$JL"; }

ours() { # file test-prefix args...: records pp and tg of one bench run
  local f=$1 tag=$2; shift 2
  local j
  j=$("$LLT" bench "$f" --device cuda --reps "$REPS" --json "$@" 2>>"$LOG" | tail -1)
  echo "ours $tag $* : $j" >>"$LOG"
  local pp tg
  pp=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["pp_tok_s"]["median"])' "$j" 2>/dev/null) || pp=null
  tg=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["tg_tok_s"]["median"])' "$j" 2>/dev/null) || tg=null
  rec ours "$f" "pp_$tag" "$pp"
  rec ours "$f" "tg_$tag" "$tg"
}

lcpp() { # file test args...: llama-bench, one test
  local f=$1 t=$2; shift 2
  local ts
  ts=$("$LCPP/bin/llama-bench" -m "$f" -ngl 99 -fa 1 -r "$REPS" -o jsonl "$@" 2>>"$LOG" | tee -a "$LOG" \
    | python3 -c 'import json,sys
v=[json.loads(l)["avg_ts"] for l in sys.stdin if l.startswith("{")]
print(v[-1] if v else "null")')
  rec llama.cpp "$f" "$t" "$ts"
}

run_quant() {
  local s q f16 f
  for s in ${ANCHOR_QSHAPES:-llama2-7b}; do
    f16=$(gguf_f16 "$s") || continue
    for q in ${ANCHOR_QTYPES:-Q4_K_M Q8_0}; do
      f=$WORK/$s-$q.gguf
      if [ ! -s "$f" ]; then
        say "llama-quantize $s $q"
        "$LCPP/bin/llama-quantize" "$f16" "$f.tmp" "$q" "$(nproc)" >>"$LOG" 2>&1 && mv "$f.tmp" "$f" \
          || { say "quantize $s $q failed"; rm -f "$f.tmp"; continue; }
      fi
      say "$s $q: ours"
      ours "$f" 512 -p 512 -n 128
      say "$s $q: llama.cpp"
      lcpp "$f" pp_512 -p 512 -n 0
      lcpp "$f" tg_512 -p 0 -n 128 -d 512
      if [ -n "${ANCHOR_B:-}" ]; then
        ours "$f" "b${ANCHOR_B}" -p 512 -n 128 -b "$ANCHOR_B"
        if [ -x "$LCPP/bin/llama-batched-bench" ]; then # S_TG: generated tokens/s over all sequences
          local tgb
          tgb=$("$LCPP/bin/llama-batched-bench" -m "$f" -ngl 99 -fa 1 -c $((ANCHOR_B * 640 + 64)) -b 2048 -ub 512 \
            -npp 512 -ntg 128 -npl "$ANCHOR_B" --output-format jsonl 2>>"$LOG" | tee -a "$LOG" \
            | python3 -c 'import json,sys
v=[json.loads(l) for l in sys.stdin if l.startswith("{")]
print(v[-1]["speed_tg"] if v else "null")')
          rec llama.cpp "$f" "tg_b${ANCHOR_B}" "$tgb"
        fi
      fi
    done
  done
}

run_longctx() {
  local s f p
  for s in ${ANCHOR_LSHAPE:-llama3.2-1b}; do
  f=$(gguf_f16 "$s") || continue
  for p in ${ANCHOR_LP:-512 16384 32768}; do
    say "$s P=$p: ours"
    ours "$f" "$p" -p "$p" -n 128
    [ -n "${ANCHOR_KV8:-}" ] && ours "$f" "${p}_f8" -p "$p" -n 128 --kv_dtype f8
    say "$s P=$p: llama.cpp"
    lcpp "$f" "pp_$p" -p "$p" -n 0 -d 0 -ub 2048
    lcpp "$f" "tg_$p" -p 0 -n 128 -d "$p" -ub 2048
  done
  [ -n "${ANCHOR_KEEP:-}" ] || rm -f "$f" # an 8B f16 file is 16 GB of the machine's 64 GB disk
  done
}

case "$MODE" in
  quant) run_quant ;;
  longctx) run_longctx ;;
  all) run_longctx; run_quant ;;
  *) echo "usage: tests/gpu/anchor.sh [quant|longctx|all]" >&2; exit 2 ;;
esac

python3 - "$JL" >"$OUT/anchor.txt" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
tab = {}
for r in rows:
    tab.setdefault((r["file"], r["test"]), {})[r["engine"]] = r["tok_s"]
print(f'{"file":34} {"test":12} {"ours tok/s":>11} {"llama.cpp":>11} {"ratio":>7}')
for (f, t), v in tab.items():
    o, l = v.get("ours"), v.get("llama.cpp")
    ratio = f"{o / l:.2f}" if isinstance(o, (int, float)) and isinstance(l, (int, float)) and l else "-"
    fmt = lambda x: f"{x:11.1f}" if isinstance(x, (int, float)) else f'{"-":>11}'
    print(f"{f:34} {t:12} {fmt(o)} {fmt(l)} {ratio:>7}")
EOF
cat "$OUT/anchor.txt" >&2
