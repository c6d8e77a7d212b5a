"""The ctypes mirrors match the C structs field for field, and the library is found where
the package documentation says."""

import ctypes
import os
import subprocess
import sys

import pytest

from conftest import REPO, needs
from llama_triton import _lib, _structs as S
import llama_triton as L


@needs("llt_abi_sizeof", "llt_abi_offsetof")
@pytest.mark.parametrize("name", sorted(S.MIRRORS))
def test_struct_layout_matches_c(name):
    lib = _lib.lib()
    cls = S.MIRRORS[name]
    assert ctypes.sizeof(cls) == lib.fn("llt_abi_sizeof")(name.encode())
    for field, _ in cls._fields_:
        c_off = lib.fn("llt_abi_offsetof")(name.encode(), field.encode())
        assert c_off != ctypes.c_size_t(-1).value, "C does not know %s.%s" % (name, field)
        assert getattr(cls, field).offset == c_off, "%s.%s" % (name, field)


@needs("llt_config_sizeof", "llt_abi_sizeof", "llt_abi_offsetof")
def test_abi_lookup_of_unknown_names():
    lib = _lib.lib()
    assert lib.fn("llt_config_sizeof")() == ctypes.sizeof(S.Config)
    assert lib.fn("llt_abi_sizeof")(b"llt_nothing") == 0
    assert lib.fn("llt_abi_sizeof")(None) == 0
    assert lib.fn("llt_abi_offsetof")(b"llt_config", b"nothing") == ctypes.c_size_t(-1).value
    assert lib.fn("llt_abi_offsetof")(b"llt_config", None) == ctypes.c_size_t(-1).value


def test_every_prototype_names_a_header_function():
    header = (REPO / "include" / "llama_triton.h").read_text()
    header += (REPO / "src" / "engine" / "batch.h").read_text()  # llt_generate_batch_each
    header += (REPO / "src" / "kv" / "paged_cache.h").read_text()  # llt_kv_cache_create_with
    header += (REPO / "src" / "backend" / "cuda" / "cuda_backend.h").read_text()  # GPU kernels
    for name in _lib.PROTOTYPES:
        assert name + "(" in header, name


def test_library_path_and_lookup_order(monkeypatch, tmp_path):
    assert os.path.isfile(L.library_path())
    monkeypatch.setenv("LLT_LIB", str(tmp_path / "x.so"))
    assert _lib.candidate_paths() == [tmp_path / "x.so"]
    monkeypatch.delenv("LLT_LIB")
    pkg = REPO / "python" / "llama_triton"
    assert _lib.candidate_paths() == [pkg / _lib.LIB_NAME, REPO / "build" / _lib.LIB_NAME]


def _run_py(code, env_extra):
    env = dict(os.environ, PYTHONPATH=str(REPO / "python"), **env_extra)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=120)


def test_missing_library_is_a_python_error(tmp_path):
    r = _run_py("import llama_triton as L\n"
                "try:\n    L.LlamaConfig()\n"
                "except L.LibraryNotFoundError as e:\n    print('caught', e)\n",
                {"LLT_LIB": str(tmp_path / "none.so")})
    assert r.returncode == 0, r.stderr
    assert "caught" in r.stdout and "none.so" in r.stdout and "LLT_LIB" in r.stdout


def test_unloadable_library_is_a_python_error(tmp_path):
    bad = tmp_path / "libllama_triton.so"
    bad.write_bytes(b"not an ELF file")
    r = _run_py("import llama_triton as L\n"
                "try:\n    L.status_str(0)\n"
                "except L.LibraryNotFoundError as e:\n    print('caught', e)\n",
                {"LLT_LIB": str(bad)})
    assert r.returncode == 0, r.stderr
    assert "caught cannot load" in r.stdout


def test_missing_symbol_is_a_python_error():
    lib = _lib.lib()
    assert not lib.has("llt_no_such_function")
    _lib.PROTOTYPES["llt_no_such_function"] = (None, [])
    try:
        with pytest.raises(L.MissingSymbolError, match="llt_no_such_function"):
            lib.fn("llt_no_such_function")
    finally:
        del _lib.PROTOTYPES["llt_no_such_function"]


def test_partially_linked_library_loads_lazily(tmp_path):
    # a library that references a symbol nobody defines (a half-built tree) still loads, with
    # a warning; its complete functions work
    src = tmp_path / "partial.c"
    src.write_text("int llt_missing(void);\n"
                   "int llt_uses_missing(void) { return llt_missing(); }\n"
                   "int llt_fine(void) { return 42; }\n")
    so = tmp_path / "libpartial.so"
    r = subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(so), str(src)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    with pytest.warns(RuntimeWarning, match="incompletely linked"):
        lib = _lib.Library(so)
    assert "llt_missing" in lib.unresolved and lib.has("llt_fine")
    assert lib._dll.llt_fine() == 42
    with pytest.raises(L.LibraryNotFoundError):
        _lib.Library(tmp_path / "absent.so")
