#!/usr/bin/env bash
# batch_cpu.sh: CPU decode throughput of continuous batching (tokens/s summed over all
# sequences) at 1, 4 and 16 parallel sequences, through the CLI:
#     llama-triton MODEL --prompts-file F --parallel N -n TOKENS --temperature 0
# Each run has N prompts, all joining at the first step, so after the prefill step every step
# is N decode rows. Reports the median over REPS runs of the decode-phase rate that the CLI
# prints on stderr ("decode ... = X tokens/s"), and the wall-clock rate.
#
# Then, for synthetic shapes with random weights (SHAPES, default "tiny"; e.g.
# SHAPES="tiny tinyllama-1.1b"), the decode rate of `llama-triton bench --shape S -b N`
# (N sequences forked from one prompt of PROMPT tokens, one decode step for all per token).
#
# usage: bench/batch_cpu.sh [MODEL] [TOKENS] [REPS] [THREADS]
#   defaults: models/stories260K.gguf, 128, 5, all cores; LLT_CLI overrides the binary;
#   SHAPES, PROMPT (default 128) and SHAPE_TOKENS (default 64) set the synthetic part.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-models/stories260K.gguf}
TOKENS=${2:-128}
REPS=${3:-5}
THREADS=${4:-0}
CLI=${LLT_CLI:-build/llama-triton}
[ -x "$CLI" ] || { echo "batch_cpu.sh: $CLI not built (cmake --build build)" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
starts=("Once upon a time" "The little dog" "Lily and Ben were" "One day, a bird"
        "Tom had a big red ball" "The sun was" "Mom said" "There was a cat")

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

printf "%-9s %-8s %-14s %-14s\n" parallel tokens "decode tok/s" "wall tok/s"
for par in 1 4 16; do
    : >"$tmp/prompts.txt"
    for ((i = 0; i < par; i++)); do echo "${starts[i % 8]}" >>"$tmp/prompts.txt"; done
    : >"$tmp/dec" ; : >"$tmp/wall"
    for ((r = 0; r < REPS; r++)); do
        "$CLI" "$MODEL" --prompts-file "$tmp/prompts.txt" --parallel "$par" -n "$TOKENS" \
            --temperature 0 --threads "$THREADS" >/dev/null 2>"$tmp/err" ||
            { cat "$tmp/err" >&2; exit 1; }
        line=$(grep '^batch:' "$tmp/err")
        echo "$line" | sed -E 's/.*decode [0-9.]+ s = ([0-9.]+) tokens\/s.*/\1/' >>"$tmp/dec"
        echo "$line" | sed -E 's/.*wall [0-9.]+ s = ([0-9.]+) tokens\/s.*/\1/' >>"$tmp/wall"
        gen=$(echo "$line" | sed -E 's/.* ([0-9]+) generated.*/\1/')
    done
    printf "%-9s %-8s %-14s %-14s\n" "$par" "$gen" "$(median <"$tmp/dec")" "$(median <"$tmp/wall")"
done

for shape in ${SHAPES-tiny}; do
    printf "\nshape %s (random f16 weights, prompt %s, %s tokens, bench -b N)\n" "$shape" \
        "${PROMPT:-128}" "${SHAPE_TOKENS:-64}"
    printf "%-9s %-14s\n" parallel "decode tok/s"
    for par in 1 4 16; do
        out=$("$CLI" bench --shape "$shape" -p "${PROMPT:-128}" -n "${SHAPE_TOKENS:-64}" -b "$par" \
            --reps "$REPS" --threads "$THREADS" --json 2>/dev/null)
        tg=$(echo "$out" | sed -E 's/.*"tg_tok_s": \{"median": ([0-9.]+).*/\1/')
        printf "%-9s %-14s\n" "$par" "$tg"
    done
done
