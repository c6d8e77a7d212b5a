"""PageKVCache: the specification's paged KV cache over llt_kv_cache.

Pages hold page_size tokens x n_kv_heads x head_dim of kv_dtype; a page index means the same
slot in every layer's K and V pool, so one block table per sequence serves all layers."""

import ctypes as C

from . import _arrays, _dtype
from . import _structs as S
from ._handle import Handle
from ._lib import lib
from .config import LlamaConfig
from .errors import InvalidArgumentError, UnsupportedError

_ELEM = {S.DTYPE_F32: 4, S.DTYPE_F16: 2, S.DTYPE_BF16: 2}


class KVPages(tuple):
    """(k_pages, v_pages) of one layer, unpackable as the specification's pair, with:
    block_table (list of page indices of the sequence, in order), seq_len, page_size,
    n_kv_heads, head_dim, dtype ("f32", "f16", "bf16").

    k_pages, v_pages: [n_pages, page_size, n_kv_heads, head_dim], copies of the whole pool.
    With numpy: float32 / float16 arrays; bf16 pools are uint16 arrays of the raw bits.
    Without numpy: nested lists of floats."""

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
    """PageKVCache(cfg, device=None, max_seqs=1): a host-memory paged cache shaped by a
    LlamaConfig (n_layers, n_kv_heads, head_dim, page_size, max_pages, kv_dtype). max_pages 0
    means enough pages for max_seqs sequences of max_position_embeddings tokens.

    A first sequence is created (`seq`); allocate / get_kv_pages act on it unless given
    another seq id from new_sequence() / fork()."""

    _free_name = "llt_kv_cache_free"

    def __init__(self, cfg, device=None, max_seqs=1, max_pages=None, page_size=None,
                 kv_dtype=None):
        if not isinstance(cfg, LlamaConfig):
            raise InvalidArgumentError("PageKVCache: expected a LlamaConfig, got %r" % type(cfg).__name__)
        if device not in (None, "cpu"):
            raise UnsupportedError("PageKVCache: device %r: a standalone cache lives in host "
                                   "memory; a model on a GPU keeps its own (model.kv_cache)" % device, 4)
        o = _opts(cfg, max_seqs, max_pages, page_size, kv_dtype)
        ptr = C.c_void_p()
        lib().call("llt_kv_cache_create", C.byref(o), C.byref(ptr))
        super().__init__(ptr.value)
        self._o = o
        self._on_host = True
        self.seq = self.new_sequence()

    @classmethod
    def _borrowed(cls, ptr, owner, cfg, device):
        """The model's own cache (no default sequence is created; its pool may be on a GPU)."""
        self = cls.__new__(cls)
        Handle.__init__(self, ptr, owner)
        self._o = _opts(cfg, 1, 0, None, None)
        self._o.max_pages = 0  # unknown here: get_kv_pages copies up to the highest page used
        self._on_host = device is None or str(device) == "cpu"
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
        [n_kv_heads, head_dim] for one token), float32-convertible. The sequence grows when
        the last layer is written."""
        h = self._h
        o = self._o
        inner = (o.n_kv_heads, o.head_dim)
        kb, nk = _arrays.float32_rows(k, inner, "k")
        vb, nv = _arrays.float32_rows(v, inner, "v")
        if nk != nv:
            raise InvalidArgumentError("allocate: k has %d tokens, v has %d" % (nk, nv))
        lib().call("llt_kv_cache_allocate", h, self._seq(seq), _i32(layer, "layer"),
                   _arrays.f32_ptr(kb), _arrays.f32_ptr(vb), nk)

    def get_kv_pages(self, layer, device=None, seq=None):
        """KVPages (k_pages, v_pages) of one layer plus the sequence's block table."""
        if device not in (None, "cpu"):
            raise UnsupportedError("get_kv_pages: device %r: pages are returned in host memory" % device, 4)
        if not self._on_host:
            raise UnsupportedError("get_kv_pages: this cache's pages live on a GPU", 4)
        h = self._h
        kp = S.KVPages()
        lib().call("llt_kv_cache_get_pages", h, self._seq(seq), _i32(layer, "layer"), C.byref(kp))
        n_pages = self._o.max_pages or _max_page(kp)
        shape = (n_pages, kp.page_size, kp.n_kv_heads, kp.head_dim)
        count = n_pages * kp.page_size * kp.n_kv_heads * kp.head_dim
        if kp.dtype not in _ELEM:
            raise UnsupportedError("get_kv_pages: KV dtype %d" % kp.dtype, 4)
        name = _dtype.name(kp.dtype)
        k = _pool_copy(kp.k_pool, count, kp.dtype, shape, name)
        v = _pool_copy(kp.v_pool, count, kp.dtype, shape, name)
        table = list(kp.block_table[:kp.n_blocks]) if kp.n_blocks > 0 else []
        return KVPages(k, v, table, kp.seq_len, kp.page_size, kp.n_kv_heads, kp.head_dim, name)

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
