"""llama_triton.kernels against numpy implementations written from the definitions."""

import math

import pytest

from conftest import needs
import llama_triton as L
from llama_triton import kernels as K


@needs("llt_gemm_f32")
@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (3, 5, 7), (17, 64, 33), (64, 128, 96), (2, 300, 1)])
def test_gemm_is_a_matmul(np, m, k, n):
    rng = np.random.default_rng(m * 1000 + n)
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    ref = a.astype(np.float64) @ b.astype(np.float64)
    got = K.gemm(a, b)
    assert got.shape == (m, n) and got.dtype == np.float32
    assert np.max(np.abs(got - ref)) <= 1e-5 * math.sqrt(k) * max(1.0, np.max(np.abs(ref)))


@needs("llt_gemm_f32")
def test_gemm_shapes_and_inputs(np):
    a = np.arange(24, dtype=np.float64).reshape(2, 3, 4)
    b = np.ones((4, 2))
    assert np.array_equal(K.gemm(a, b), a @ b)  # leading dims of a are kept
    assert np.array_equal(K.gemm([[1, 2]], [[3], [4]]), [[11]])  # lists are arrays
    at = np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3))
    assert np.array_equal(K.gemm(at, np.eye(3)), at)  # non-contiguous input
    for x, y in ((np.ones((2, 3)), np.ones((4, 2))), (np.ones((2, 3)), np.ones(3)),
                 (np.ones((0, 3)), np.ones((3, 2)))):
        with pytest.raises(L.InvalidArgumentError):
            K.gemm(x, y)


@needs("llt_rmsnorm_f32")
@pytest.mark.parametrize("eps", [1e-5, 1e-6, 0.5])
def test_rmsnorm(np, eps):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((5, 3, 64)).astype(np.float32)
    w = rng.standard_normal(64).astype(np.float32)
    x64 = x.astype(np.float64)
    ref = x64 / np.sqrt(np.mean(x64 * x64, axis=-1, keepdims=True) + eps) * w
    got = K.rmsnorm(x, w, eps=eps)
    assert got.shape == x.shape and np.allclose(got, ref, rtol=1e-5, atol=1e-6)
    with pytest.raises(L.InvalidArgumentError):
        K.rmsnorm(x, w[:10])
    with pytest.raises(L.InvalidArgumentError):
        K.rmsnorm(x, w, eps=-1.0)


