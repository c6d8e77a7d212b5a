"""Sampler, conversion and the log sink."""

import math

import pytest

from conftest import ORACLE, STORIES, needs, read_safetensors
import llama_triton as L

SAMPLER = ("llt_sampler_create", "llt_sampler_sample", "llt_sampler_free")


@needs(*SAMPLER)
def test_greedy_and_top1(np):
    logits = np.array([0.1, 2.0, -1.0, 1.9], np.float32)
    with L.Sampler(4, temperature=0) as s:
        assert s.sample(logits) == 1
    with L.Sampler(4, temperature=1.0, top_k=1, seed=3) as s:
        assert all(s.sample(logits) == 1 for _ in range(20))
    with L.Sampler(4, temperature=0.5, top_p=1e-6, seed=3) as s:  # nucleus of one token
        assert all(s.sample(logits.tolist()) == 1 for _ in range(20))
    assert logits[1] == np.float32(2.0) and logits[2] == np.float32(-1.0)  # input not modified


@needs(*SAMPLER)
def test_temperature_sampling_follows_softmax(np):
    logits = np.array([1.0, 0.0, -1.0, 0.5], np.float32)
    n = 20000
    with L.Sampler(4, temperature=1.0, top_p=1.0, seed=12345) as s:
        counts = np.bincount([s.sample(logits) for _ in range(n)], minlength=4)
    p = np.exp(logits - logits.max())
    p /= p.sum()
    # each count within 5 standard deviations of its binomial expectation
    assert np.all(np.abs(counts - n * p) <= 5 * np.sqrt(n * p * (1 - p))), (counts, n * p)


@needs(*SAMPLER)
def test_seeded_streams_repeat(np):
    logits = np.zeros(50, np.float32)
    with L.Sampler(50, temperature=1.0, top_p=1.0, seed=9) as a, \
            L.Sampler(50, temperature=1.0, top_p=1.0, seed=9) as b:
        assert [a.sample(logits) for _ in range(30)] == [b.sample(logits) for _ in range(30)]


@needs(*SAMPLER)
def test_sampler_errors(np):
    for kw in (dict(vocab_size=0), dict(vocab_size=4, seed=-1), dict(vocab_size=4, top_k=-2),
               dict(vocab_size=True)):
        with pytest.raises(L.InvalidArgumentError):
            L.Sampler(**kw)
    with pytest.raises(L.InvalidArgumentError):
        L.Sampler(4, temperature=-1.0)  # checked by the C library
    with pytest.raises(L.InvalidArgumentError):
        L.Sampler(4, top_p=1.5)
    s = L.Sampler(4)
    with pytest.raises(L.InvalidArgumentError):
        s.sample(np.zeros(5))
    with pytest.raises(L.InvalidArgumentError):
        s.sample(np.zeros((2, 4)))
    s.close()
    with pytest.raises(L.ClosedError):
        s.sample(np.zeros(4))


def test_log_level_errors():
    with pytest.raises(L.InvalidArgumentError):
        L.set_log_level("chatty")


@needs("llt_log_set", "llt_load_opts_init", "llt_model_load")
def test_log_handler_receives_library_messages():
    seen = []

    def bad_handler(level, msg):
        raise RuntimeError("a broken handler must not crash the library")
    try:
        L.set_log_level("debug", lambda level, msg: seen.append((level, msg)))
        L.LlamaTritonModel(STORIES).close()
        assert seen and all(lvl in ("debug", "info", "warn", "error") for lvl, _ in seen)
        assert any("stories260K" in m for _, m in seen)
        L.set_log_level("debug", bad_handler)
        L.LlamaTritonModel(STORIES).close()
        L.set_log_level("none", lambda level, msg: seen.append((level, msg)))
        n = len(seen)
        L.LlamaTritonModel(STORIES).close()
        assert len(seen) == n
    finally:
        L.set_log_level("warn")


@needs("llt_convert", "llt_load_opts_init", "llt_model_load", "llt_model_forward")
def test_convert_hf_to_native(np, tmp_path):
    ref, _ = read_safetensors(ORACLE / "tiny-llama2" / "reference.safetensors")
    dst = tmp_path / "native"
    L.convert(ORACLE / "tiny-llama2" / "hf", dst, fmt="hf")
    assert (dst / "model.json").is_file() and (dst / "state_dict.pt").is_file()
    cfg = L.LlamaConfig.from_json(dst / "model.json")
    assert (cfg.hidden_size, cfg.n_layers, cfg.vocab_size) == (128, 2, 512)
    with L.LlamaTritonModel(dst, fmt="triton") as m:
        got = m.forward(ref["input_ids"])
    scale = float(np.max(np.abs(ref["logits"])))
    assert float(np.max(np.abs(got - ref["logits"]))) <= 1e-4 * scale


@needs("llt_convert")
def test_convert_errors(tmp_path):
    with pytest.raises(L.InvalidArgumentError):
        L.convert(ORACLE / "tiny-llama2" / "hf", tmp_path / "x", fmt="onnx")
    with pytest.raises(L.InvalidArgumentError):
        L.convert(ORACLE / "tiny-llama2" / "hf", tmp_path / "x", dtype="f7")
    with pytest.raises(L.LlamaTritonError):
        L.convert(tmp_path / "absent", tmp_path / "y", fmt="hf")
