"""LlamaTritonModel.forward against Hugging Face transformers' float64 reference logits
(tests/fixtures/oracle), plus random-weight models, batched decode and error paths."""

import shutil

import pytest

from conftest import ORACLE, STORIES, needs, read_safetensors
import llama_triton as L

LOAD = ("llt_load_opts_init", "llt_model_load", "llt_model_config", "llt_model_forward")
TOL = 1e-4  # CPU float32 vs float64 reference, relative to the largest reference magnitude


def _close(np, got, ref, tol=TOL):
    err = float(np.max(np.abs(got.astype(np.float64) - ref)))
    scale = float(np.max(np.abs(ref)))
    assert err <= tol * scale, "max |diff| %.3g > %.0e * %.3g" % (err, tol, scale)


@needs(*LOAD)
@pytest.mark.parametrize("sub,fmt", [("hf", "hf"), ("hf", None), ("hf-bin", "hf")])
def test_tiny_llama2_forward_matches_reference(np, sub, fmt, tmp_path):
    ref, meta = read_safetensors(ORACLE / "tiny-llama2" / "reference.safetensors")
    src = tmp_path / sub  # a clean copy: a converted cache left in the fixture would be read instead
    shutil.copytree(ORACLE / "tiny-llama2" / sub, src, ignore=shutil.ignore_patterns("model.json", "state_dict.pt"))
    with L.LlamaTritonModel(src, fmt=fmt, device="cpu", no_cache=True) as m:
        logits = m.forward(ref["input_ids"])
    assert logits.shape == ref["logits"].shape and logits.dtype == np.float32
    _close(np, logits, ref["logits"])


@needs(*LOAD)
def test_tiny_llama2_hidden_states_match_reference(np):
    ref, _ = read_safetensors(ORACLE / "tiny-llama2" / "reference.safetensors")
    with L.LlamaTritonModel(ORACLE / "tiny-llama2" / "hf", fmt="hf", no_cache=True) as m:
        logits, hidden, final = m.forward(ref["input_ids"].tolist(), return_hidden=True)
    _close(np, logits, ref["logits"])
    assert hidden.shape == (2,) + ref["hidden_0"].shape
    for layer in range(2):
        _close(np, hidden[layer], ref["hidden_%d" % layer])
    _close(np, final, ref["final_norm"])


@needs(*LOAD)
def test_tiny_llama3_bf16_sharded_matches_reference(np, tmp_path):
    # bf16 weights computed in float32: the reference used the same bf16 values in float64
    ref, _ = read_safetensors(ORACLE / "tiny-llama3" / "reference.safetensors")
    src = tmp_path / "hf"
    shutil.copytree(ORACLE / "tiny-llama3" / "hf", src, ignore=shutil.ignore_patterns("model.json", "state_dict.pt"))
    with L.LlamaTritonModel(src, no_cache=True) as m:
        _close(np, m.forward(ref["input_ids"]), ref["logits"])


@needs(*LOAD)
def test_batch_of_sequences_and_call(np):
    ref, _ = read_safetensors(ORACLE / "tiny-llama2" / "reference.safetensors")
    ids = ref["input_ids"][:16]
    with L.LlamaTritonModel(ORACLE / "tiny-llama2" / "hf", no_cache=True) as m:
        two = m(np.stack([ids, ids]))
        assert two.shape == (2, 16, 512)
        # teacher forcing from position 0: a prefix's logits are the full run's first rows
        _close(np, two[0], ref["logits"][:16])
        _close(np, two[1], ref["logits"][:16])
        lists = m.forward([ids.tolist(), ids[:4].tolist()])
        assert type(lists) is list and lists[1].shape == (4, 512)  # ragged rows: a list
        _close(np, lists[0], ref["logits"][:16])
        l3, h3, f3 = m.forward(np.stack([ids[:3]] * 2), return_hidden=True)
        assert l3.shape == (2, 3, 512) and h3.shape == (2, 2, 3, 128) and f3.shape == (2, 3, 128)


