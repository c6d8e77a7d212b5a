#!/usr/bin/env bash
# cpu_decode.sh: CPU decode speed beside llama2.c's run.c on the same random weights, in the
# same run, plus the machine's copy bandwidth and the decode product's weight-streaming rate.
#
#   bench/cpu_decode.sh [THREADS...]        (default: 1 and all cores)
#
# Needs ../shared/anchors (llama2c/run.c, cpu_models.py, the llama.cpp tarball for gguf-py)
# and ../shared/fixtures/tokenizers/llamacpp/ggml-vocab-llama-spm.gguf. Models and run.c are
# built once into $WORK (default /tmp/llt-cpu-decode). For each model and thread count the two
# programs run alternately REPS times (A B A B ...: a drift of the machine's speed hits both),
# each generating 256 tokens greedily from "Once upon a time"; printed: the median tokens/s of
# each, the median of the per-pair ratios, and min..max. Our bf16 row reads the same f32 file
# with --dtype bf16 (weights converted on load, half the bytes). Before each run of ours the
# copy bandwidth is measured again, and each row ends with ours' weight stream (GB/s) and its
# fraction of that copy figure (issue 14's "% of the copy bandwidth", robust to a host whose
# memory bandwidth drifts between the first measurement and the last row).
# Runs on the CPU (--device cpu) also where a GPU is present.
# Env: REPS (default 5), MODELS (default "stories15M stories110M"), BUILD (default build),
#      WORK, SHARED (default ../shared), PYTHON (one with numpy; default /usr/bin/python3).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
SHARED=${SHARED:-../shared}
WORK=${WORK:-/tmp/llt-cpu-decode}
REPS=${REPS:-5}
MODELS=${MODELS:-stories15M stories110M}
THREADS=("$@")
[ ${#THREADS[@]} -gt 0 ] || THREADS=(1 "$(nproc)")
CLI=$BUILD/llama-triton
[ -x "$CLI" ] || { echo "cpu_decode.sh: $CLI not built" >&2; exit 1; }
A=$SHARED/anchors
mkdir -p "$WORK"

if [ ! -x "$WORK/run" ]; then
    cp "$A/llama2c/run.c" "$A/llama2c/tokenizer.bin" "$WORK/"
    gcc -Ofast -march=native -fopenmp "$WORK/run.c" -o "$WORK/run" -lm
fi
for m in $MODELS; do
    if [ ! -f "$WORK/$m.gguf" ]; then
        [ -d "$WORK/lcpp" ] || tar -xJf "$A"/llama.cpp-*.tar.xz -C "$WORK"
        "${PYTHON:-/usr/bin/python3}" "$A/cpu_models.py" "$WORK" "$WORK/lcpp/gguf-py" \
            "$SHARED/fixtures/tokenizers/llamacpp/ggml-vocab-llama-spm.gguf" "$m" >&2
    fi
done

CFLAGS="-std=c11 -O2 -D_GNU_SOURCE -Iinclude -Isrc"
LIBS="-lm -lpthread"
if pkg-config --exists libpcre2-8 2>/dev/null; then LIBS="$LIBS $(pkg-config --libs libpcre2-8)"; fi
if pkg-config --exists openblas 2>/dev/null; then # the prefill product beside OpenBLAS's sgemm
    CFLAGS="$CFLAGS -DLLT_BENCH_OPENBLAS $(pkg-config --cflags openblas)"; LIBS="$LIBS $(pkg-config --libs openblas)"
fi
cc $CFLAGS bench/bench_matmul.c "$BUILD/libllama_triton.a" -o "$WORK/bench_matmul" $LIBS

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
range() { sort -g | awk 'NR==1{lo=$1} {hi=$1} END {printf "%s..%s", lo, hi}'; }

echo "# $(date -u +%Y-%m-%dT%H:%MZ) commit $(git rev-parse --short HEAD), $(lscpu | sed -n 's/^Model name: *//p') ($(nproc) cores), load average $(cut -d' ' -f1-3 /proc/loadavg)"
for t in "${THREADS[@]}"; do
    echo "## $t threads: memory"
    "$WORK/bench_matmul" "$t" 256 7
done

ours() { # model threads dtype -> tokens/s
    local extra=()
    [ "$3" = f32 ] || extra=(--dtype "$3")
    "$CLI" "$WORK/$1.gguf" -p "Once upon a time" -n 252 --temperature 0 --device cpu --threads "$2" "${extra[@]}" 2>&1 >/dev/null |
        sed -n 's/^generation:.*(\([0-9.]*\) tokens\/s)/\1/p'
}
theirs() { # model threads -> tokens/s
    (cd "$WORK" && OMP_NUM_THREADS=$2 ./run "$1.bin" -t 0 -n 256 -i "Once upon a time" 2>&1 >/dev/null) |
        sed -n 's/^achieved tok\/s: \([0-9.]*\)/\1/p'
}

copy_now() { "$WORK/bench_matmul" "$1" 256 3 copy | awk '/^copy/ {print $3}'; }

# ours GB/s: weight bytes (the f32 file's size, half for bf16) x tok/s; "of copy": that over a
# copy figure measured just before the same run (median over the reps)
printf "%-12s %-5s %-7s %-11s %-13s %-7s %-15s %-9s %-8s %s\n" model dtype threads "ours tok/s" "llama2.c f32" \
    "ratio" "ratio min..max" "ours GB/s" "copy" "of copy"
for m in $MODELS; do
    fbytes=$(stat -c %s "$WORK/$m.gguf")
    for dt in f32 bf16; do
        wbytes=$fbytes
        [ "$dt" = f32 ] || wbytes=$((fbytes / 2))
        for t in "${THREADS[@]}"; do
            : >"$WORK/a"; : >"$WORK/b"; : >"$WORK/r"; : >"$WORK/g"; : >"$WORK/c"; : >"$WORK/p"
            for ((i = 0; i < REPS; i++)); do
                c=$(copy_now "$t"); x=$(ours "$m" "$t" "$dt"); y=$(theirs "$m" "$t")
                echo "$x" >>"$WORK/a"; echo "$y" >>"$WORK/b"; echo "$c" >>"$WORK/c"
                awk -v x="$x" -v y="$y" 'BEGIN {printf "%.3f\n", x / y}' >>"$WORK/r"
                awk -v x="$x" -v w="$wbytes" 'BEGIN {printf "%.2f\n", x * w / 1e9}' >>"$WORK/g"
                awk -v x="$x" -v w="$wbytes" -v c="$c" 'BEGIN {printf "%.1f\n", 100 * x * w / 1e9 / c}' >>"$WORK/p"
            done
            printf "%-12s %-5s %-7s %-11s %-13s %-7s %-15s %-9s %-8s %s\n" "$m" "$dt" "$t" "$(median <"$WORK/a")" \
                "$(median <"$WORK/b")" "$(median <"$WORK/r")" "$(range <"$WORK/r")" "$(median <"$WORK/g")" \
                "$(median <"$WORK/c")" "$(median <"$WORK/p") % ($(range <"$WORK/p"))"
        done
    done
done
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
