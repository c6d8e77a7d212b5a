"""The specification's kernels (triton_gemm, page_attention, rmsnorm, build_rotary_cache,
apply_rotary) on numpy arrays or torch tensors, computed by the C library's CPU kernels
(float32). Shapes are checked here because the C kernels trust their callers.

torch tensors in give torch tensors out, on the first tensor argument's device, in the
computed dtype. On the GPU (_cuda.py): triton_gemm and rmsnorm of float16 / bfloat16 CUDA
tensors run the CUDA backend's kernels (gemm: float32 result; rmsnorm: x's dtype), and
page_attention over a GPU PageKVCache's pages runs its decode kernel. Other CUDA tensors
(float32 ones, rotary) are copied to the host for the CPU kernels and the result copied back."""

import ctypes as C

from . import _arrays, _torch
from . import _structs as S
from ._lib import lib
from .errors import InvalidArgumentError, UnsupportedError


def _host(x, name):
    """A torch tensor as a host float32 array; anything else as it is."""
    return _torch.floats(x, name) if _torch.is_tensor(x) else x


def _gpu(*tensors):
    """True when the arguments are CUDA tensors a GPU kernel of ours takes as they are."""
    if not all(_torch.is_tensor(x) and x.is_cuda for x in tensors):
        return False
    from . import _cuda
    return _cuda.runs_on_gpu(*tensors)


def _like(y, x):
    """y (a numpy result) as a torch tensor on x's device when x is a tensor."""
    return _torch.from_host(y, _torch.device_of(x)) if _torch.is_tensor(x) else y


def _np():
    if _arrays.np is None:
        raise UnsupportedError("llama_triton.kernels works on numpy arrays; numpy is not installed", 4)
    return _arrays.np


def _f32(x, name):
    np = _np()
    a = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
    if a.size == 0:
        raise InvalidArgumentError("%s: empty array" % name)
    return a


def _ptr(a):
    return a.ctypes.data_as(C.POINTER(C.c_float))


def gemm(a, b):
    """a @ b for a [m, k] (or [..., k]) and b [k, n] -> [m, n] (or [..., n]), float32.

    The C kernel computes a @ w^T with w stored [n, k] (weights are [out, in]), so b is
    passed transposed."""
    if _gpu(a, b):
        from . import _cuda
        return _cuda.gemm(a, b)
    np = _np()
    like = a
    a = _f32(_host(a, "a"), "a")
    b = _f32(_host(b, "b"), "b")
    if b.ndim != 2 or a.shape[-1] != b.shape[0]:
        raise InvalidArgumentError("gemm: shapes %s and %s do not multiply" % (a.shape, b.shape))
    k, n = b.shape
    m = a.size // k
    bt = np.ascontiguousarray(b.T)  # [n, k]
    c = np.zeros((m, n), dtype=np.float32)
    lib().fn("llt_gemm_f32")(_ptr(a), _ptr(bt), _ptr(c), m, n, k)
    return _like(c.reshape(a.shape[:-1] + (n,)), like)


triton_gemm = gemm  # the specification's name