@needs("llt_rotary_build")
@pytest.mark.parametrize("base,dim,max_pos", [(10000.0, 8, 16), (500000.0, 64, 100), (10.0, 2, 3)])
def test_build_rotary_cache(np, base, dim, max_pos):
    sin, cos = K.build_rotary_cache(base, dim, max_pos)
    ang = np.arange(max_pos)[:, None] * base ** (-2.0 * np.arange(dim // 2) / dim)[None, :]
    assert sin.shape == cos.shape == (max_pos, dim // 2) and sin.dtype == np.float32
    assert np.allclose(sin, np.sin(ang), atol=2e-6) and np.allclose(cos, np.cos(ang), atol=2e-6)
    s16, c16 = K.build_rotary_cache(base, dim, max_pos, np.float16)
    assert s16.dtype == np.float16 and np.allclose(s16, sin, atol=1e-3)
    s64, _ = K.build_rotary_cache(base, dim, max_pos, "float64")
    assert s64.dtype == np.float64


@needs("llt_rotary_build")
def test_build_rotary_cache_errors():
    for args in ((10000.0, 0, 4), (10000.0, 8, 0), (10000.0, 8.0, 4), (10000.0, True, 4)):
        with pytest.raises(L.InvalidArgumentError):
            K.build_rotary_cache(*args)
    with pytest.raises(L.InvalidArgumentError):
        K.build_rotary_cache(-1.0, 8, 4)  # the C check: base must be positive
    with pytest.raises(L.InvalidArgumentError):
        K.build_rotary_cache(10000.0, 7, 4)  # odd dims do not pair


def _rotate_ref(np, t, base, pos):
    """Adjacent pairs (2i, 2i+1) rotated by pos * base^(-2i/d), in float64."""
    d = t.shape[-1]
    ang = pos * base ** (-2.0 * np.arange(d // 2) / d)
    x0, x1 = t[..., 0::2].astype(np.float64), t[..., 1::2].astype(np.float64)
    out = np.empty(t.shape, np.float64)
    out[..., 0::2] = x0 * np.cos(ang) - x1 * np.sin(ang)
    out[..., 1::2] = x0 * np.sin(ang) + x1 * np.cos(ang)
    return out


@needs("llt_rotary_build", "llt_rotary_apply")
def test_apply_rotary(np):
    rng = np.random.default_rng(5)
    sin, cos = K.build_rotary_cache(10000.0, 16, 32)
    t = rng.standard_normal((4, 16)).astype(np.float32)
    got = K.apply_rotary(t, sin, cos, 7)
    assert np.allclose(got, _rotate_ref(np, t, 10000.0, 7), atol=1e-5)
    assert not np.array_equal(got, t)  # a new array; t untouched
    assert np.allclose(K.apply_rotary(t[0], sin, cos, 0), t[0])  # position 0: identity
    seq = rng.standard_normal((3, 4, 16)).astype(np.float32)  # token j at position 5 + j
    got = K.apply_rotary(seq, sin, cos, 5)
    for j in range(3):
        assert np.allclose(got[j], _rotate_ref(np, seq[j], 10000.0, 5 + j), atol=1e-5)


@needs("llt_rotary_build", "llt_rotary_apply")
def test_apply_rotary_errors(np):
    sin, cos = K.build_rotary_cache(10000.0, 16, 8)
    t = np.zeros((2, 16), np.float32)
    for args in ((t, sin, cos, 8), (t, sin, cos, -1), (np.zeros((2, 3, 4, 16)), sin, cos, 0),
                 (np.zeros((2, 8)), sin, cos, 0), (t, sin, cos[:, :4], 0), (t, sin, cos, 1.0),
                 (np.zeros((9, 2, 16)), sin, cos, 0)):
        with pytest.raises(L.InvalidArgumentError):
            K.apply_rotary(*args)


def _attention_ref(np, q, k, v, scale=None):
    """softmax(q k^T * scale) v per head; query head h reads KV head h // (n_heads / n_kv)."""
    n_heads, hd = q.shape
    group = n_heads // k.shape[1]
    scale = 1 / math.sqrt(hd) if scale is None else scale
    out = np.empty((n_heads, hd))
    for h in range(n_heads):
        kh, vh = k[:, h // group].astype(np.float64), v[:, h // group].astype(np.float64)
        s = kh @ q[h].astype(np.float64) * scale
        p = np.exp(s - s.max())
        out[h] = (p / p.sum()) @ vh
    return out


@needs("llt_page_attention_f32")
@pytest.mark.parametrize("n_heads,n_kv,seq", [(4, 4, 1), (8, 2, 13), (6, 1, 40)])
def test_page_attention_on_plain_kv(np, n_heads, n_kv, seq):
    rng = np.random.default_rng(n_heads * seq)
    q = rng.standard_normal((n_heads, 16)).astype(np.float32)
    k = rng.standard_normal((seq, n_kv, 16)).astype(np.float32)
    v = rng.standard_normal((seq, n_kv, 16)).astype(np.float32)
    got = K.page_attention(q, (k, v))
    assert got.shape == q.shape and np.allclose(got, _attention_ref(np, q, k, v), atol=1e-5)
    assert np.allclose(K.page_attention(q, (k, v), scale=0.3), _attention_ref(np, q, k, v, 0.3), atol=1e-5)


@needs("llt_page_attention_f32")
def test_page_attention_on_scattered_pages(np):
    rng = np.random.default_rng(9)
    pool_k = rng.standard_normal((6, 4, 2, 8)).astype(np.float32)
    pool_v = rng.standard_normal((6, 4, 2, 8)).astype(np.float32)
    table = [4, 0, 5]
    seq_len = 10
    k = np.concatenate([pool_k[p] for p in table])[:seq_len]
    v = np.concatenate([pool_v[p] for p in table])[:seq_len]
    q = rng.standard_normal((4, 8)).astype(np.float32)
    got = K.page_attention(q, (pool_k, pool_v, table, seq_len))
    assert np.allclose(got, _attention_ref(np, q, k, v), atol=1e-5)
    got16 = K.page_attention(q, (pool_k.astype(np.float16), pool_v.astype(np.float16), table, seq_len))
    ref16 = _attention_ref(np, q, k.astype(np.float16), v.astype(np.float16))
    assert np.allclose(got16, ref16, atol=1e-3)


@needs("llt_page_attention_f32", "llt_config_init", "llt_kv_cache_create", "llt_kv_cache_allocate",
       "llt_kv_cache_get_pages", "llt_kv_seq_create")
@pytest.mark.parametrize("kv_dtype", ["f32", "bf16"])
def test_page_attention_on_a_page_kv_cache(np, kv_dtype):
    rng = np.random.default_rng(11)
    cfg = L.LlamaConfig(n_layers=1, n_heads=4, n_kv_heads=2, hidden_size=32, vocab_size=8,
                        intermediate_size=8, max_position_embeddings=64, page_size=4,
                        kv_dtype=kv_dtype)
    cfg.head_dim = 8
    with L.PageKVCache(cfg) as cache:
        k = rng.standard_normal((11, 2, 8)).astype(np.float32)
        v = rng.standard_normal((11, 2, 8)).astype(np.float32)
        cache.allocate(0, k, v)
        pages = cache.get_kv_pages(0)
        kc, vc = pages.contiguous()  # the stored (possibly rounded) values
        q = rng.standard_normal((4, 8)).astype(np.float32)
        got = K.page_attention(q, pages)
        assert np.allclose(got, _attention_ref(np, q, kc, vc), atol=1e-5)


@needs("llt_page_attention_f32")
def test_page_attention_errors(np):
    z = np.zeros((2, 4, 2, 8), np.float32)
    q = np.zeros((4, 8), np.float32)
    for kv in ((z, z, [0, 2], 5), (z, z, [0], 5), (z, z, [0], 0), (z, z[:1], [0], 1), (z,),
               (z[..., :0], z[..., :0], [0], 1)):
        with pytest.raises(L.InvalidArgumentError):
            K.page_attention(q, kv)
    for bad_q in (np.zeros((3, 8)), np.zeros((4, 4)), np.zeros(8)):
        with pytest.raises(L.InvalidArgumentError):
            K.page_attention(bad_q, (z, z, [0], 1))
