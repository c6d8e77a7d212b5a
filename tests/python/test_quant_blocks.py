"""Every block decoder on its own: each tensor of the llama-quantize'd fixture files
(tests/fixtures/quant/qtiny-*.gguf) decoded by the C library (llt_dequantize) and by a
vectorised numpy decoder written here from the GGUF block layouts, independently of the C code
(different structure: whole-tensor array arithmetic, no per-element loops). The model-level
test (tests/c/test_quant_models.c) compares the logits these decoders produce with gguf-py's
float64 reference, so together they pin each type's decoder to llama.cpp's own dequantisation.
The GGUF file is read here with struct alone, not with the C parser."""

import ctypes as C
import struct

import pytest

from conftest import FIXTURES

QUANT = FIXTURES / "quant"
FILES = ["Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q4_K_M", "Q5_K_M", "Q6_K"]
# ggml type id -> (name, block elements, block bytes)
GGML = {0: ("f32", 1, 4), 1: ("f16", 1, 2), 2: ("q4_0", 32, 18), 3: ("q4_1", 32, 20),
        6: ("q5_0", 32, 22), 8: ("q8_0", 32, 34), 12: ("q4_k", 256, 144), 13: ("q5_k", 256, 176),
        14: ("q6_k", 256, 210)}


def read_gguf(path):
    """[(name, ggml type, n elements, bytes)] of a GGUF v3 file."""
    raw = path.read_bytes()
    pos = 4

    def take(fmt):
        nonlocal pos
        v = struct.unpack_from("<" + fmt, raw, pos)
        pos += struct.calcsize("<" + fmt)
        return v[0]

    def string():
        nonlocal pos
        n = take("Q")
        s = raw[pos:pos + n].decode()
        pos += n
        return s

    sizes = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}

    def value(t):
        if t == 8:
            return string()
        if t == 9:
            et, n = take("I"), take("Q")
            return [value(et) for _ in range(n)]
        return take(sizes[t])

    assert take("I") == 3
    n_tensors, n_kv = take("Q"), take("Q")
    align = 32
    for _ in range(n_kv):
        k = string()
        v = value(take("I"))
        if k == "general.alignment":
            align = v
    infos = []
    for _ in range(n_tensors):
        name = string()
        dims = [take("Q") for _ in range(take("I"))]
        typ, off = take("I"), take("Q")
        infos.append((name, dims, typ, off))
    data = (pos + align - 1) // align * align
    out = []
    for name, dims, typ, off in infos:
        n = 1
        for d in dims:
            n *= d
        _, be, bb = GGML[typ]
        out.append((name, typ, n, raw[data + off:data + off + n // be * bb]))
    return out


def f16(a):
    import numpy as np
    return np.ascontiguousarray(a).view(np.float16).astype(np.float64)[..., 0]


def k_scales(sc):
    """(scale, min) [blocks, 8] from the 12 packed bytes [blocks, 12] of Q4_K / Q5_K."""
    import numpy as np
    sc = sc.astype(np.int64)
    lo = np.concatenate([sc[:, 0:4] & 63, (sc[:, 8:12] & 15) | ((sc[:, 0:4] >> 6) << 4)], axis=1)
    mn = np.concatenate([sc[:, 4:8] & 63, (sc[:, 8:12] >> 4) | ((sc[:, 4:8] >> 6) << 4)], axis=1)
    return lo, mn


def nibbles32(qs):
    """[blocks, 16] bytes -> [blocks, 32] values: low nibbles are elements 0..15."""
    import numpy as np
    return np.concatenate([qs & 15, qs >> 4], axis=1).astype(np.int64)


def decode(typ, raw, n):
    import numpy as np
    name, be, bb = GGML[typ]
    if name == "f32":
        return np.frombuffer(raw, np.float32).astype(np.float64)
    if name == "f16":
        return np.frombuffer(raw, np.float16).astype(np.float64)
    b = np.frombuffer(raw, np.uint8).reshape(-1, bb)
    if name == "q8_0":
        return (f16(b[:, 0:2])[:, None] * b[:, 2:].view(np.int8)).reshape(-1)
    if name == "q4_0":
        return (f16(b[:, 0:2])[:, None] * (nibbles32(b[:, 2:]) - 8)).reshape(-1)
    if name == "q4_1":
        return (f16(b[:, 0:2])[:, None] * nibbles32(b[:, 4:]) + f16(b[:, 2:4])[:, None]).reshape(-1)
    if name == "q5_0":
        qh = np.ascontiguousarray(b[:, 2:6]).view(np.uint32).astype(np.int64)  # [blocks, 1]
        hi = (qh >> np.arange(32)) & 1
        return (f16(b[:, 0:2])[:, None] * ((nibbles32(b[:, 6:]) | (hi << 4)) - 16)).reshape(-1)
    if name in ("q4_k", "q5_k"):
        d, dmin = f16(b[:, 0:2]), f16(b[:, 2:4])
        sc, mn = k_scales(b[:, 4:16])
        qs = b[:, 16:144] if name == "q4_k" else b[:, 48:176]
        q = np.stack([qs.reshape(-1, 4, 32) & 15, qs.reshape(-1, 4, 32) >> 4], axis=2)
        q = q.reshape(-1, 8, 32).astype(np.int64)  # sub-block 2g: low nibbles of group g
        if name == "q5_k":
            qh = b[:, 16:48].astype(np.int64)  # [blocks, 32]
            q = q | (((qh[:, None, :] >> np.arange(8)[None, :, None]) & 1) << 4)
        x = d[:, None, None] * sc[:, :, None] * q - dmin[:, None, None] * mn[:, :, None]
        return x.reshape(-1)
    if name == "q6_k":
        ql, qh = b[:, 0:128].astype(np.int64), b[:, 128:192].astype(np.int64)
        scales, d = b[:, 192:208].view(np.int8).astype(np.int64), f16(b[:, 208:210])
        out = np.empty((b.shape[0], 2, 4, 32))
        for h in range(2):
            for k in range(4):
                lo = (ql[:, 64 * h + 32 * (k % 2):64 * h + 32 * (k % 2) + 32] >> (4 * (k // 2))) & 15
                hi = (qh[:, 32 * h:32 * h + 32] >> (2 * k)) & 3
                sc = np.repeat(scales[:, 8 * h + 2 * k:8 * h + 2 * k + 2], 16, axis=1)
                out[:, h, k, :] = d[:, None] * sc * ((lo | (hi << 4)) - 32)
        return out.reshape(-1)
    raise AssertionError(name)


def c_dequantize(name, raw, n):
    import numpy as np
    from llama_triton import _dtype, _lib
    dll = _lib.lib()._dll
    f = dll.llt_dequantize
    f.restype = C.c_int
    f.argtypes = [C.c_int, C.c_void_p, C.c_void_p, C.c_int64, C.c_void_p]
    out = np.zeros(n, np.float32)
    src = C.create_string_buffer(bytes(raw), len(raw))
    assert f(_dtype.code(name), src, out.ctypes.data, n, None) == 0
    return out.astype(np.float64)


@pytest.mark.parametrize("ftype", FILES)
def test_every_block_decodes_as_numpy_does(ftype, np):
    seen = set()
    for name, typ, n, raw in read_gguf(QUANT / ("qtiny-%s.gguf" % ftype)):
        tname = GGML[typ][0]
        want = decode(typ, raw, n)
        got = c_dequantize(tname, raw, n)
        # float32 output of f16 * small integer products: exact to float32 rounding
        assert np.allclose(got, want, rtol=1e-6, atol=1e-7 * np.abs(want).max()), (ftype, name, tname)
        seen.add(tname)
    assert seen - {"f32", "f16"}, "no quantised tensor in %s" % ftype


def test_all_seven_types_are_covered(np):
    seen = set()
    for ftype in FILES:
        seen |= {GGML[t][0] for _, t, _, _ in read_gguf(QUANT / ("qtiny-%s.gguf" % ftype))}
    assert {"q8_0", "q4_0", "q4_1", "q5_0", "q4_k", "q5_k", "q6_k"} <= seen


@pytest.mark.parametrize("ftype", ["Q4_K_M", "Q8_0", "Q5_0"])
def test_python_reports_the_weights_type_and_matches_the_reference(ftype, np):
    """LlamaConfig.dtype is the type of the file's layer weights; logits through the Python
    binding agree with gguf-py's float64 reference (1e-4 of the largest logit)."""
    from conftest import read_safetensors
    from llama_triton import LlamaTritonModel
    infos = {name: GGML[t][0] for name, t, _, _ in read_gguf(QUANT / ("qtiny-%s.gguf" % ftype))}
    ref, _ = read_safetensors(QUANT / ("qtiny-%s.reference.safetensors" % ftype))
    m = LlamaTritonModel(str(QUANT / ("qtiny-%s.gguf" % ftype)))
    try:
        assert m.config.dtype == infos["blk.0.attn_q.weight"]
        got = np.asarray(m.forward([int(i) for i in ref["input_ids"]]))
        err = np.abs(got - ref["logits"]).max() / np.abs(ref["logits"]).max()
        assert err <= 1e-4, err
    finally:
        m.close()
