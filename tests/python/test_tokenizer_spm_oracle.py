"""Our tokenizer against an independent oracle: Debian's python3-sentencepiece (Google's C++
library). The Llama 2 tokenizer.model on our own strings (Chinese, emoji, code, runs of
whitespace, numbers, mixed scripts), encode and decode; then models trained on the spot by
sentencepiece itself (unigram and BPE with byte fallback, both with the default nmt_nfkc
normaliser and remove_extra_whitespaces), which exercise Viterbi, the charsmap and the
whitespace rules that the Llama 2 model does not use. Goes through the CLI ($LLT_CLI)."""

import io
import os
import random
import subprocess
from pathlib import Path

import pytest

spm = pytest.importorskip("sentencepiece")

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(os.environ.get("LLT_FIXTURES", REPO / "tests" / "fixtures"))
LLAMA2 = FIXTURES / "tokenizers" / "llama2" / "tokenizer.model"
CLI = os.environ.get("LLT_CLI", str(REPO / "build" / "llama-triton"))

STRINGS = [
    "I believe the meaning of life is",
    "我想在苹果公司工作。北京欢迎你！",
    "日本語のテキストと한국어 텍스트",
    "emoji: 🦙🚀😶‍🌫️ ✅ 👍🏽 family 👨‍👩‍👧‍👦",
    "def f(x):\n\treturn x**2  # square\n\nprint(f(3))",
    "int main(void) { return 0; }\r\n",
    "a  b   c    d\t\te\n\n\nf",
    "   leading and trailing   ",
    "\n",
    " ",
    "0 1 12 123 1234 12345 3.14159 -42 1e-5 0x1F 1,000,000",
    "Mixed: café naïve Zürich Ελληνικά русский עברית العربية हिन्दी",
    "ＡＢＣ full-width, ① circled, ﬁ ligature, ｶﾀｶﾅ half-width",
    "<s> </s> <unk> [INST] not special here [/INST]",
    "tabs\tand\u00a0non-breaking\u2003spaces\u3000ideographic",
    "Zero\u200bwidth joiner\u200d and BOM\ufeff",
    "'quotes' \"double\" `back` ... !!! ???",
]


def cli(*args, stdin_text=None):
    r = subprocess.run([CLI, *args], capture_output=True)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    return r.stdout


def our_ids(model, text, tmp_path):
    f = tmp_path / "text.txt"
    f.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    out = cli("tokenize", str(model), "--no-bos", "-f", str(f))
    return [int(x) for x in out.decode().strip().strip("[]").split(",") if x.strip()]


def our_text(model, ids):
    if not ids:
        return ""
    return cli("detokenize", str(model), "--ids", ",".join(map(str, ids))).decode("utf-8")


def test_cli_exists():
    assert Path(CLI).exists(), f"LLT_CLI={CLI} not built"


@pytest.mark.parametrize("text", STRINGS)
def test_llama2_matches_sentencepiece(text, tmp_path):
    sp = spm.SentencePieceProcessor(model_file=str(LLAMA2))
    want = sp.encode(text)
    assert our_ids(LLAMA2, text, tmp_path) == want
    assert our_text(LLAMA2, want) == sp.decode(want)


# Invalid UTF-8: sentencepiece reads each malformed byte as U+FFFD; so must we.
BAD_UTF8 = [b"a\xffb", b"\xe2\x82 cut", b"\xc0\xaf overlong", b"\xed\xa0\x80 surrogate", b"end\xf0\x9f"]


@pytest.mark.parametrize("raw", BAD_UTF8)
def test_llama2_invalid_utf8_matches_sentencepiece(raw, tmp_path):
    sp = spm.SentencePieceProcessor(model_file=str(LLAMA2))
    assert our_ids(LLAMA2, raw, tmp_path) == sp.encode(raw)


def _corpus():
    words = ("the quick brown fox jumps over a lazy dog once upon time there was little girl named lily "
             "she loved to play outside in park with her friends sun shining birds singing").split()
    tails = [".", "!", "?", ", 123", " 4567.", " ＡＢＣ", " ①②", " ﬁne", " 東京タワー", " ｶﾀｶﾅ", "  double  space"]
    r = random.Random(7)
    return [" ".join(r.choice(words) for _ in range(r.randint(3, 15))) + r.choice(tails) for _ in range(3000)]


TRAINED_STRINGS = STRINGS + [
    "the quick brown fox",
    "  lily   loved\tthe   park  ",
    "ＡＢＣ ① ﬁne ｶﾀｶﾅ 東京タワー",
    "unknown letters: ЖЖЖ qqq xyzzy ∑∫",
    "",
]


@pytest.fixture(scope="module", params=["unigram", "bpe"])
def trained(request, tmp_path_factory):
    mt = request.param
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(_corpus()), model_writer=buf, vocab_size=600,
                                   model_type=mt, byte_fallback=(mt == "bpe"), hard_vocab_limit=False,
                                   minloglevel=2, num_threads=1)
    path = tmp_path_factory.mktemp("spm") / f"{mt}.model"
    path.write_bytes(buf.getvalue())
    return path, spm.SentencePieceProcessor(model_file=str(path))


@pytest.mark.parametrize("text", TRAINED_STRINGS)
def test_trained_models_match_sentencepiece(trained, text, tmp_path):
    path, sp = trained
    want = sp.encode(text)
    assert our_ids(path, text, tmp_path) == want
    assert our_text(path, want) == sp.decode(want)