@needs(*LOAD)
def test_hf_conversion_cache_is_written_once(np, tmp_path):
    src = tmp_path / "tiny"
    shutil.copytree(ORACLE / "tiny-llama2" / "hf", src, ignore=shutil.ignore_patterns("model.json", "state_dict.pt"))
    ref, _ = read_safetensors(ORACLE / "tiny-llama2" / "reference.safetensors")
    with L.LlamaTritonModel(src, fmt="hf") as m:  # converts and caches model.json + state_dict.pt
        _close(np, m.forward(ref["input_ids"]), ref["logits"])
    assert (src / "model.json").is_file()
    with L.LlamaTritonModel(src, fmt="triton") as m:  # the cached native files alone
        _close(np, m.forward(ref["input_ids"]), ref["logits"])


@needs(*LOAD, "llt_model_tokenizer")
def test_gguf_model_has_its_tokenizer():
    with L.LlamaTritonModel(STORIES) as m:
        tok = m.tokenizer
        assert tok.vocab_size() == m.config.vocab_size == 512
        ids = tok.encode("Once upon a time")
        assert tok.decode(ids) == "Once upon a time"
    # borrowed from the model: closed with it
    assert tok.closed
    with pytest.raises(L.ClosedError):
        tok.encode("x")


@needs("llt_config_init", "llt_model_random", "llt_model_forward", "llt_model_config",
       "llt_model_tokenizer")
def test_random_model_from_config(np):
    cfg = L.LlamaConfig(n_layers=2, n_heads=4, n_kv_heads=2, hidden_size=32, intermediate_size=64,
                        vocab_size=50, max_position_embeddings=64)
    cfg.head_dim = 8
    with L.LlamaTritonModel(cfg, seed=7) as a, L.LlamaTritonModel(cfg, seed=7) as b, \
            L.LlamaTritonModel(cfg, seed=8) as c:
        assert a.tokenizer is None
        assert a.config.vocab_size == 50 and a.config.n_layers == 2
        la, lb, lc = (m.forward([1, 2, 3]) for m in (a, b, c))
        assert la.shape == (3, 50) and np.all(np.isfinite(la))
        assert np.array_equal(la, lb) and not np.array_equal(la, lc)
        # causality: appending a token does not change earlier positions' logits
        _close(np, a.forward([1, 2, 3, 4])[:3], la.astype(np.float64), 1e-5)


@needs(*LOAD, "llt_model_decode", "llt_model_kv_cache", "llt_kv_seq_create")
def test_decode_step_by_step_equals_forward(np):
    ref, _ = read_safetensors(ORACLE / "tiny-llama2" / "reference.safetensors")
    ids = ref["input_ids"][:12].tolist()
    with L.LlamaTritonModel(ORACLE / "tiny-llama2" / "hf", no_cache=True, max_seqs=2) as m:
        cache = m.kv_cache
        s = cache.new_sequence()
        first = m.decode(ids[:8], [s] * 8, want_logits=[1] * 8)  # prompt chunk, every row
        rows = [first] + [m.decode([t], [s]) for t in ids[8:]]
        got = np.concatenate(rows)
        assert got.shape == (12, 512) and cache.seq_len(s) == 12
        _close(np, got, ref["logits"][:12])
        k, v = cache.get_kv_pages(0, seq=s).contiguous()
        assert k.shape == (12, 2, 32)
        with pytest.raises(L.InvalidArgumentError):
            m.decode([1, 2], [s])
        with pytest.raises(L.InvalidArgumentError):
            m.decode([1], [s], want_logits=[1, 0])
        cache.free_sequence(s)
    assert cache.closed


@needs(*LOAD)
def test_errors(tmp_path):
    with pytest.raises(L.FileError, match="absent"):
        L.LlamaTritonModel(tmp_path / "absent.gguf")
    (tmp_path / "junk.gguf").write_bytes(b"GGUF\x03\x00\x00\x00junk")
    with pytest.raises(L.FormatError, match="junk.gguf"):
        L.LlamaTritonModel(tmp_path / "junk.gguf")
    with pytest.raises(L.InvalidArgumentError, match="fmt"):
        L.LlamaTritonModel(STORIES, fmt="onnx")
    with pytest.raises(L.InvalidArgumentError, match="dtype"):
        L.LlamaTritonModel(STORIES, dtype="f12")
    with pytest.raises(L.InvalidArgumentError, match="n_threads"):
        L.LlamaTritonModel(STORIES, n_threads=-1)
    with pytest.raises(L.InvalidArgumentError):
        L.LlamaTritonModel(42)
    with pytest.raises(L.LlamaTritonError):
        L.LlamaTritonModel(STORIES, device="tpu:0")
    with L.LlamaTritonModel(STORIES) as m:
        for bad in ([], [512], [-1], [[1, 2], [3, 600]], ["a"]):
            with pytest.raises(L.InvalidArgumentError):
                m.forward(bad)


