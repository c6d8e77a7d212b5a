"""PageKVCache: what goes in comes back out of the pages, in order, through the block
table; forks share pages until written; a full pool refuses all or nothing."""

import pytest

from conftest import needs
import llama_triton as L

KV = ("llt_config_init", "llt_dtype_from_name", "llt_kv_cache_create", "llt_kv_seq_create",
      "llt_kv_cache_allocate", "llt_kv_cache_get_pages", "llt_kv_seq_len", "llt_kv_pages_in_use",
      "llt_kv_pages_free")


def _cfg(**kw):
    c = L.LlamaConfig(n_layers=2, n_heads=4, n_kv_heads=2, hidden_size=16, vocab_size=10,
                      intermediate_size=8, max_position_embeddings=64, page_size=4, max_pages=8)
    c.head_dim = 4
    for k, v in kw.items():
        setattr(c, k, v)
    return c


def _fill(cache, rng, n, seq=None):
    """Writes n random tokens into every layer; returns [(k, v)] per layer."""
    out = []
    for layer in range(2):
        k = rng.standard_normal((n, 2, 4)).astype("float32")
        v = rng.standard_normal((n, 2, 4)).astype("float32")
        cache.allocate(layer, k, v, seq=seq)
        out.append((k, v))
    return out


@needs(*KV)
def test_allocate_then_read_back(np):
    rng = np.random.default_rng(0)
    with L.PageKVCache(_cfg()) as cache:
        assert cache.seq_len() == 0 and cache.pages_in_use == 0 and cache.pages_free == 8
        w1 = _fill(cache, rng, 6)
        w2 = _fill(cache, rng, 3)  # crosses into a third page
        assert cache.seq_len() == 9 and cache.pages_in_use == 3
        for layer in range(2):
            pages = cache.get_kv_pages(layer)
            k_pages, v_pages = pages  # the specification's pair
            assert k_pages.shape == (8, 4, 2, 4) and k_pages.dtype == np.float32
            assert len(pages.block_table) == 3 and len(set(pages.block_table)) == 3
            assert (pages.seq_len, pages.page_size, pages.dtype) == (9, 4, "f32")
            k, v = pages.contiguous()
            assert np.array_equal(k, np.concatenate([w1[layer][0], w2[layer][0]]))
            assert np.array_equal(v, np.concatenate([w1[layer][1], w2[layer][1]]))
            # token 5 lives in block 1, slot 1
            assert np.array_equal(pages.k[pages.block_table[1]][1], w1[layer][0][5])


@needs(*KV)
def test_sequence_grows_when_the_last_layer_is_written(np):
    with L.PageKVCache(_cfg()) as cache:
        one = np.ones((2, 4), np.float32)  # a single token may be [n_kv_heads, head_dim]
        cache.allocate(0, one, one)
        assert cache.seq_len() == 0
        cache.allocate(1, one.tolist(), one.tolist())  # nested lists work too
        assert cache.seq_len() == 1


@needs(*KV)
@pytest.mark.parametrize("kv_dtype,tol", [("f16", 1e-3), ("bf16", 8e-3)])
def test_half_precision_pages(np, kv_dtype, tol):
    rng = np.random.default_rng(1)
    with L.PageKVCache(_cfg(kv_dtype=kv_dtype)) as cache:
        w = _fill(cache, rng, 5)
        pages = cache.get_kv_pages(1)
        assert pages.dtype == kv_dtype
        assert pages.k.dtype == (np.float16 if kv_dtype == "f16" else np.uint16)
        k, v = pages.contiguous()
        assert np.allclose(k, w[1][0], rtol=tol, atol=tol) and np.allclose(v, w[1][1], rtol=tol, atol=tol)
        if kv_dtype == "f16":  # round to nearest, as numpy does
            assert np.array_equal(pages.k[pages.block_table[0]][0], w[1][0][0].astype(np.float16))


@needs(*KV)
def test_f8_pages_are_written_not_exposed(np):
    # an f8 cache takes float rows (quantised per token and kv head) and its sequence grows;
    # its pages (e4m3 bytes + scales) are not plain arrays: get_kv_pages says so, by name
    rng = np.random.default_rng(3)
    with L.PageKVCache(_cfg(kv_dtype="f8")) as cache:
        _fill(cache, rng, 5)
        assert cache.seq_len() == 5
        with pytest.raises(L.UnsupportedError, match="f8_e4m3 cache's pages"):
            cache.get_kv_pages(1)


