"""The specification's `from api.inference import LlamaGenerator`.

The classes are the llama_triton package's (python/llama_triton); this module only gives
them the specification's import path."""

from llama_triton import (  # noqa: F401
    LlamaConfig, LlamaGenerator, LlamaTritonModel, PageKVCache, SentencePieceTokenizer)
from llama_triton.kernels import (  # noqa: F401
    apply_rotary, build_rotary_cache, page_attention, rmsnorm, triton_gemm)

__all__ = ["LlamaGenerator", "LlamaConfig", "LlamaTritonModel", "PageKVCache",
           "SentencePieceTokenizer", "triton_gemm", "page_attention", "rmsnorm",
           "build_rotary_cache", "apply_rotary"]
