"""`pip install ./python` works offline and the installed package carries the library."""

import os
import shutil
import subprocess
import sys

import pytest

from conftest import REPO
from llama_triton import _lib


def test_pip_install_offline_bundles_the_library(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(REPO / "python", src, ignore=shutil.ignore_patterns("build", "*.egg-info",
                                                                       "__pycache__", "*.so"))
    target = tmp_path / "site"
    env = dict(os.environ, LLT_LIB=library_in_use(), PIP_NO_INDEX="1")
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-index", "--no-deps",
                        "--target", str(target), str(src)], env=env, capture_output=True,
                       text=True, timeout=300)
    if r.returncode and "No module named pip" in r.stderr:
        pytest.fail("python3-pip is not installed: %s" % r.stderr)
    assert r.returncode == 0, r.stdout + r.stderr
    bundled = target / "llama_triton" / _lib.LIB_NAME
    assert bundled.is_file()
    env = {k: v for k, v in os.environ.items() if k not in ("LLT_LIB", "PYTHONPATH")}
    env["PYTHONPATH"] = str(target)
    r = subprocess.run([sys.executable, "-W", "ignore", "-c",
                        "import llama_triton as L; print(L.library_path()); print(L.status_str(6))"],
                       env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [str(bundled), "KV pool full"]


def library_in_use():
    return str(_lib.lib().path)
