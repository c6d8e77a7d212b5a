"""`llama-triton tokenize` / `detokenize`: output format, flags, errors ($LLT_CLI)."""

import json
import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(os.environ.get("LLT_FIXTURES", REPO / "tests" / "fixtures"))
CLI = os.environ.get("LLT_CLI", str(REPO / "build" / "llama-triton"))
LLAMA2 = str(FIXTURES / "tokenizers" / "llama2" / "tokenizer.model")
LLAMA3 = str(FIXTURES / "tokenizers" / "llama3" / "tokenizer.model")
STORIES = str(FIXTURES / "models" / "stories260K" / "stories260K.gguf")


def run(*args, stdin=None):
    return subprocess.run([CLI, *args], capture_output=True, input=stdin)


def ids(*args, stdin=None):
    r = run("tokenize", *args, stdin=stdin)
    assert r.returncode == 0, r.stderr.decode()
    out = r.stdout.decode()
    assert out.endswith("\n") and out.count("\n") == 1  # one line
    return json.loads(out)


def test_known_answers():
    assert ids(LLAMA2, "-p", "I believe the meaning of life is") == [1, 306, 4658, 278, 6593, 310, 2834, 338]
    assert ids(LLAMA3, "--eos", "-p", "This is a test sentence.") == [128000, 2028, 374, 264, 1296, 11914, 13, 128001]
    # the model folder and the GGUF vocabulary give the same ids
    assert ids(str(FIXTURES / "tokenizers" / "llama2"), "--no-bos", "-p", "Hello world") == [15043, 3186]
    assert ids(str(FIXTURES / "tokenizers" / "llamacpp" / "ggml-vocab-llama-spm.gguf"), "--no-bos", "-p",
               "Hello world") == [15043, 3186]


def test_flags_and_files(tmp_path):
    assert ids(LLAMA2, "--no-bos", "-p", "") == []
    assert ids(LLAMA2, "-p", "") == [1]
    f = tmp_path / "t.txt"
    f.write_bytes("I believe the meaning of life is".encode())
    assert ids(LLAMA2, "-f", str(f)) == [1, 306, 4658, 278, 6593, 310, 2834, 338]
    assert ids(LLAMA2, "-f", "-", stdin=b"I believe") == [1, 306, 4658]
    chat = "<|start_header_id|>user<|end_header_id|>"
    assert ids(LLAMA3, "--no-bos", "--parse-special", "-p", chat) == [128006, 882, 128007]
    assert 128006 not in ids(LLAMA3, "--no-bos", "-p", chat)
    # a prompt that starts with '-' is text, not a flag
    assert ids(STORIES, "--no-bos", "-p", "-x") == ids(STORIES, "--no-bos", "-f", "-", stdin=b"-x")


def test_detokenize():
    r = run("detokenize", LLAMA3, "--ids", "128000,2028,374,264,1296,11914,13,128001")
    assert r.returncode == 0 and r.stdout == b"This is a test sentence."
    r = run("detokenize", LLAMA2, "--ids", "1,306,4658,278,6593,310,2834,338")
    assert r.stdout == b"I believe the meaning of life is"


def test_errors_name_the_problem():
    r = run("tokenize", LLAMA2, "--bogus", "-p", "x")
    assert r.returncode == 2 and b"--bogus" in r.stderr
    r = run("tokenize", LLAMA2, "-p")
    assert r.returncode == 2 and b"-p needs a value" in r.stderr
    r = run("tokenize", LLAMA2)
    assert r.returncode == 2 and b"-p TEXT or -f FILE" in r.stderr
    r = run("tokenize", "-p", "x")
    assert r.returncode == 2 and b"MODEL_OR_TOKENIZER" in r.stderr
    r = run("tokenize", "/nonexistent/tokenizer.model", "-p", "x")
    assert r.returncode == 1 and b"/nonexistent" in r.stderr
    r = run("detokenize", LLAMA2, "--ids", "1,x")
    assert r.returncode == 2 and b"1,x" in r.stderr
    r = run("detokenize", LLAMA2, "--ids", "99999")
    assert r.returncode == 1 and b"99999" in r.stderr
    r = run("detokenize", LLAMA2)
    assert r.returncode == 2 and b"--ids" in r.stderr
    r = run("detokenize", LLAMA2, "--ids", "1", "--what")
    assert r.returncode == 2 and b"--what" in r.stderr


def test_help():
    for cmd in ("tokenize", "detokenize"):
        r = run(cmd, "--help")
        assert r.returncode == 0 and r.stdout.startswith(b"usage: llama-triton " + cmd.encode())
