#!/usr/bin/env bash
# load_safetensors.sh: load time of a synthetic ~1 GB Hugging Face checkpoint (safetensors,
# bf16) from the page cache, in seconds and GB/s. See bench_load.c for what each line measures.
#
# The checkpoint is Llama-shaped (hidden 2048, intermediate 5632, 10 layers, 32 heads, 4 KV
# heads, vocab 32000, tied head: 1.01 GB of bf16) with random weights, written once to
# $LLT_BENCH_DIR (default /tmp/llt-bench-load) and read into the page cache before timing.
#
# usage: bench/load_safetensors.sh [REPS]     (needs build/ built: cmake --build build)
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=${1:-5}
BUILD=${LLT_BUILD:-build}
DIR=${LLT_BENCH_DIR:-/tmp/llt-bench-load}
[ -f "$BUILD/libllama_triton.a" ] || { echo "load_safetensors.sh: build $BUILD first" >&2; exit 1; }

if [ ! -f "$DIR/model.safetensors" ]; then
    mkdir -p "$DIR"
    python3 - "$DIR" <<'EOF'
import json, os, struct, sys
d = sys.argv[1]
H, I, L, NH, NKV, V = 2048, 5632, 10, 32, 4, 32000
hd = H // NH
shapes = {"model.embed_tokens.weight": [V, H], "model.norm.weight": [H]}
for l in range(L):
    p = "model.layers.%d." % l
    shapes.update({p + "input_layernorm.weight": [H], p + "post_attention_layernorm.weight": [H],
                   p + "self_attn.q_proj.weight": [NH * hd, H], p + "self_attn.k_proj.weight": [NKV * hd, H],
                   p + "self_attn.v_proj.weight": [NKV * hd, H], p + "self_attn.o_proj.weight": [H, NH * hd],
                   p + "mlp.gate_proj.weight": [I, H], p + "mlp.up_proj.weight": [I, H],
                   p + "mlp.down_proj.weight": [H, I]})
hdr, off = {"__metadata__": {"format": "pt"}}, 0
for k, s in shapes.items():
    n = 2
    for x in s: n *= x
    hdr[k] = {"dtype": "BF16", "shape": s, "data_offsets": [off, off + n]}
    off += n
h = json.dumps(hdr).encode()
h += b" " * (-len(h) % 8)
with open(os.path.join(d, "model.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h)
    chunk = bytes((i * 37 + 11) % 251 & 0x3f for i in range(1 << 20))  # finite bf16 values
    left = off
    while left:
        f.write(chunk[:min(left, len(chunk))]); left -= min(left, len(chunk))
cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": H,
       "intermediate_size": I, "num_hidden_layers": L, "num_attention_heads": NH,
       "num_key_value_heads": NKV, "vocab_size": V, "max_position_embeddings": 2048,
       "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": True,
       "torch_dtype": "bfloat16", "bos_token_id": 1, "eos_token_id": 2}
json.dump(cfg, open(os.path.join(d, "config.json"), "w"), indent=1)
EOF
fi
cat "$DIR/model.safetensors" > /dev/null   # into the page cache

CFLAGS="-std=c11 -O2 -D_GNU_SOURCE -Iinclude -Isrc"
LIBS="-lm -lpthread"
if pkg-config --exists libpcre2-8 2>/dev/null; then LIBS="$LIBS $(pkg-config --libs libpcre2-8)"; fi
cc $CFLAGS bench/bench_load.c "$BUILD/libllama_triton.a" -o "$DIR/bench_load" $LIBS
echo "# $(date -u +%Y-%m-%d) $(git rev-parse --short HEAD) $(lscpu | sed -n 's/^Model name: *//p') ($(nproc) cores)"
"$DIR/bench_load" "$DIR" "$REPS"
