"""python -m llama_triton: the specification's main.py, same flags and output as the C CLI."""

import json
import os
import subprocess
import sys

import pytest

from conftest import EXPECTED_GREEDY, REPO, STORIES, needs

GEN = ("llt_load_opts_init", "llt_model_load", "llt_gen_params_init", "llt_generate")


def run_py(*args, timeout=300):
    env = dict(os.environ, PYTHONPATH=str(REPO / "python"))
    return subprocess.run([sys.executable, "-m", "llama_triton", *map(str, args)], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=timeout)


@needs(*GEN)
def test_greedy_story_matches_llama2c():
    r = run_py(STORIES, "-p", "", "--max_tokens", 200, "--temperature", 0)  # llama2.c -n 200
    assert r.returncode == 0, r.stderr
    exp = EXPECTED_GREEDY.read_text(encoding="utf-8").rstrip("\n")
    assert r.stdout.rstrip("\n") == exp


@needs(*GEN)
def test_same_output_as_the_c_cli():
    cli = _c_cli()
    args = ["models/stories260K.gguf", "-p", "Once upon a time", "--max_tokens", "40",
            "--temperature", "0.8", "--seed", "42"]
    c = subprocess.run([cli, *args], cwd=REPO, capture_output=True, text=True, timeout=300)
    py = run_py(*args)
    assert c.returncode == 0 and py.returncode == 0, c.stderr + py.stderr
    assert py.stdout.strip() and py.stdout.strip() == c.stdout.strip()


def _c_cli():
    cli = os.environ.get("LLT_CLI") or str(REPO / "build" / "llama-triton")
    assert os.path.isfile(cli), "LLT_CLI not set and %s absent" % cli
    return cli


def _both(*args):
    """(C CLI result, Python CLI result) for the same arguments, from the repo root."""
    c = subprocess.run([_c_cli(), *map(str, args)], cwd=REPO, capture_output=True, text=True,
                       timeout=300)
    return c, run_py(*args)


@needs(*GEN, "llt_generate_batch")
def test_prompts_file_json_lines_like_the_c_cli(tmp_path):
    f = tmp_path / "prompts.txt"
    f.write_text('Once upon a time\n\nLily said "hi"\r\nTom\n')
    c, py = _both(STORIES, "--prompts-file", f, "-n", 10, "--temperature", 0, "--parallel", 2)
    assert c.returncode == 0 and py.returncode == 0, c.stderr + py.stderr
    lines = [json.loads(x) for x in py.stdout.splitlines()]
    assert [x["index"] for x in lines] == [0, 1, 2, 3]  # the empty line is a prompt too
    assert all(x["n_tokens"] == 10 for x in lines if x["index"] != 1)
    assert py.stdout == c.stdout


@needs(*GEN)
def test_prompt_file_flags_and_unlimited_tokens(tmp_path):
    f = tmp_path / "prompt.txt"
    f.write_text("Once upon a time")
    for args in (("-f", f, "-n", 20, "--temperature", 0),
                 ("-p", "Lily", "-n", -1, "--temperature", 0, "--page_size", 8),
                 ("-p", "Tom", "--no-bos", "-n", 5, "--temperature", 0, "--threads", 1),
                 ("-p", "<s>Tom", "--parse-special", "-n", 5, "--top_k", 3, "--top_p", 0.5,
                  "--seed", 7, "--max_pages", 64),
                 ("-p", "Lily", "-n", 20, "--temperature", 0, "--kv_dtype", "bf16", "--device", "cpu")):
        c, py = _both(STORIES, *args)
        assert c.returncode == 0 and py.returncode == 0, (args, c.stderr, py.stderr)
        assert py.stdout == c.stdout, args
        assert "generation:" in py.stderr and "tokens/s" in py.stderr


def test_usage_errors():
    r = run_py()
    assert r.returncode == 2 and "usage" in r.stderr
    r = run_py(STORIES, "--max_tokens", "many")
    assert r.returncode == 2 and "max_tokens" in r.stderr
    r = run_py(STORIES, "--fmt", "onnx")
    assert r.returncode == 2
    r = run_py("--help")
    assert r.returncode == 0 and "--max_tokens" in r.stdout and "--fmt" in r.stdout


@needs(*GEN)
def test_runtime_errors_exit_1(tmp_path):
    r = run_py(tmp_path / "absent.gguf", "-p", "x")
    assert r.returncode == 1 and "absent.gguf" in r.stderr and r.stdout == ""
    r = run_py(STORIES, "--prompts-file", tmp_path / "absent.txt")
    assert r.returncode == 1 and "absent.txt" in r.stderr
    r = run_py(STORIES, "-f", tmp_path / "absent-prompt.txt")
    assert r.returncode == 1 and "absent-prompt.txt" in r.stderr


def test_main_in_process(capsys):
    from llama_triton.__main__ import main
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and "llama-triton 0.1.0" in capsys.readouterr().out


@needs(*GEN, "llt_generate_batch")
def test_main_in_process_generates(capsys, tmp_path):
    from llama_triton.__main__ import main
    exp = EXPECTED_GREEDY.read_text(encoding="utf-8")
    assert main([str(STORIES), "-p", "", "-n", "12", "--temperature", "0"]) == 0
    out = capsys.readouterr().out
    assert len(out) > 20 and exp.startswith(out.rstrip("\n"))
    f = tmp_path / "p.txt"
    f.write_text("Once\nLily\n")
    assert main([str(STORIES), "--prompts-file", str(f), "-n", "4", "--temperature", "0"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
    assert main([str(tmp_path / "absent.gguf")]) == 1
    assert "absent.gguf" in capsys.readouterr().err
