"""The GPU side of the torch interface: PageKVCache pools in torch memory (on a GPU for
device='cuda'), and the kernels the CUDA backend exports run on CUDA tensors in place
(page_attention over a GPU cache's pages; triton_gemm and rmsnorm on float16 / bfloat16
tensors), so data that lives on the GPU stays there. Our kernels run on their own stream:
torch's stream is synchronised before each call, ours after it.

The C cache keeps its bookkeeping (free list, block tables, reference counts, copy-on-write)
and calls these storage hooks for the pools: each pool is one torch uint8 tensor, so that
get_kv_pages hands out the pool itself as a typed view, without a copy, and the memory lives
as long as the cache or any view of it."""

import ctypes as C

from . import _structs as S
from . import _torch
from ._lib import lib
from .errors import InvalidArgumentError

_DEVICE_ERROR = 8  # LLT_ERR_DEVICE


def _fail(err, e):
    """Reports a Python exception through the hook's llt_error."""
    if err:
        err.contents.status = _DEVICE_ERROR
        err.contents.msg = ("kv pools: %s" % e).encode("utf-8", "replace")[:S.ERR_MSG_MAX - 1]
    return _DEVICE_ERROR


class TorchPools:
    """llt_kv_storage hooks over torch tensors on `device`."""

    def __init__(self, device):
        self.torch = _torch.require("PageKVCache on device %r" % device)
        self.device = device
        self.pools = {}  # data_ptr -> uint8 tensor [bytes]
        self.struct = S.KVStorage(S.KV_ALLOC_FN(self._alloc), S.KV_RELEASE_FN(self._release),
                                  S.KV_COPY_PAGE_FN(self._copy_page), S.KV_UPLOAD_FN(self._upload),
                                  None)

    def _alloc(self, layer, nbytes, user):
        try:
            t = self.torch.zeros(max(1, nbytes), dtype=self.torch.uint8, device=self.device)
        except BaseException:  # noqa: B902  out of memory: NULL, the C side reports it
            return 0
        self.pools[t.data_ptr()] = t
        return t.data_ptr()

    def _release(self, pool, user):
        self.pools.pop(pool, None)

    def _copy_page(self, pool, dst, src, page_bytes, user, err):
        try:
            t = self.pools[pool]
            t[dst * page_bytes:(dst + 1) * page_bytes].copy_(t[src * page_bytes:(src + 1) * page_bytes])
            return 0
        except BaseException as e:  # noqa: B902  never let an exception cross into C
            return _fail(err, e)

    def _upload(self, pool, offset, src, nbytes, user, err):
        try:
            host = self.torch.frombuffer((C.c_char * nbytes).from_address(src), dtype=self.torch.uint8)
            self.pools[pool][offset:offset + nbytes].copy_(host)  # synchronous: src is then free
            return 0
        except BaseException as e:  # noqa: B902
            return _fail(err, e)

    def writer(self, k, v, dtype_name):
        """An llt_kv_write_fn that copies token i's rows of k, v ([n, n_kv_heads, head_dim]
        tensors on the pools' device) into the pools, converted there to the pools' dtype:
        no trip through the host."""
        t = self.torch
        kk = k.detach().to(self.device, _torch.torch_dtype(dtype_name)).reshape(k.shape[0], -1).contiguous()
        vv = v.detach().to(self.device, _torch.torch_dtype(dtype_name)).reshape(v.shape[0], -1).contiguous()
        kb, vb = kk.view(t.uint8), vv.view(t.uint8)
        eb = kk.element_size()

        def write(k_pool, v_pool, off, i, user, err):
            try:
                n = kb.shape[1]
                self.pools[k_pool][off * eb:off * eb + n].copy_(kb[i])
                self.pools[v_pool][off * eb:off * eb + n].copy_(vb[i])
                return 0
            except BaseException as e:  # noqa: B902  never let an exception cross into C
                return _fail(err, e)
        return S.KV_WRITE_FN(write)

    def view(self, ptr, dtype_name, shape):
        """The pool at ptr as a [max_pages, page_size, n_kv_heads, head_dim] tensor of its
        dtype, sharing its memory."""
        return self.pools[ptr].view(_torch.torch_dtype(dtype_name)).view(shape)


_contexts = {}  # CUDA ordinal -> llt_cuda_ctx of the kernels run from Python (process lifetime)


def _ctx(ordinal):
    c = _contexts.get(ordinal)
    if c is None:
        ptr = C.c_void_p()
        lib().call("llt_cuda_ctx_create", ordinal, C.byref(ptr))
        c = _contexts[ordinal] = ptr.value
    return c


def _begin(dev):
    """The context of dev's ordinal, after torch's pending work on dev is done."""
    _torch.loaded().cuda.synchronize(dev)
    return _ctx(dev.index or 0)


def _half_code(dtype):
    t = _torch.loaded()
    return {t.float16: S.DTYPE_F16, t.bfloat16: S.DTYPE_BF16}.get(dtype)


def runs_on_gpu(*tensors):
    """True when every argument is a CUDA tensor of one float16 / bfloat16 dtype and one
    device, and the library has the CUDA kernels: the kernel then runs there."""
    t = _torch.loaded()
    if t is None or not all(isinstance(x, t.Tensor) and x.is_cuda for x in tensors):
        return False
    a = tensors[0]
    return (_half_code(a.dtype) is not None and all(x.dtype == a.dtype and x.device == a.device for x in tensors)
            and lib().has("llt_cuda_linear_run"))


