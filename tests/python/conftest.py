"""Shared test set-up: import the in-repo package, locate fixtures, and mark tests whose C
functions the loaded library does not export yet (xfail, never skip: when the symbol lands
the test runs; a library that cannot be loaded at all fails every test clearly)."""

import json
import os
import struct
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "python"))

FIXTURES = Path(os.environ.get("LLT_FIXTURES", REPO / "tests" / "fixtures"))
STORIES = REPO / "models" / "stories260K.gguf"
EXPECTED_GREEDY = FIXTURES / "models" / "stories260K" / "expected_greedy_200.txt"
ORACLE = FIXTURES / "oracle"
LLAMA2_TOK = FIXTURES / "tokenizers" / "llama2" / "tokenizer.model"
LLAMA3_TOK = FIXTURES / "tokenizers" / "llama3" / "tokenizer.model"


def chat_templates():
    """../shared/fixtures/chat_templates: $LLT_SHARED/fixtures/chat_templates, else the first
    shared/ above the checkout (beside it in CI, above a worktree). A function, not a constant:
    a checkout without ../shared fails only the tests that need the templates, by name."""
    roots = [Path(os.environ["LLT_SHARED"])] if os.environ.get("LLT_SHARED") else [p / "shared" for p in REPO.parents]
    for r in roots:
        d = r / "fixtures" / "chat_templates"
        if d.is_dir():
            return d
    raise RuntimeError("../shared/fixtures/chat_templates not found (set LLT_SHARED)")


def _missing(symbols):
    from llama_triton import _lib
    from llama_triton.errors import LibraryNotFoundError
    try:
        lib = _lib.lib()
    except LibraryNotFoundError:
        return []  # let the test run and fail on the missing library itself
    return [s for s in symbols if not lib.has(s)]


def needs(*symbols):
    """xfail (not run) while the library lacks any of `symbols`; the reason names them."""
    missing = _missing(symbols)
    return pytest.mark.xfail(bool(missing), run=False, strict=True,
                             reason="C symbol(s) not in libllama_triton.so yet: " + ", ".join(missing))


def read_safetensors(path):
    """{name: numpy array} and metadata of a safetensors file, read here with numpy alone
    (u64 header length, JSON header, raw little-endian data), independent of the C reader."""
    import numpy as np
    raw = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    kinds = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "I32": np.int32,
             "F16": np.float16}
    base = 8 + n
    out = {}
    for name, t in header.items():
        a, b = t["data_offsets"]
        out[name] = np.frombuffer(raw[base + a:base + b], dtype=kinds[t["dtype"]]).reshape(t["shape"])
    return out, meta


@pytest.fixture
def np():
    import numpy
    return numpy

