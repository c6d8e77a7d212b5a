"""Llama-Triton for Python: the specification's classes over the C library (ctypes).

    from llama_triton import LlamaGenerator
    gen = LlamaGenerator("models/stories260K.gguf")
    print(gen.generate("Once upon a time", max_new_tokens=32))

Nothing is compiled here: the package loads libllama_triton.so (next to the package, from
$LLT_LIB, or from the repository's build/). numpy is used when present."""

__version__ = "0.1.0"

from .errors import (  # noqa: F401
    BatchError, CacheFullError, CancelledError, ClosedError, DeviceError, FileError, FormatError,
    InvalidArgumentError, LibraryNotFoundError, LlamaTritonError, MissingSymbolError,
    NotFoundError, OutOfMemoryError, StateError, UnsupportedError)
from .config import LlamaConfig  # noqa: F401
from .tokenizer import SentencePieceTokenizer, Tokenizer  # noqa: F401
from .model import LlamaTritonModel  # noqa: F401
from .kv_cache import KVPages, PageKVCache  # noqa: F401
from .generator import LlamaGenerator  # noqa: F401
from .chat import ChatSession, ChatTemplate  # noqa: F401
from .sampler import Sampler  # noqa: F401
from .util import convert, library_path, set_log_level, status_str  # noqa: F401
from ._device import cuda_device_count  # noqa: F401
from . import kernels  # noqa: F401
from .kernels import (  # noqa: F401
    apply_rotary, build_rotary_cache, page_attention, rmsnorm, triton_gemm)

__all__ = [
    "LlamaGenerator", "ChatTemplate", "ChatSession", "LlamaConfig", "LlamaTritonModel", "PageKVCache", "KVPages",
    "SentencePieceTokenizer", "Tokenizer", "Sampler", "kernels", "triton_gemm", "page_attention",
    "rmsnorm", "build_rotary_cache", "apply_rotary", "convert", "library_path", "cuda_device_count",
    "set_log_level", "status_str", "LlamaTritonError", "InvalidArgumentError", "FileError",
    "FormatError", "UnsupportedError", "OutOfMemoryError", "CacheFullError", "StateError",
    "DeviceError", "NotFoundError", "CancelledError", "ClosedError", "LibraryNotFoundError",
    "MissingSymbolError", "BatchError",
]