def gemm(a, b):
    """a [..., k] @ b [k, n] on the GPU (cuBLASLt or our GEMV, as the backend picks): float32
    [..., n] (the accumulation dtype)."""
    t = _torch.loaded()
    if b.dim() != 2 or a.shape[-1] != b.shape[0] or a.numel() == 0:
        raise InvalidArgumentError("gemm: shapes %s and %s do not multiply" % (tuple(a.shape), tuple(b.shape)))
    k, n = b.shape
    x = a.reshape(-1, k).contiguous()
    w = b.t().contiguous()  # [n, k]: weights are stored [out, in]
    y = t.empty((x.shape[0], n), dtype=t.float32, device=a.device)
    lin = S.CudaLinear()
    lin.dtype, lin.w, lin.n, lin.k, lin.m = _half_code(a.dtype), w.data_ptr(), n, k, x.shape[0]
    lin.x, lin.ldx, lin.y, lin.ldy = x.data_ptr(), k, y.data_ptr(), n  # in ACT, out STORE (0)
    ctx = _begin(a.device)
    lib().call("llt_cuda_linear_run", ctx, C.byref(lin), 0)  # LLT_CUDA_PATH_AUTO
    lib().call("llt_cuda_sync", ctx)
    return y.reshape(tuple(a.shape[:-1]) + (n,))


def rmsnorm(x, w, eps):
    """x / rms(x) * w over the last dimension on the GPU, in x's dtype (float32 inside)."""
    t = _torch.loaded()
    d = x.shape[-1]
    if tuple(w.shape) != (d,) or x.numel() == 0:
        raise InvalidArgumentError("rmsnorm: w has shape %s, expected (%d,)" % (tuple(w.shape), d))
    xf = x.reshape(-1, d).to(t.float32).contiguous()  # read only (no residual add)
    wf = w.to(t.float32).contiguous()
    y = t.empty(xf.shape, dtype=x.dtype, device=x.device)
    ctx = _begin(x.device)
    lib().call("llt_cuda_rmsnorm", ctx, _half_code(x.dtype), xf.data_ptr(), None, None, wf.data_ptr(),
               y.data_ptr(), xf.shape[0], d, float(eps))
    lib().call("llt_cuda_sync", ctx)
    return y.reshape(x.shape)


def page_attention(q, kv_pages, scale):
    """Decode attention of q [n_heads, head_dim] over (K, V, block_table, seq_len) whose
    pools are CUDA tensors, with the CUDA backend's decode kernel; the result [n_heads,
    head_dim] stays on the GPU, in the pages' dtype."""
    t = _torch.loaded()
    k, v, table, seq_len = kv_pages  # kv_cache.pages_meta
    dev = k.device
    if k.dtype not in (t.float16, t.bfloat16) or v.dtype != k.dtype or v.shape != k.shape:
        raise InvalidArgumentError("page_attention: GPU pages must be float16 or bfloat16 K/V of "
                                   "one shape, got %s %s / %s %s" % (k.dtype, tuple(k.shape), v.dtype, tuple(v.shape)))
    n_pages, page_size, n_kv, hd = k.shape
    if not _torch.is_tensor(q):
        q = t.as_tensor(q)
    q = q.detach().to(dev, t.float32).contiguous()
    if q.dim() != 2 or q.shape[1] != hd or q.shape[0] % n_kv:
        raise InvalidArgumentError("page_attention: q has shape %s; expected [n_heads, %d] with "
                                   "n_heads a multiple of %d" % (tuple(q.shape), hd, n_kv))
    table = list(table)
    if not table or not 0 < seq_len <= len(table) * page_size or min(table) < 0 or max(table) >= n_pages:
        raise InvalidArgumentError("page_attention: block table %r / seq_len %d do not fit %d pages"
                                   % (table, seq_len, n_pages))
    n_heads = q.shape[0]
    ctx = _begin(dev)
    code = S.DTYPE_BF16 if k.dtype == t.bfloat16 else S.DTYPE_F16
    splits = lib().fn("llt_cuda_attn_splits")(ctx, 1, n_kv)
    work = t.zeros(max(1, lib().fn("llt_cuda_attn_work_floats")(1, splits, n_heads, hd)),
                   dtype=t.float32, device=dev)
    counters = t.zeros(max(1, n_kv), dtype=t.int32, device=dev)
    bt = t.tensor(table, dtype=t.int32, device=dev)
    row_bt = t.zeros(1, dtype=t.int32, device=dev)
    pos = t.tensor([seq_len - 1], dtype=t.int32, device=dev)
    out = t.empty((n_heads, hd), dtype=k.dtype, device=dev)
    k, v = k.contiguous(), v.contiguous()
    a = S.CudaAttn(code, q.data_ptr(), out.data_ptr(), k.data_ptr(), v.data_ptr(), bt.data_ptr(),
                   row_bt.data_ptr(), pos.data_ptr(), 1, n_heads, n_kv, hd, page_size, len(table),
                   0.0 if scale is None else float(scale), work.data_ptr(), counters.data_ptr())
    t.cuda.synchronize(dev)  # the tensors made above
    lib().call("llt_cuda_attention_decode", ctx, C.byref(a))
    lib().call("llt_cuda_sync", ctx)
    return out
