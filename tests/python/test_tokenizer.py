"""Tokenizer / SentencePieceTokenizer against known answers, llama.cpp's tokenizer suite and
Google's sentencepiece (python3-sentencepiece) as an independent reference."""

import pytest

from conftest import FIXTURES, LLAMA2_TOK, LLAMA3_TOK, STORIES, needs
import llama_triton as L

OPEN = ("llt_tokenizer_open", "llt_tokenizer_encode", "llt_tokenizer_decode")
SUITE = FIXTURES / "tokenizers" / "llamacpp"


@needs(*OPEN)
def test_llama2_known_answer():
    with L.SentencePieceTokenizer(LLAMA2_TOK) as tok:
        ids = tok.encode("I believe the meaning of life is")
        assert ids == [1, 306, 4658, 278, 6593, 310, 2834, 338]
        assert tok.encode("I believe the meaning of life is", add_bos=False) == ids[1:]
        assert tok.encode("I believe", add_eos=True)[-1] == 2
        assert tok.decode(ids) == "I believe the meaning of life is"
        assert (tok.bos_id(), tok.eos_id(), tok.vocab_size(), len(tok)) == (1, 2, 32000, 32000)


@needs(*OPEN)
def test_llama3_known_answer():
    with L.Tokenizer(LLAMA3_TOK) as tok:
        ids = tok.encode("This is a test sentence.", add_bos=True, add_eos=True)
        assert ids == [128000, 2028, 374, 264, 1296, 11914, 13, 128001]
        assert tok.decode(ids[1:-1]) == "This is a test sentence."
        assert tok.encode("<|begin_of_text|>hi", add_bos=False, parse_special=True)[0] == 128000


TEXTS = ["Hello world", " Hello world", "Hello\n\nworld  !", "naïve café — 東京 🦙",
         "tab\there", "   leading spaces", "numbers 12345 and 3.14159", "", "a" * 300,
         "\u00e9\u0301 combining", "emoji family 👨‍👩‍👧"]


@needs(*OPEN)
@pytest.mark.parametrize("text", TEXTS)
def test_llama2_matches_sentencepiece(text):
    spm = pytest.importorskip("sentencepiece")
    ref = spm.SentencePieceProcessor(model_file=str(LLAMA2_TOK))
    with L.SentencePieceTokenizer(LLAMA2_TOK) as tok:
        ids = tok.encode(text, add_bos=False)
        assert ids == ref.encode(text)
        assert tok.decode(ids) == ref.decode(ids)


def _suite(name):
    inp = (SUITE / ("ggml-vocab-%s.gguf.inp" % name)).read_text(encoding="utf-8").split("\n__ggml_vocab_test__\n")
    out = (SUITE / ("ggml-vocab-%s.gguf.out" % name)).read_text(encoding="utf-8").split("\n")
    return [(t, [int(x) for x in o.split()]) for t, o in zip(inp, out)]


@needs(*OPEN)
@pytest.mark.parametrize("vocab", ["llama-spm", "phi-3", "gpt-2"])
def test_llamacpp_suite_from_gguf(vocab):
    cases = _suite(vocab)
    assert len(cases) >= 40
    with L.Tokenizer(SUITE / ("ggml-vocab-%s.gguf" % vocab)) as tok:
        bad = [(t, tok.encode(t, add_bos=False), want) for t, want in cases
               if tok.encode(t, add_bos=False) != want]
    assert not bad, bad[:3]


@needs(*OPEN)
def test_llamacpp_llama_bpe_suite_with_tiktoken_file():
    with L.Tokenizer(LLAMA3_TOK) as tok:
        bad = [t for t, want in _suite("llama-bpe") if tok.encode(t, add_bos=False) != want]
    assert not bad, bad[:3]


@needs(*OPEN, "llt_tokenizer_piece", "llt_tokenizer_is_eog", "llt_tokenizer_decode_next")
def test_pieces_eog_and_streaming_decode():
    with L.Tokenizer(STORIES) as tok:
        assert tok.vocab_size() == 512
        assert tok.is_eog(tok.eos_id()) and not tok.is_eog(tok.bos_id())
        assert tok.id_to_piece(tok.bos_id()) == "<s>"
        with pytest.raises(L.InvalidArgumentError):
            tok.id_to_piece(512)
        with pytest.raises(L.InvalidArgumentError):
            tok.id_to_piece("x")
    with L.Tokenizer(LLAMA2_TOK) as tok:
        text = "Once upon a time, 東京 🦙 lived"
        ids = tok.encode(text, add_bos=False)
        d = tok.decoder()
        pieces = [d.feed(i) for i in ids]
        assert "".join(pieces) == text
        # byte-fallback tokens of one character: nothing comes out until it is complete
        byte_tokens = [i for i in ids if tok.id_to_piece(i).startswith("<0x")]
        assert len(byte_tokens) >= 4 and "" in pieces


@needs(*OPEN)
def test_long_text_grows_the_buffers():
    with L.Tokenizer(LLAMA2_TOK) as tok:
        text = "🦙" * 500  # byte fallback: 4 tokens per character, more than len(text) + 8
        ids = tok.encode(text, add_bos=False)
        assert len(ids) > len(text.encode()) // 2
        assert tok.decode(ids) == text


@needs(*OPEN)
def test_bytes_input_and_numpy_ids(np):
    with L.Tokenizer(LLAMA2_TOK) as tok:
        ids = tok.encode("Hello".encode(), add_bos=False)
        assert tok.decode(np.array(ids, dtype=np.int64)) == "Hello"
        assert tok.decode([]) == ""


@needs(*OPEN)
def test_errors():
    with pytest.raises(L.FileError, match="nope"):
        L.Tokenizer(FIXTURES / "nope.model")
    with pytest.raises(L.FormatError):
        L.Tokenizer(FIXTURES / "README.md")
    with L.Tokenizer(LLAMA2_TOK) as tok:
        with pytest.raises(L.InvalidArgumentError):
            tok.decode([1, 999999])
        with pytest.raises(L.InvalidArgumentError):
            tok.decode(["a"])
        with pytest.raises(L.InvalidArgumentError):
            tok.decode([2 ** 40])
        with pytest.raises(L.InvalidArgumentError):
            tok.is_eog(2 ** 40)


@needs(*OPEN)
def test_use_after_close_and_double_close():
    tok = L.Tokenizer(LLAMA2_TOK)
    tok.close()
    assert tok.closed
    with pytest.raises(L.ClosedError):
        tok.encode("x")
    with pytest.raises(L.ClosedError):
        tok.close()
    with pytest.raises(L.ClosedError):
        with tok:
            pass
    with L.Tokenizer(LLAMA2_TOK) as t2:
        t2.close()  # closing inside the block is fine; leaving it does not close twice


@needs(*OPEN, "llt_tokenizer_decode_next")
def test_buffers_grow_when_the_first_guess_is_short(monkeypatch):
    from llama_triton import tokenizer as T
    text = "Once upon a time, 東京 🦙 lived a llama named Lily."
    with L.Tokenizer(LLAMA2_TOK) as tok:
        ids = tok.encode(text)
        d = tok.decoder()
        pieces = [d.feed(i) for i in ids[1:]]
        monkeypatch.setattr(T, "ENCODE_SLACK", 0)
        monkeypatch.setattr(T, "DECODE_BYTES_PER_ID", 0)
        monkeypatch.setattr(T, "STREAM_CAP", 1)
        assert tok.encode(text) == ids
        assert tok.decode(ids) == text
        d = tok.decoder()
        assert [d.feed(i) for i in ids[1:]] == pieces  # a retried step starts from the same state
