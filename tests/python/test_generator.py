"""LlamaGenerator: the acceptance check against llama2.c's greedy output, streaming, batches,
sampling parameters and errors."""

import gc
import threading

import pytest

from conftest import EXPECTED_GREEDY, ORACLE, REPO, STORIES, needs, read_safetensors
import llama_triton as L

GEN = ("llt_load_opts_init", "llt_model_load", "llt_gen_params_init", "llt_generate")
BATCH = GEN + ("llt_generate_batch",)


def _expected():
    text = EXPECTED_GREEDY.read_text(encoding="utf-8")
    return text[:-1] if text.endswith("\n") else text


@pytest.fixture(scope="module")
def gen():
    g = L.LlamaGenerator(STORIES)
    yield g
    g.close()


@needs(*GEN)
def test_acceptance_greedy_200_matches_llama2c(monkeypatch):
    # ACCEPTANCE. The fixture is llama2.c's `-n 200` output: BOS at position 0 (not printed),
    # then 200 sampled tokens; its text tokenises to exactly 200 tokens (checked below). The
    # issue wrote max_new_tokens=199, one short of that: 199 tokens give the fixture minus its
    # last piece, which is checked too.
    monkeypatch.chdir(REPO)  # the call, relative path included
    exp = _expected()
    with L.LlamaGenerator("models/stories260K.gguf") as g:
        assert len(g.tokenizer.encode(exp, add_bos=False)) == 200
        assert g.generate("", max_new_tokens=200, temperature=0) == exp
        text199 = g.generate("", max_new_tokens=199, temperature=0)
    assert exp.startswith(text199) and exp[len(text199):] == " she"


@needs(*GEN)
def test_streaming_yields_the_same_text_lazily(gen):
    it = gen.generate("", max_new_tokens=200, temperature=0, stream=True)
    first = next(it)
    assert isinstance(first, str) and _expected().startswith(first)
    rest = list(it)
    assert first + "".join(rest) == _expected()
    assert len(rest) > 50  # one piece per token, not one blob
    assert gen.last_stats["n_generated"] == 200 and gen.last_stats["n_prompt"] == 1


@needs(*GEN)
def test_leaving_a_stream_early_stops_generation(gen):
    it = gen.generate("Once upon a time", max_new_tokens=150, temperature=0, stream=True)
    pieces = [next(it) for _ in range(3)]
    it.close()
    assert list(it) == []
    # the generator is free again, and greedy is deterministic
    again = gen.generate("Once upon a time", max_new_tokens=150, temperature=0)
    assert again.startswith("".join(pieces))
    abandoned = gen.generate("Once", max_new_tokens=100, temperature=0, stream=True)
    next(abandoned)
    del abandoned
    gc.collect()
    assert gen.generate("Once", max_new_tokens=3, temperature=0)


@needs(*GEN)
def test_prompt_continues_greedy_text(gen):
    # llama2.c's greedy text starts with these words; prompting with them must continue it
    exp = _expected()
    head = "Once upon a time"
    assert exp.startswith(head)
    got = gen.generate(head, max_new_tokens=20, temperature=0)
    assert len(got) > 20 and got == exp[len(head):len(head) + len(got)]


@needs(*GEN)
def test_sampling_is_seeded(gen):
    a = gen.generate("Once", max_new_tokens=40, temperature=1.0, top_p=0.9, seed=123)
    b = gen.generate("Once", max_new_tokens=40, temperature=1.0, top_p=0.9, seed=123)
    c = gen.generate("Once", max_new_tokens=40, temperature=1.0, top_p=0.9, seed=124)
    assert a == b and a != c
    k1 = gen.generate("Once", max_new_tokens=30, temperature=5.0, top_k=1, seed=1)
    assert k1 == gen.generate("Once", max_new_tokens=30, temperature=0)  # top-1 is greedy
    assert gen.generate("Once", max_new_tokens=0) == ""
    assert gen.generate("Once", max_new_tokens=5, temperature=0, add_bos=False) is not None


@needs(*GEN)
def test_callback_exception_stops_the_c_loop(gen, monkeypatch):
    import ctypes
    real = ctypes.string_at
    calls = []

    def boom(ptr, n):
        calls.append(n)
        raise KeyError("from the callback")
    monkeypatch.setattr(ctypes, "string_at", boom)
    with pytest.raises(KeyError, match="from the callback"):
        gen.generate("Once", max_new_tokens=50, temperature=0)
    monkeypatch.setattr(ctypes, "string_at", real)
    assert len(calls) == 1


@needs(*GEN)
@pytest.mark.parametrize("kw", [dict(max_new_tokens=-2), dict(max_new_tokens=1.5),
                                dict(temperature=-0.1), dict(temperature="hot"),
                                dict(top_p=-0.1), dict(top_p=1.5), dict(top_k=-1),
                                dict(seed=-1), dict(seed=2 ** 64), dict(temperature=float("inf"))])
def test_parameter_errors(gen, kw):
    with pytest.raises(L.InvalidArgumentError):
        gen.generate("x", **kw)


@needs(*GEN)
def test_prompt_errors(gen):
    for bad in (None, 3, "a\0b"):
        with pytest.raises(L.InvalidArgumentError):
            gen.generate(bad)
    assert isinstance(gen.generate(b"Once", max_new_tokens=2, temperature=0), str)