def rmsnorm(x, w, eps=1e-5):
    """x / sqrt(mean(x^2) + eps) * w over the last dimension; x [..., d], w [d]."""
    if _gpu(x, w):
        from . import _cuda
        if not eps >= 0:
            raise InvalidArgumentError("rmsnorm: eps must be >= 0, got %r" % eps)
        return _cuda.rmsnorm(x, w, eps)
    np = _np()
    like = x
    x = _f32(_host(x, "x"), "x")
    w = _f32(_host(w, "w"), "w")
    d = x.shape[-1]
    if w.shape != (d,):
        raise InvalidArgumentError("rmsnorm: w has shape %s, expected (%d,)" % (w.shape, d))
    if not eps >= 0:
        raise InvalidArgumentError("rmsnorm: eps must be >= 0, got %r" % eps)
    y = np.empty_like(x)
    lib().fn("llt_rmsnorm_f32")(_ptr(x), _ptr(w), _ptr(y), x.size // d, d, float(eps))
    return _like(y, like)


def build_rotary_cache(base, dim, max_pos, dtype=None):
    """(sin, cos) caches [max_pos, dim // 2]: angle(p, i) = p * base^(-2i / dim).

    dtype: a torch dtype (torch tensors on the CPU), or a numpy dtype / name (numpy arrays);
    default float32 numpy. Computed in float32, then cast."""
    np = _np()
    dt = _torch.dtype_name(dtype)
    for name, v in (("dim", dim), ("max_pos", max_pos)):
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0 or v >= 2**31:
            raise InvalidArgumentError("build_rotary_cache: %s must be a positive int, got %r" % (name, v))
    half = dim // 2
    sin = np.zeros((max_pos, half), dtype=np.float32)
    cos = np.zeros((max_pos, half), dtype=np.float32)
    lib().call("llt_rotary_build", float(base), dim, max_pos, _ptr(sin), _ptr(cos))
    if dt is not dtype:  # a torch dtype
        t = _torch.loaded()
        return (t.from_numpy(sin).to(dtype), t.from_numpy(cos).to(dtype))
    if dtype is not None:
        dt = np.dtype(getattr(dtype, "name", dtype) if not isinstance(dtype, type) else dtype)
        sin, cos = sin.astype(dt), cos.astype(dt)
    return sin, cos


def apply_rotary(t, sin, cos, pos):
    """Rotates adjacent pairs (2i, 2i+1) of t by the angles of position pos; returns a new
    float32 array. t: [head_dim], [n_heads, head_dim], or [T, n_heads, head_dim] where token
    j is at position pos + j. sin, cos: [max_pos, head_dim // 2] from build_rotary_cache."""
    np = _np()
    like = t
    out = np.array(_host(t, "t"), dtype=np.float32, copy=True, order="C")
    if out.ndim not in (1, 2, 3) or out.size == 0:
        raise InvalidArgumentError("apply_rotary: t must be 1-, 2- or 3-D, got shape %s" % (out.shape,))
    sin = _f32(_host(sin, "sin"), "sin")
    cos = _f32(_host(cos, "cos"), "cos")
    hd = out.shape[-1]
    if hd % 2 or sin.ndim != 2 or sin.shape != cos.shape or sin.shape[1] * 2 != hd:
        raise InvalidArgumentError("apply_rotary: t's head_dim %d needs sin/cos [max_pos, %d], got %s / %s"
                                   % (hd, hd // 2, sin.shape, cos.shape))
    tokens = out.reshape((-1,) + out.shape[-2:]) if out.ndim == 3 else out.reshape(1, -1, hd)
    if isinstance(pos, bool) or not isinstance(pos, int) or pos < 0 or pos + len(tokens) > sin.shape[0]:
        raise InvalidArgumentError("apply_rotary: positions %r..%r outside the cache's %d"
                                   % (pos, pos + len(tokens) - 1 if isinstance(pos, int) else pos,
                                      sin.shape[0]))
    fn = lib().fn("llt_rotary_apply")
    for j, tok in enumerate(tokens):
        fn(_ptr(tok), tok.shape[0], hd, _ptr(sin), _ptr(cos), pos + j)
    return _like(out, like)


def page_attention(q, kv_pages, scale=None):
    """Decode attention of one query over a sequence's KV pages.

    q: [n_heads, head_dim]. kv_pages: what PageKVCache.get_kv_pages returned (the KVPages, or
    its (K, V) torch tensors unpacked and packed again), or (k_pool, v_pool, block_table,
    seq_len) with pools [n_pages, page_size, n_kv_heads, head_dim], or (k, v) with k, v
    [seq_len, n_kv_heads, head_dim] (one page). Returns [n_heads, head_dim]: float32 on the
    CPU; on the GPU (pages of a GPU cache) in the pages' dtype. scale: default
    1/sqrt(head_dim)."""
    np = _np()
    from .kv_cache import cuda_page_attention
    out = cuda_page_attention(q, kv_pages, scale)
    if out is not None:  # a GPU cache's pages: computed on the GPU
        return out
    like = q
    q = _f32(_host(q, "q"), "q")
    kp, keep = _kv_struct(np, kv_pages)
    if q.ndim != 2 or q.shape[1] != kp.head_dim or q.shape[0] % kp.n_kv_heads:
        raise InvalidArgumentError("page_attention: q has shape %s; expected [n_heads, %d] with "
                                   "n_heads a multiple of %d" % (q.shape, kp.head_dim, kp.n_kv_heads))
    out = np.zeros_like(q)
    lib().call("llt_page_attention_f32", _ptr(q), q.shape[0], C.byref(kp),
               0.0 if scale is None else float(scale), _ptr(out))
    del keep
    return _like(out, like)


def _kv_struct(np, kv_pages):
    """An llt_kv_pages over numpy arrays, checked; returns (struct, arrays to keep alive)."""
    from .kv_cache import pages_meta
    dtype_name = getattr(kv_pages, "dtype", None)
    parts = tuple(kv_pages)
    meta = pages_meta(kv_pages)
    if meta is not None:
        k, v, table, seq_len = meta
    elif len(parts) == 2:
        k, v = (_pool_host(np, x)[None] for x in parts)
        table, seq_len = [0], len(parts[0])
    elif len(parts) == 4:
        k, v, table, seq_len = parts
    else:
        raise InvalidArgumentError("page_attention: kv_pages must be KVPages, (k, v) or "
                                   "(k_pool, v_pool, block_table, seq_len)")
    k, v, code = _pool_arrays(np, k, v, dtype_name)
    n_pages, page_size, n_kv, hd = k.shape
    table = np.ascontiguousarray(np.asarray(table, dtype=np.int32).reshape(-1))
    seq_len = int(seq_len)
    if table.size and (table.min() < 0 or table.max() >= n_pages):
        raise InvalidArgumentError("page_attention: block table entries must be in [0, %d)" % n_pages)
    if not 0 < seq_len <= table.size * page_size:
        raise InvalidArgumentError("page_attention: seq_len %d needs 1..%d tokens of %d blocks"
                                   % (seq_len, table.size * page_size, table.size))
    kp = S.KVPages(k.ctypes.data, v.ctypes.data, table.ctypes.data_as(C.POINTER(C.c_int32)),
                   table.size, seq_len, page_size, n_kv, hd, code)
    return kp, (k, v, table)


def _pool_arrays(np, k, v, dtype_name):
    k, v = _pool_host(np, k), _pool_host(np, v)
    if k.ndim != 4 or k.shape != v.shape or 0 in k.shape:
        raise InvalidArgumentError("page_attention: K/V pools must both be [n_pages, page_size, "
                                   "n_kv_heads, head_dim], got %s / %s" % (k.shape, v.shape))
    if dtype_name == "bf16" or k.dtype == np.uint16:
        code, want = S.DTYPE_BF16, np.uint16
    elif k.dtype == np.float16:
        code, want = S.DTYPE_F16, np.float16
    else:
        code, want = S.DTYPE_F32, np.float32
    return np.ascontiguousarray(k, want), np.ascontiguousarray(v, want), code


def _pool_host(np, x):
    """A pool as a host numpy array in its own dtype (a bf16 tensor as its uint16 bits)."""
    if not _torch.is_tensor(x):
        return np.asarray(x)
    t = _torch.loaded()
    if x.dtype == t.bfloat16:
        return x.detach().view(t.int16).cpu().numpy().view(np.uint16)
    return x.detach().cpu().numpy()
