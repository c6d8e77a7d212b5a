"""PageKVCache: the specification's paged KV cache over llt_kv_cache.

Layout. Each layer has one K pool and one V pool, [max_pages, page_size, n_kv_heads,
head_dim] of kv_dtype: pages hold page_size tokens. A page index means the same slot in every
layer's pools, so one block table per sequence serves all layers: token `pos` of a sequence
is at pool[block_table[pos // page_size], pos % page_size]. Pages are reference counted
(fork shares a prefix; the first write into a shared page copies it)."""

import ctypes as C

from . import _arrays, _device, _dtype, _torch
from . import _structs as S
from ._handle import Handle
from ._lib import lib
from .config import LlamaConfig
from .errors import InvalidArgumentError, UnsupportedError


def pages_meta(kv_pages):
    """(K, V, block_table, seq_len) of a KVPages, or of the (K, V) tensors get_kv_pages
    returned, unpacked and packed again (its torch tensors carry the block table); else None."""
    parts = tuple(kv_pages)
    if isinstance(kv_pages, KVPages):
        return parts[0], parts[1], kv_pages.block_table, kv_pages.seq_len
    meta = getattr(parts[0], "_llt_pages", None) if len(parts) == 2 else None
    return (parts[0], parts[1]) + meta if meta is not None else None


def cuda_page_attention(q, kv_pages, scale):
    """page_attention on the GPU when kv_pages' pools are CUDA tensors, else None."""
    meta = pages_meta(kv_pages)
    if meta is None or not _torch.is_tensor(meta[0]) or not meta[0].is_cuda:
        return None
    from . import _cuda
    return _cuda.page_attention(q, meta, scale)

_ELEM = {S.DTYPE_F32: 4, S.DTYPE_F16: 2, S.DTYPE_BF16: 2}