@needs(*KV, "llt_kv_seq_fork", "llt_kv_seq_free")
def test_fork_shares_pages_until_written(np):
    rng = np.random.default_rng(2)
    with L.PageKVCache(_cfg(), max_seqs=2) as cache:
        base = _fill(cache, rng, 6)
        f = cache.fork()
        assert cache.seq_len(f) == 6 and cache.pages_in_use == 2
        assert cache.get_kv_pages(0, seq=f).block_table == cache.get_kv_pages(0).block_table
        extra = _fill(cache, rng, 1, seq=f)  # writes into the shared last page: copied
        assert cache.pages_in_use == 3
        assert cache.get_kv_pages(0, seq=f).block_table[0] == cache.get_kv_pages(0).block_table[0]
        k0, _ = cache.get_kv_pages(0).contiguous()
        kf, _ = cache.get_kv_pages(0, seq=f).contiguous()
        assert np.array_equal(k0, base[0][0])
        assert np.array_equal(kf, np.concatenate([base[0][0], extra[0][0]]))
        cache.free_sequence(f)
        assert cache.pages_in_use == 2


@needs(*KV)
def test_full_pool_is_all_or_nothing(np):
    rng = np.random.default_rng(3)
    with L.PageKVCache(_cfg(max_pages=2)) as cache:
        _fill(cache, rng, 8)
        assert cache.pages_free == 0
        big = np.zeros((1, 2, 4), np.float32)
        with pytest.raises(L.CacheFullError):
            cache.allocate(0, big, big)
        assert cache.seq_len() == 8 and cache.pages_in_use == 2


@needs(*KV)
def test_default_pool_size_and_new_sequences(np):
    with L.PageKVCache(_cfg(max_pages=0), max_seqs=3) as cache:
        assert cache.pages_free == 3 * (64 // 4)  # max_position_embeddings for each sequence
        s1, s2 = cache.new_sequence(), cache.new_sequence()
        assert len({cache.seq, s1, s2}) == 3
        with pytest.raises(L.LlamaTritonError):
            cache.new_sequence()  # all 3 slots taken


@needs(*KV)
def test_errors(np):
    z = np.zeros((1, 2, 4), np.float32)
    with pytest.raises(L.InvalidArgumentError):
        L.PageKVCache("not a config")
    if L.cuda_device_count() == 0:  # the specification: CPU-only machines fall back, warned
        with pytest.warns(RuntimeWarning, match="no CUDA device"):
            L.PageKVCache(_cfg(), device="cuda").close()
    with pytest.raises(L.InvalidArgumentError, match="device"):
        L.PageKVCache(_cfg(), device=3)
    with pytest.raises(L.InvalidArgumentError):
        L.PageKVCache(_cfg(page_size=0))
    with L.PageKVCache(_cfg()) as cache:
        with pytest.raises(L.LlamaTritonError, match="layer 2"):
            cache.allocate(2, z, z)  # there are 2 layers
        with pytest.raises(L.StateError, match="order"):
            cache.allocate(1, z, z)  # layers are written in order, 0 first
        cache.allocate(0, z, z)
        with pytest.raises(L.InvalidArgumentError):
            cache.allocate(1, np.zeros((2, 2, 4)), np.zeros((2, 2, 4)))  # 1 token in layer 0
        cache.allocate(1, z, z)
        assert cache.seq_len() == 1
        with pytest.raises(L.InvalidArgumentError):
            cache.allocate(0, z, z, seq=5)
        with pytest.raises(L.InvalidArgumentError, match="k"):
            cache.allocate(0, np.zeros((1, 2, 3)), z)
        with pytest.raises(L.InvalidArgumentError):
            cache.allocate(0, z, np.zeros((2, 2, 4)))
        with pytest.raises(L.InvalidArgumentError):
            cache.allocate("0", z, z)
        with pytest.raises(L.InvalidArgumentError):
            cache.get_kv_pages(-1)
        with pytest.raises(L.InvalidArgumentError, match="layer"):
            cache.get_kv_pages(2)
    with pytest.raises(L.ClosedError):
        cache.allocate(0, z, z)
    with pytest.raises(L.ClosedError):
        cache.close()
