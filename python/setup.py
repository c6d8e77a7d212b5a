"""Installs the llama_triton package (pure Python over ctypes) with the built C library as
package data: `pip install ./python` after `make`.

The library is taken from, in order: $LLT_LIB, python/llama_triton/libllama_triton.so, the
repository's build/libllama_triton.so. Without one the package still installs and looks for
the library at run time ($LLT_LIB). Only setuptools is needed (Debian's python3-setuptools;
with python3-wheel present pip builds without network access)."""

import os
import shutil
from pathlib import Path

from setuptools import Distribution, setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
LIB = "libllama_triton.so"


def find_library():
    for p in (os.environ.get("LLT_LIB"), HERE / "llama_triton" / LIB, HERE.parent / "build" / LIB):
        if p and Path(p).is_file():
            return Path(p)
    return None


class BuildWithLibrary(build_py):
    """build_py that also copies the C library into the built package."""

    def run(self):
        super().run()
        lib = find_library()
        if lib is None:
            self.announce("llama_triton: no %s found; installing without it" % LIB, level=3)
            return
        dst = Path(self.build_lib) / "llama_triton" / LIB
        dst.parent.mkdir(parents=True, exist_ok=True)
        if lib.resolve() != dst.resolve():
            shutil.copyfile(lib, dst)


class BinaryDistribution(Distribution):
    """The wheel carries a native library, so it is tagged for this platform."""

    def has_ext_modules(self):
        return find_library() is not None


setup(
    name="llama_triton",
    version="0.1.0",
    description="Llama-Triton: Llama inference in C and CUDA, Python API over ctypes",
    license="MIT",
    python_requires=">=3.8",
    packages=["llama_triton"],
    package_data={"llama_triton": [LIB]},
    extras_require={"numpy": ["numpy"]},
    entry_points={"console_scripts": ["llama-triton-py = llama_triton.__main__:main"]},
    cmdclass={"build_py": BuildWithLibrary},
    distclass=BinaryDistribution,
    zip_safe=False,
)