@needs(*GEN)
def test_load_errors(tmp_path):
    with pytest.raises(L.FileError):
        L.LlamaGenerator(tmp_path / "absent.gguf")
    with pytest.raises(L.InvalidArgumentError):
        L.LlamaGenerator(STORIES, fmt="pt")


@needs(*GEN)
def test_close_and_use_after_close():
    g = L.LlamaGenerator(STORIES)
    s = g.generate("Once", max_new_tokens=100, temperature=0, stream=True)
    next(s)
    g.close()  # stops the running stream first
    with pytest.raises(L.ClosedError):
        g.generate("x")
    with pytest.raises(L.ClosedError):
        g.generate("x", stream=True)
    with pytest.raises(L.ClosedError):
        g.close()
    with L.LlamaGenerator(STORIES) as g2:
        assert g2.config.vocab_size == 512 and g2.tokenizer.vocab_size() == 512
    assert g2.model.closed


@needs(*GEN)
def test_hf_folder_generation_matches_reference_greedy(np):
    ref, meta = read_safetensors(ORACLE / "tiny-llama2" / "reference.safetensors")
    p = int(meta["prompt_len"])
    with L.LlamaTritonModel(ORACLE / "tiny-llama2" / "hf", no_cache=True) as m:
        ids = ref["input_ids"][:p].tolist()
        for want in ref["greedy"][:8]:  # greedy continuation, token by token via forward
            nxt = int(np.argmax(m.forward(ids)[-1]))
            assert nxt == int(want)
            ids.append(nxt)


@needs(*BATCH)
def test_batch_equals_single_greedy(gen):
    prompts = ["Once upon a time", "", "Lily", "The cat sat", "One day"]
    singles = [gen.generate(p, max_new_tokens=24, temperature=0) for p in prompts]
    assert gen.generate_batch(prompts, parallel=2, max_new_tokens=24, temperature=0) == singles
    assert gen.generate_batch(prompts, parallel=5, max_new_tokens=24, temperature=0) == singles
    assert singles[1] == _expected()[:len(singles[1])]


@needs(*BATCH)
def test_batch_streaming_and_seeds(gen):
    prompts = ["Once", "Tom"]
    events = list(gen.generate_batch(prompts, parallel=2, max_new_tokens=16, temperature=0, stream=True))
    assert {i for i, _ in events} == {0, 1}
    texts = ["".join(p for i, p in events if i == k) for k in range(2)]
    assert texts == gen.generate_batch(prompts, parallel=2, max_new_tokens=16, temperature=0)
    # prompt i is sampled with seed + i
    a = gen.generate_batch(["Once", "Once"], parallel=2, max_new_tokens=20, temperature=1.0, seed=50)
    assert a[0] == gen.generate("Once", max_new_tokens=20, temperature=1.0, seed=50)
    assert a[1] == gen.generate("Once", max_new_tokens=20, temperature=1.0, seed=51)


@needs(*BATCH)
def test_batch_errors(gen):
    with pytest.raises(L.InvalidArgumentError):
        gen.generate_batch("one string")
    with pytest.raises(L.InvalidArgumentError):
        gen.generate_batch(["a", None])
    with pytest.raises(L.InvalidArgumentError):
        gen.generate_batch(["a"], parallel=0)
    assert gen.generate_batch([], max_new_tokens=4) == []


@needs(*GEN)
def test_one_generation_at_a_time_across_threads(gen):
    out = {}

    def work(i):
        out[i] = gen.generate("Once", max_new_tokens=30, temperature=0)
    ts = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert len(set(out.values())) == 1


@needs(*GEN)
def test_unlimited_tokens_stop_at_the_end_of_the_story(gen):
    text = gen.generate("", max_new_tokens=-1, temperature=0)
    assert text.startswith(_expected()) and len(text) > len(_expected())
    assert gen.last_stats["n_generated"] > 200


@needs(*BATCH)
def test_batch_token_counts(gen):
    texts = gen.generate_batch(["Once", "Lily"], parallel=2, max_new_tokens=7, temperature=0)
    assert len(texts) == 2 and gen.last_token_counts == [7, 7]


@needs(*GEN, "llt_model_forward")
def test_model_calls_while_a_stream_is_open():
    with L.LlamaGenerator(STORIES) as g:
        it = g.generate("Once", max_new_tokens=60, temperature=0, stream=True)
        first = next(it)
        # this thread reads the stream: waiting for the model here would wait for itself
        with pytest.raises(L.StateError, match="stream"):
            g.model.forward([1, 2])
        with pytest.raises(L.StateError):
            g.generate("x", max_new_tokens=2)
        with pytest.raises(L.StateError):
            g.model.close()
        # another thread simply waits until the stream is done
        out = {}
        t = threading.Thread(target=lambda: out.update(logits=g.model.forward([1, 2])))
        t.start()
        rest = "".join(it)
        t.join(timeout=60)
        assert out["logits"].shape == (2, 512)
        assert first + rest == g.generate("Once", max_new_tokens=60, temperature=0)
        it2 = g.generate("Once", max_new_tokens=60, temperature=0, stream=True)
        next(it2)
        it2.close()
        assert g.model.forward([1]).shape == (1, 512)  # a closed stream frees the model