class KVPages(tuple):
    """(K, V) of one layer, unpackable as the specification's pair and accepted as it is by
    kernels.page_attention, with: block_table (list of page indices of the sequence, in
    order), seq_len, page_size, n_kv_heads, head_dim, dtype ("f32", "f16", "bf16").

    K, V: the layer's pools [n_pages, page_size, n_kv_heads, head_dim]; token pos of the
    sequence is K[block_table[pos // page_size], pos % page_size] ([n_kv_heads, head_dim]).
    torch tensors (when asked for, see get_kv_pages) in the pool's dtype (torch.bfloat16 for
    bf16); otherwise numpy float32 / float16 arrays, bf16 as uint16 arrays of the raw bits;
    nested lists of floats without numpy."""

    def __new__(cls, k, v, block_table, seq_len, page_size, n_kv_heads, head_dim, dtype):
        self = super().__new__(cls, (k, v))
        self.block_table = list(block_table)
        self.seq_len, self.page_size = seq_len, page_size
        self.n_kv_heads, self.head_dim, self.dtype = n_kv_heads, head_dim, dtype
        return self

    @property
    def k(self):
        return self[0]

    @property
    def v(self):
        return self[1]

    def contiguous(self):
        """(K, V) of the sequence's tokens in order: [seq_len, n_kv_heads, head_dim] float32."""
        return self._gather(self[0]), self._gather(self[1])

    def _gather(self, pool):
        rows = []
        for pos in range(self.seq_len):
            rows.append(pool[self.block_table[pos // self.page_size]][pos % self.page_size])
        if _torch.is_tensor(pool):
            t = _torch.loaded()
            if not rows:
                return t.zeros((0, self.n_kv_heads, self.head_dim), device=pool.device)
            return t.stack(rows).float()
        np = _arrays.np
        if np is None:
            return rows
        shape = (self.seq_len, self.n_kv_heads, self.head_dim)
        if not rows:
            return np.zeros(shape, np.float32)
        a = np.stack(rows)
        if self.dtype == "bf16":
            a = (a.astype(np.uint32) << 16).view(np.float32)
        return a.astype(np.float32).reshape(shape)


class PageKVCache(Handle):
    """PageKVCache(cfg, device='cuda', *, max_seqs=1, ...): a paged cache shaped by a
    LlamaConfig (n_layers, n_kv_heads, head_dim, page_size, max_pages, kv_dtype). max_pages 0
    means enough pages for max_seqs sequences of max_position_embeddings tokens.

    device: "cuda" / "cuda:N" puts the pools on that GPU (torch memory, so PyTorch is needed);
    without a GPU the CPU is used, with a warning on stderr. "cpu": host memory.
    A first sequence is created (`seq`); allocate / get_kv_pages act on it unless given
    another seq id from new_sequence() / fork()."""

    _free_name = "llt_kv_cache_free"

    def __init__(self, cfg, device=_device.DEFAULT, *, max_seqs=1, max_pages=None, page_size=None,
                 kv_dtype=None):
        if not isinstance(cfg, LlamaConfig):
            raise InvalidArgumentError("cfg: expected a LlamaConfig, got %r" % type(cfg).__name__)
        device = _device.resolve(device) or "cpu"
        if "," in device:
            raise InvalidArgumentError("device: a PageKVCache lives on one device, got %r" % device)
        o = _opts(cfg, max_seqs, max_pages, page_size, kv_dtype)
        self._pools = None
        if _device.is_cuda(device):
            from ._cuda import TorchPools
            self._pools = TorchPools("cuda:%d" % _device.ordinal(device))
        self._create(o, device)

    def _create(self, o, device):
        ptr = C.c_void_p()
        if self._pools is None:
            lib().call("llt_kv_cache_create", C.byref(o), C.byref(ptr))
        else:
            lib().call("llt_kv_cache_create_with", C.byref(o), C.byref(self._pools.struct), C.byref(ptr))
        Handle.__init__(self, ptr.value)
        self._o = o
        self.device = device
        self._on_host = self._pools is None
        self._as_torch = self._pools is not None
        self.seq = self.new_sequence()

    @classmethod
    def _with_torch_pools(cls, cfg, device, **kw):
        """A cache whose pools are torch tensors on `device` (what device='cuda' builds; on
        "cpu" this lets the CPU-only tests run the same storage hooks)."""
        from ._cuda import TorchPools
        self = cls.__new__(cls)
        self._pools = TorchPools(device)
        self._create(_opts(cfg, kw.get("max_seqs", 1), kw.get("max_pages"), kw.get("page_size"),
                           kw.get("kv_dtype")), device)
        return self

    @classmethod
    def _borrowed(cls, ptr, owner, cfg, device):
        """The model's own cache (no default sequence is created; its pool may be on a GPU)."""
        self = cls.__new__(cls)
        Handle.__init__(self, ptr, owner)
        self._o = _opts(cfg, 1, 0, None, None)
        self._o.max_pages = 0  # unknown here: get_kv_pages copies up to the highest page used
        self.device = device or "cpu"
        self._on_host = not _device.is_cuda(self.device)
        self._pools = None
        self._as_torch = False
        self.seq = None
        return self

    # --- sequences ---
    def new_sequence(self):
        sid = C.c_int32()
        lib().call("llt_kv_seq_create", self._h, C.byref(sid))
        return sid.value

    def fork(self, seq=None):
        """A new sequence sharing the pages of `seq` (copy-on-write)."""
        sid = C.c_int32()
        lib().call("llt_kv_seq_fork", self._h, self._seq(seq), C.byref(sid))
        return sid.value

    def free_sequence(self, seq):
        lib().fn("llt_kv_seq_free")(self._h, _i32(seq, "seq"))

    def seq_len(self, seq=None):
        return lib().fn("llt_kv_seq_len")(self._h, self._seq(seq))

    @property
    def pages_in_use(self):
        return lib().fn("llt_kv_pages_in_use")(self._h)

    @property
    def pages_free(self):
        return lib().fn("llt_kv_pages_free")(self._h)

    # --- the specification's methods ---
    def allocate(self, layer, k, v, seq=None):
        """Appends keys and values of one layer: k, v [n, n_kv_heads, head_dim] (or
        [n_kv_heads, head_dim] for one token): torch tensors (any float dtype, CPU or CUDA),
        numpy arrays or nested lists, converted to kv_dtype. Layers are written in order
        0..n_layers-1 with the same n; the sequence grows when the last layer is written.
        Tensors on a GPU cache's device are converted and copied there, device to device;
        otherwise the C call reads k and v from host memory (copied there first)."""
        h = self._h
        o = self._o
        inner = (o.n_kv_heads, o.head_dim)
        if self._pools is not None and _torch.is_tensor(k) and _torch.is_tensor(v) and \
                k.device == v.device and _torch.device_of(k) == self._pools.device:
            return self._allocate_on_device(layer, k, v, seq, inner)
        if _torch.is_tensor(k) or _torch.is_tensor(v):
            self._as_torch = True
            k = _torch.floats(k, "k") if _torch.is_tensor(k) else k
            v = _torch.floats(v, "v") if _torch.is_tensor(v) else v
        kb, nk = _arrays.float32_rows(k, inner, "k")
        vb, nv = _arrays.float32_rows(v, inner, "v")
        if nk != nv:
            raise InvalidArgumentError("allocate: k has %d tokens, v has %d" % (nk, nv))
        lib().call("llt_kv_cache_allocate", h, self._seq(seq), _i32(layer, "layer"),
                   _arrays.f32_ptr(kb), _arrays.f32_ptr(vb), nk)

    def _allocate_on_device(self, layer, k, v, seq, inner):
        """allocate of tensors on the pools' device: the C cache reserves and commits, the
        rows are converted and copied there (torch pools only)."""
        k2 = k.unsqueeze(0) if k.dim() == 2 else k
        v2 = v.unsqueeze(0) if v.dim() == 2 else v
        for name, x in (("k", k2), ("v", v2)):
            if x.dim() != 3 or tuple(x.shape[1:]) != inner or x.shape[0] == 0 or not x.is_floating_point():
                raise InvalidArgumentError("%s: expected a float tensor [n, %d, %d], got %s %s"
                                           % (name, inner[0], inner[1], x.dtype, tuple(x.shape)))
        if k2.shape[0] != v2.shape[0]:
            raise InvalidArgumentError("allocate: k has %d tokens, v has %d" % (k2.shape[0], v2.shape[0]))
        write = self._pools.writer(k2, v2, _dtype.name(self._o.kv_dtype))
        lib().call("llt_kv_cache_allocate_fn", self._h, self._seq(seq), _i32(layer, "layer"),
                   k2.shape[0], write, None)

    def get_kv_pages(self, layer, device=None, *, seq=None):
        """KVPages (K, V) of one layer plus the sequence's block table (see KVPages for the
        layout); the pair goes as it is into kernels.page_attention.

        Torch tensors when the cache lives on a GPU, when allocate was given tensors, or when
        `device` is given and torch is installed; on `device` (default: the cache's). A GPU
        cache's pools are returned without a copy (views of the pool: later allocate calls
        show through); the model's own GPU cache is copied device to device (its pools die
        with the model); host pools are copied. Without torch: numpy arrays / nested lists,
        and only on the host."""
        h = self._h
        if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < self._o.n_layers:
            raise InvalidArgumentError("layer: expected an int in [0, %d), got %r" % (self._o.n_layers, layer))
        kp = S.KVPages()
        lib().call("llt_kv_cache_get_pages", h, self._seq(seq), layer, C.byref(kp))
        if kp.dtype not in _ELEM:
            raise UnsupportedError("get_kv_pages: a %s cache's pages (e4m3 rows with a float32 scale each, "
                                   "docs/ARCHITECTURE.md) are not [pages, page_size, n_kv_heads, head_dim] "
                                   "arrays; use kv_dtype f16, bf16 or f32 here" % _dtype.name(kp.dtype), 4)
        name = _dtype.name(kp.dtype)
        want = None if device is None else (_device.resolve(device, "device") or "cpu")
        as_torch = self._as_torch or not self._on_host or (want is not None and _torch_available())
        n_pages = self._o.max_pages or _max_page(kp)
        shape = (n_pages, kp.page_size, kp.n_kv_heads, kp.head_dim)
        if as_torch:
            k, v = (self._torch_pool(p, name, shape, want) for p in (kp.k_pool, kp.v_pool))
        elif want not in (None, "cpu"):
            raise UnsupportedError("get_kv_pages: device %r needs PyTorch" % want, 4)
        elif not self._on_host:
            raise UnsupportedError("get_kv_pages: this cache's pages live on a GPU (needs PyTorch)", 4)
        else:
            count = n_pages * kp.page_size * kp.n_kv_heads * kp.head_dim
            k = _pool_copy(kp.k_pool, count, kp.dtype, shape, name)
            v = _pool_copy(kp.v_pool, count, kp.dtype, shape, name)
        table = list(kp.block_table[:kp.n_blocks]) if kp.n_blocks > 0 else []
        if as_torch:  # so that page_attention((K, V)) works after unpacking the pair
            k._llt_pages = v._llt_pages = (table, kp.seq_len)
        return KVPages(k, v, table, kp.seq_len, kp.page_size, kp.n_kv_heads, kp.head_dim, name)

    def _torch_pool(self, ptr, name, shape, want):
        """One pool as a torch tensor on `want` (default: where it lives)."""
        if self._pools is not None:  # torch memory: a view, no copy
            x = self._pools.view(ptr, name, shape)
        elif not self._on_host:      # the model's GPU pool: copied, it dies with the model
            from ._torch import CudaView
            dev = "cuda:%d" % _device.ordinal(self.device)
            x = CudaView(ptr, shape, name, self).tensor(dev).clone()
        else:
            count = shape[0] * shape[1] * shape[2] * shape[3]
            x = _torch.from_host(_pool_copy(ptr, count, S.DTYPE_NAMES.index(name), shape, name), "cpu", name)
        return x if want is None else x.to(want)

    def _seq(self, seq):
        if seq is None:
            if self.seq is None:
                raise InvalidArgumentError("this cache has no default sequence: pass seq")
            return self.seq
        return _i32(seq, "seq")


def _opts(cfg, max_seqs, max_pages, page_size, kv_dtype):
    o = S.KVCacheOpts()
    o.n_layers, o.n_kv_heads = cfg.n_layers, cfg.n_kv_heads
    o.head_dim = cfg.head_dim or (cfg.hidden_size // cfg.n_heads if cfg.n_heads > 0 else 0)
    o.page_size = _i32(page_size if page_size is not None else cfg.page_size, "page_size")
    o.max_seqs = _i32(max_seqs, "max_seqs")
    pages = max_pages if max_pages is not None else cfg.max_pages
    if pages == 0 and o.page_size > 0:
        per_seq = -(-cfg.max_position_embeddings // o.page_size)
        pages = per_seq * max(1, o.max_seqs)
    o.max_pages = _i32(pages, "max_pages")
    o.kv_dtype = _dtype.code(kv_dtype if kv_dtype is not None else cfg.kv_dtype, "kv_dtype")
    return o


def _max_page(kp):
    return max(kp.block_table[:kp.n_blocks], default=-1) + 1 if kp.n_blocks > 0 else 0


def _pool_copy(ptr, count, dtype, shape, name):
    nbytes = count * _ELEM[dtype]
    raw = C.string_at(ptr, nbytes) if ptr and nbytes else b""
    np = _arrays.np
    if np is not None:
        npt = {S.DTYPE_F32: np.float32, S.DTYPE_F16: np.float16, S.DTYPE_BF16: np.uint16}[dtype]
        return np.frombuffer(raw, dtype=npt).reshape(shape).copy()
    return _arrays.nest(_arrays.floats_from_raw(raw, name), shape)


def _i32(v, what):
    if isinstance(v, bool) or not isinstance(v, int) or not -2**31 <= v < 2**31:
        raise InvalidArgumentError("%s: expected an int32, got %r" % (what, v))
    return v


def _torch_available():
    try:
        _torch.require("get_kv_pages")
        return True
    except UnsupportedError:
        return False
