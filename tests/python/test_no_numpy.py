"""Without numpy the package still works: outputs are nested lists, kernels say why not."""

import os
import subprocess
import sys
import textwrap

import pytest

from conftest import LLAMA2_TOK, ORACLE, REPO, needs

BLOCK = "import sys; sys.modules['numpy'] = None\n"


def run(code):
    env = dict(os.environ, PYTHONPATH=str(REPO / "python"))
    r = subprocess.run([sys.executable, "-c", BLOCK + textwrap.dedent(code)], env=env, cwd=REPO,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def test_kernels_need_numpy():
    out = run("""
        import llama_triton as L
        from llama_triton import _arrays
        assert not _arrays.have_numpy()
        try:
            L.kernels.gemm([[1.0]], [[1.0]])
        except L.UnsupportedError as e:
            print("unsupported:", e)
        """)
    assert "unsupported: llama_triton.kernels works on numpy arrays" in out


@needs("llt_tokenizer_open", "llt_tokenizer_encode", "llt_tokenizer_decode")
def test_tokenizer_without_numpy():
    out = run("""
        import llama_triton as L
        t = L.Tokenizer(%r)
        print(t.encode("I believe"), t.decode([1, 306, 4658]))
        """ % str(LLAMA2_TOK))
    assert out.strip() == "[1, 306, 4658] I believe"


@needs("llt_load_opts_init", "llt_model_load", "llt_model_forward", "llt_model_config")
def test_forward_returns_nested_lists(np):
    from conftest import read_safetensors
    ref, _ = read_safetensors(ORACLE / "tiny-llama2" / "reference.safetensors")
    ids = ref["input_ids"][:5].tolist()
    out = run("""
        import json, llama_triton as L
        m = L.LlamaTritonModel(%r, no_cache=True)
        lg, hid, fin = m.forward(%r, return_hidden=True)
        assert type(lg) is list and type(lg[0]) is list and type(lg[0][0]) is float
        assert (len(lg), len(lg[0]), len(hid), len(hid[0]), len(fin[0])) == (5, 512, 2, 5, 128)
        print(json.dumps(lg))
        """ % (str(ORACLE / "tiny-llama2" / "hf"), ids))
    import json
    got = np.array(json.loads(out))
    scale = np.max(np.abs(ref["logits"][:5]))
    assert np.max(np.abs(got - ref["logits"][:5])) <= 1e-4 * scale


@needs("llt_config_init", "llt_kv_cache_create", "llt_kv_seq_create", "llt_kv_cache_allocate",
       "llt_kv_cache_get_pages", "llt_dtype_from_name")
def test_kv_pages_without_numpy():
    out = run("""
        import llama_triton as L
        for kv in ("f32", "f16", "bf16"):
            c = L.LlamaConfig(n_layers=1, n_heads=2, n_kv_heads=1, hidden_size=4, vocab_size=4,
                              intermediate_size=4, max_position_embeddings=8, page_size=2,
                              max_pages=4, kv_dtype=kv)
            c.head_dim = 2
            cache = L.PageKVCache(c)
            cache.allocate(0, [[[1.0, 2.0]], [[3.0, 4.0]], [[5.0, 0.5]]],
                           [[[-1.0, -2.0]], [[-3.0, -4.0]], [[-5.0, -0.5]]])
            p = cache.get_kv_pages(0)
            k, v = p.contiguous()
            print(kv, len(p.k), len(p.k[0]), k, v[2])
        """)
    lines = out.strip().splitlines()
    for line in lines:
        assert line.split(" ", 3)[1:3] == ["4", "2"]
        assert line.endswith("[[1.0, 2.0]], [[3.0, 4.0]], [[5.0, 0.5]]] [[-5.0, -0.5]]")


@needs("llt_load_opts_init", "llt_model_load", "llt_model_forward", "llt_model_config",
       "llt_model_decode", "llt_model_kv_cache", "llt_kv_seq_create", "llt_kv_cache_get_pages",
       "llt_sampler_create")
def test_no_numpy_paths_in_process(monkeypatch):
    # the same fallbacks, measured by coverage: numpy hidden from the package's array helpers
    import llama_triton as L
    from llama_triton import _arrays
    monkeypatch.setattr(_arrays, "np", None)
    with L.LlamaTritonModel(ORACLE / "tiny-llama2" / "hf", no_cache=True, max_seqs=2) as m:
        lg = m.forward([1, 5, 9])
        assert type(lg) is list and len(lg) == 3 and len(lg[0]) == 512
        rows = m.forward([[1, 5], [1, 5, 9]])
        assert type(rows) is list and len(rows[1]) == 3
        cache = m.kv_cache
        s = cache.new_sequence()
        step = m.decode([1, 5, 9], [s, s, s])
        assert type(step) is list and len(step) == 1 and len(step[0]) == 512
        assert abs(step[0][7] - lg[2][7]) < 1e-3
        pages = cache.get_kv_pages(1, seq=s)
        k, v = pages.contiguous()
        assert len(k) == 3 and len(k[0]) == 2 and len(k[0][0]) == 32
    with L.Sampler(4, temperature=0) as smp:
        assert smp.sample([0.0, 3.0, 1.0, 2.0]) == 1
    with pytest.raises(L.UnsupportedError):
        L.kernels.rmsnorm([1.0], [1.0])
