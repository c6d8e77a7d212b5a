#!/usr/bin/env python3
"""check_torch_load.py: does PyTorch read the state_dict.pt our converter writes?

Run where PyTorch is installed (the device machine), from the repository root, after a build:
    python3 tests/gpu/check_torch_load.py [--cli build/llama-triton]

For each source -- the two oracle Hugging Face checkpoints (hf/ and hf-bin/) and
stories260K.gguf -- and each --dtype (source, f32, f16, bf16), it runs
`llama-triton convert`, then torch.load(state_dict.pt, weights_only=True) and compares every
tensor with the source weights read independently of our code:
  - Hugging Face: torch.load of the fixture's pytorch_model*.bin (written by torch itself);
    q_proj/k_proj are compared after the rotate-half -> adjacent-pair permutation the
    converter documents (per head: new row 2i = old row i, new row 2i+1 = old row i + d/2);
  - GGUF: the F32 tensors parsed from the file with the struct module below (GGUF spec).
Exits non-zero on the first mismatch; prints one line per checked conversion.
"""
import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(ROOT, "tests", "fixtures")

HF_TO_NATIVE = {
    "model.embed_tokens.weight": "tok_embeddings.weight",
    "model.norm.weight": "norm.weight",
    "lm_head.weight": "output.weight",
}
LAYER_HF_TO_NATIVE = {
    "input_layernorm": "attention_norm", "self_attn.q_proj": "attention.wq",
    "self_attn.k_proj": "attention.wk", "self_attn.v_proj": "attention.wv",
    "self_attn.o_proj": "attention.wo", "post_attention_layernorm": "ffn_norm",
    "mlp.gate_proj": "feed_forward.w1", "mlp.up_proj": "feed_forward.w3",
    "mlp.down_proj": "feed_forward.w2",
}
GGUF_TO_NATIVE = {
    "token_embd.weight": "tok_embeddings.weight", "output_norm.weight": "norm.weight",
    "output.weight": "output.weight",
}
LAYER_GGUF_TO_NATIVE = {
    "attn_norm": "attention_norm", "attn_q": "attention.wq", "attn_k": "attention.wk",
    "attn_v": "attention.wv", "attn_output": "attention.wo", "ffn_norm": "ffn_norm",
    "ffn_gate": "feed_forward.w1", "ffn_up": "feed_forward.w3", "ffn_down": "feed_forward.w2",
}
DTYPES = {None: None, "f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}


def hf_native_name(name):
    if name in HF_TO_NATIVE:
        return HF_TO_NATIVE[name]
    parts = name.split(".")  # model.layers.N.<field...>.weight
    return "layers.%s.%s.weight" % (parts[2], LAYER_HF_TO_NATIVE[".".join(parts[3:-1])])


def rotate_half_to_pairs(w, n_heads):
    d = w.shape[0] // n_heads
    w = w.reshape(n_heads, 2, d // 2, -1)  # [head, half, i, in]
    return w.permute(0, 2, 1, 3).reshape(n_heads * d, -1)  # rows (i, half) -> 2i + half


def hf_reference(folder):
    cfg = json.load(open(os.path.join(folder, "config.json")))
    ref = {}
    for f in sorted(os.listdir(folder)):
        if f.endswith(".bin"):
            ref.update(torch.load(os.path.join(folder, f), weights_only=True, map_location="cpu"))
    out = {}
    for k, v in ref.items():
        if k.endswith("q_proj.weight"):
            v = rotate_half_to_pairs(v, cfg["num_attention_heads"])
        elif k.endswith("k_proj.weight"):
            v = rotate_half_to_pairs(v, cfg.get("num_key_value_heads", cfg["num_attention_heads"]))
        out[hf_native_name(k)] = v
    return out


def gguf_reference(path):
    """F32 tensors of a GGUF v2/v3 file (enough for stories260K)."""
    b = open(path, "rb").read()
    assert b[:4] == b"GGUF"
    pos = 8
    n_t, n_kv = struct.unpack_from("<QQ", b, pos)
    pos += 16
    sizes = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}

    def string(p):
        n, = struct.unpack_from("<Q", b, p)
        return b[p + 8:p + 8 + n].decode(), p + 8 + n

    def skip_value(t, p):
        if t == 8:
            return string(p)[1]
        if t == 9:
            at, n = struct.unpack_from("<IQ", b, p)
            p += 12
            for _ in range(n):
                p = skip_value(at, p)
            return p
        return p + sizes[t]

    align = 32
    for _ in range(n_kv):
        key, pos = string(pos)
        t, = struct.unpack_from("<I", b, pos)
        if key == "general.alignment":
            align, = struct.unpack_from("<I", b, pos + 4)
        pos = skip_value(t, pos + 4)
    infos = []
    for _ in range(n_t):
        name, pos = string(pos)
        nd, = struct.unpack_from("<I", b, pos)
        dims = struct.unpack_from("<%dQ" % nd, b, pos + 4)
        typ, off = struct.unpack_from("<IQ", b, pos + 4 + 8 * nd)
        pos += 4 + 8 * nd + 12
        infos.append((name, dims, typ, off))
    base = (pos + align - 1) // align * align
    out = {}
    for name, dims, typ, off in infos:
        assert typ == 0, "only F32 GGUF tensors are compared here"
        n = 1
        for d in dims:
            n *= d
        t = torch.frombuffer(bytearray(b[base + off:base + off + 4 * n]), dtype=torch.float32)
        t = t.reshape(tuple(reversed(dims)))
        if name in GGUF_TO_NATIVE:
            out[GGUF_TO_NATIVE[name]] = t
        else:
            _, layer, field, _ = name.split(".")
            out["layers.%s.%s.weight" % (layer, LAYER_GGUF_TO_NATIVE[field])] = t
    return out


def check(cli, src, fmt, dtype, reference, tmp):
    dst = tempfile.mkdtemp(dir=tmp)
    cmd = [cli, "convert", "--from", fmt, src, dst] + (["--dtype", dtype] if dtype else [])
    subprocess.run(cmd, check=True)
    sd = torch.load(os.path.join(dst, "state_dict.pt"), weights_only=True, map_location="cpu")
    assert set(sd) == set(reference), "tensor names differ: %s" % (set(sd) ^ set(reference))
    worst = 0.0
    for k, ref in reference.items():
        got = sd[k]
        want_dtype = DTYPES[dtype] or ref.dtype
        assert got.dtype == want_dtype, "%s: dtype %s, want %s" % (k, got.dtype, want_dtype)
        assert got.shape == ref.shape, "%s: shape %s, want %s" % (k, tuple(got.shape), tuple(ref.shape))
        expect = ref.to(want_dtype)  # torch's own rounding
        assert torch.equal(got, expect), "%s differs (max %g)" % (k, (got.float() - expect.float()).abs().max())
        worst = max(worst, float((got.double() - ref.double()).abs().max()))
    label = " ".join([fmt, os.path.relpath(src, ROOT)] + (["--dtype", dtype] if dtype else []))
    print("ok  %-62s %3d tensors, max |diff| vs source %.3g" % (label, len(sd), worst))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cli", default=os.path.join(ROOT, "build", "llama-triton"))
    args = ap.parse_args()
    print("torch", torch.__version__)
    with tempfile.TemporaryDirectory() as tmp:
        for model in ("tiny-llama2", "tiny-llama3"):
            ref = hf_reference(os.path.join(FIX, "oracle", model, "hf-bin"))
            for sub in ("hf", "hf-bin"):
                for dtype in (None, "f32", "f16", "bf16"):
                    check(args.cli, os.path.join(FIX, "oracle", model, sub), "hf", dtype, ref, tmp)
        gg = os.path.join(FIX, "models", "stories260K", "stories260K.gguf")
        ref = gguf_reference(gg)
        for dtype in (None, "f16", "bf16"):
            check(args.cli, gg, "gguf", dtype, ref, tmp)
    print("all state_dict.pt files load with torch.load(weights_only=True) and match their sources")


if __name__ == "__main__":
    sys.exit(main())
