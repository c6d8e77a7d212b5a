"""The README's Python examples run as written, from the repository root."""

import os
import re
import subprocess
import sys

from conftest import REPO, needs

GEN = ("llt_load_opts_init", "llt_model_load", "llt_gen_params_init", "llt_generate",
       "llt_generate_batch", "llt_model_forward", "llt_tokenizer_open", "llt_gemm_f32")


def _section():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    start = text.index("## Python")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


def test_readme_has_python_examples():
    sec = _section()
    assert "```python" in sec and "python3 -m llama_triton" in sec


@needs(*GEN)
def test_readme_python_block_runs():
    blocks = re.findall(r"```python\n(.*?)```", _section(), re.S)
    env = dict(os.environ)
    for code in blocks:
        r = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                           text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        assert "[1, 306, 4658, 278" in r.stdout and "(3, 512)" in r.stdout


@needs(*GEN)
def test_readme_shell_example_runs():
    lines = re.findall(r"```sh\n(.*?)```", _section(), re.S)[0].strip().splitlines()
    for line in lines:
        r = subprocess.run(line, shell=True, cwd=REPO, capture_output=True, text=True, timeout=300,
                           env=dict(os.environ))
        assert r.returncode == 0, r.stderr
        assert len(r.stdout.strip()) > 10