@needs(*LOAD)
def test_kv_cache_dtype_option(np):
    # kv_dtype reaches the cache and the config; f16 / bf16 K and V move the logits a little
    # (2^-11 / 2^-8 relative rounding: well under 5e-3 / 5e-2 of their range here)
    ids = [1, 403, 407, 261, 378, 324, 426, 267, 360, 283]
    with L.LlamaTritonModel(STORIES, device="cpu") as m:
        assert m.config.kv_dtype == "f32"  # the config's: the default
        ref = m.forward(ids).astype(np.float64)
    for kv, name, tol in (("f16", "f16", 5e-3), ("bfloat16", "bf16", 5e-2)):
        with L.LlamaTritonModel(STORIES, device="cpu", kv_dtype=kv) as m:
            assert m.config.kv_dtype == name
            got = m.forward(ids)
        err = float(np.max(np.abs(got - ref))) / float(np.max(np.abs(ref)))
        assert 0 < err < tol, (kv, err)
    with L.LlamaGenerator(STORIES, device="cpu", kv_dtype="bf16", max_seqs=1) as g:
        assert g.model.config.kv_dtype == "bf16"
    with pytest.raises(L.InvalidArgumentError, match="kv_dtype q8_0"):
        L.LlamaTritonModel(STORIES, device="cpu", kv_dtype="q8_0")
    with pytest.raises(L.InvalidArgumentError, match="kv_dtype"):
        L.LlamaTritonModel(STORIES, device="cpu", kv_dtype="f12")
    # e4m3 pages with a scale per token and kv head on the CPU too (their error against HF's
    # logits is bounded on the oracles by test_hf): the cache takes them and the logits move
    with L.LlamaTritonModel(STORIES, device="cpu", kv_dtype="f8") as m:
        assert m.config.kv_dtype == "f8_e4m3"
        got = m.forward(ids)
    assert float(np.max(np.abs(got - ref))) > 0


@needs(*LOAD)
def test_batch_rows_option(np):
    # batch_rows reaches llt_load_opts (the CPU keeps its own chunks: the same logits) and the
    # C library refuses a value out of range by name; Python refuses what is not an int
    ids = [1, 403, 407, 261, 378, 324, 426, 267, 360, 283]
    with L.LlamaTritonModel(STORIES, device="cpu") as m:
        ref = m.forward(ids)
    with L.LlamaTritonModel(STORIES, device="cpu", batch_rows=3) as m:
        assert np.array_equal(m.forward(ids), ref)
    with pytest.raises(L.InvalidArgumentError, match="batch_rows 4097"):
        L.LlamaTritonModel(STORIES, device="cpu", batch_rows=4097)
    with pytest.raises(L.InvalidArgumentError, match="batch_rows"):
        L.LlamaTritonModel(STORIES, device="cpu", batch_rows=-1)
    with pytest.raises(L.InvalidArgumentError, match="batch_rows"):
        L.LlamaTritonModel(STORIES, device="cpu", batch_rows="2048")


@needs("llt_config_init", "llt_model_random")
def test_random_model_errors():
    cfg = L.LlamaConfig(n_layers=1, n_heads=3, n_kv_heads=2, hidden_size=30, vocab_size=10,
                        intermediate_size=8, max_position_embeddings=8)
    with pytest.raises(L.InvalidArgumentError):
        L.LlamaTritonModel(cfg)  # 3 heads are not a multiple of 2 KV heads
    with pytest.raises(L.InvalidArgumentError, match="seed"):
        L.LlamaTritonModel(L.LlamaConfig(), seed=-1)


@needs(*LOAD)
def test_use_after_close_is_a_python_error():
    m = L.LlamaTritonModel(STORIES)
    m.close()
    for call in (lambda: m.forward([1]), lambda: m.config, lambda: m.tokenizer, m.close):
        with pytest.raises(L.ClosedError):
            call()
    m2 = L.LlamaTritonModel(STORIES)
    del m2  # __del__ frees it; nothing to observe but the absence of a crash
