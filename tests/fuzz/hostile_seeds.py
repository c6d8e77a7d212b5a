#!/usr/bin/env python3
"""Writes the small hostile seed files of issue 15's review into tests/fuzz/corpus/<target>/
(hostile-*). Run once from the repository root; the outputs are committed. Each file is a
case the parsers once accepted silently or answered unclearly; the fuzzers start from them."""
import json
import os
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def put(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "hostile-" + name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def byte_vocab():
    # GPT-2 byte-to-unicode table: printable bytes map to themselves, the rest to U+0100...
    keep = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    chars, n = {}, 0
    for b in range(256):
        if b in keep:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + n)
            n += 1
    return {chars[b]: b for b in range(256)}


def tok_json(model_json, text="x"):
    m = json.dumps(model_json).encode()
    return bytes([2]) + struct.pack("<I", len(m))[:3] + m + text.encode()


def bpe(vocab, merges, pre=None):
    return {"version": "1.0", "added_tokens": [], "normalizer": None,
            "pre_tokenizer": pre or {"type": "ByteLevel", "add_prefix_space": False, "use_regex": False},
            "decoder": {"type": "ByteLevel"},
            "model": {"type": "BPE", "vocab": vocab, "merges": merges}}


def main():
    # JSON: NUL in a key, a string where a list belongs, deep nesting
    put("json", "nul-key.json", '{"hidden_size": 64, "hidden_size\\u0000x": 32, "n_layers": 2}')
    put("json", "devices-string.json", '{"n_layers": 2, "hidden_size": 64, "n_heads": 4, "devices": "cpu"}')
    put("json", "deep.json", "[" * 300 + "]" * 300)
    put("json", "tie-no.json", '{"tie_word_embeddings": "no", "hidden_size": 64}')
    # tokenizer.json: a sparse huge id, duplicate merges, a Sequence nested 50 deep
    v = byte_vocab()
    sparse = dict(v, **{"ab": 67108863})
    put("tokenizer", "sparse-id", tok_json(bpe(sparse, [])))
    dup = dict(v, **{"ab": 256})
    put("tokenizer", "dup-merges", tok_json(bpe(dup, ["a b"] * 64)))
    pre = {"type": "ByteLevel", "add_prefix_space": False, "use_regex": False}
    for _ in range(50):
        pre = {"type": "Sequence", "pretokenizers": [pre]}
    put("tokenizer", "nested-sequence", tok_json(bpe(v, [], pre)))
    # safetensors: a numeric dtype, an offset near 2^64
    def st(header):
        h = json.dumps(header).encode()
        return struct.pack("<Q", len(h)) + h + b"\0" * 16
    put("safetensors", "dtype-number.safetensors", st({"w": {"dtype": 5, "shape": [2], "data_offsets": [0, 8]}}))
    put("safetensors", "offset-2p64.safetensors",
        st({"w": {"dtype": "F32", "shape": [2], "data_offsets": [2**64 - 16, 2**64 - 8]}}))
    # pickle: globals that would run code
    put("pickle", "os-system.pkl", b"\x80\x02cos\nsystem\nq\x00X\x04\x00\x00\x00trueq\x01\x85q\x02Rq\x03.")
    put("pickle", "builtins-eval.pkl", b"\x80\x02c__builtin__\neval\nX\x04\x00\x00\x001+1\x85R.")
    put("pickle", "subprocess.pkl", b"\x80\x04csubprocess\nrun\n]X\x04\x00\x00\x00true\x85R.")
    # GGUF: bos_token_id outside the vocabulary (patched copy of the vocab-only seed)
    g = bytearray(open(os.path.join(ROOT, "gguf", "vocab-only.gguf"), "rb").read())
    key = b"tokenizer.ggml.bos_token_id"
    i = g.find(key)
    if i >= 0 and struct.unpack_from("<I", g, i + len(key))[0] == 4:  # type u32
        struct.pack_into("<I", g, i + len(key) + 4, 1000000)
        put("gguf", "bos-outside-vocab.gguf", bytes(g))


if __name__ == "__main__":
    main()
