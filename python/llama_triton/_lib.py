"""Finds and loads libllama_triton.so and declares the C prototypes.

Search order: $LLT_LIB (a file path; no fallback when set), the package folder (the .so is
package data after `pip install ./python`), then build/ of the repository this package sits
in (python/llama_triton/ -> ../../build/). Functions are resolved on first use, so a library
that lacks one (an older build) still loads; calling the absent function raises
MissingSymbolError naming it."""

import ctypes as C
import os
import threading
import warnings
from pathlib import Path

from . import _structs as S
from .errors import LibraryNotFoundError, MissingSymbolError, error_for_status

LIB_NAME = "libllama_triton.so"

_p = C.c_void_p
_i32 = C.c_int32
_i64 = C.c_int64
_sz = C.c_size_t
_f32p = C.POINTER(C.c_float)
_i32p = C.POINTER(C.c_int32)
_charp = C.POINTER(C.c_char)
_err = C.POINTER(S.Error)
_st = C.c_int  # llt_status

# name -> (restype, argtypes); functions returning llt_status take llt_error* last.
PROTOTYPES = {
    "llt_status_str": (C.c_char_p, [S.c_enum]),
    "llt_log_set": (None, [S.LOG_FN, _p, S.c_enum]),
    "llt_dtype_name": (C.c_char_p, [S.c_enum]),
    "llt_dtype_from_name": (C.c_bool, [C.c_char_p, C.POINTER(S.c_enum)]),
    "llt_abi_sizeof": (_sz, [C.c_char_p]),
    "llt_abi_offsetof": (_sz, [C.c_char_p, C.c_char_p]),
    "llt_config_sizeof": (_sz, []),
    "llt_config_init": (None, [C.POINTER(S.Config)]),
    "llt_config_from_json": (_st, [C.c_char_p, C.POINTER(S.Config), _err]),
    "llt_config_to_json": (_st, [C.POINTER(S.Config), C.c_char_p, _err]),
    "llt_config_validate": (_st, [C.POINTER(S.Config), _err]),
    "llt_tokenizer_open": (_st, [C.c_char_p, C.POINTER(_p), _err]),
    "llt_tokenizer_free": (None, [_p]),
    "llt_tokenizer_vocab_size": (_i32, [_p]),
    "llt_tokenizer_bos": (_i32, [_p]),
    "llt_tokenizer_eos": (_i32, [_p]),
    "llt_tokenizer_is_eog": (C.c_bool, [_p, _i32]),
    "llt_tokenizer_encode": (_st, [_p, C.c_char_p, _sz, C.c_uint, _i32p, _sz,
                                   C.POINTER(_sz), _err]),
    "llt_tokenizer_decode": (_st, [_p, _i32p, _sz, _charp, _sz, C.POINTER(_sz), _err]),
    "llt_tokenizer_decode_next": (_st, [_p, C.POINTER(S.DetokState), _i32, _charp, _sz,
                                        C.POINTER(_sz), _err]),
    "llt_tokenizer_piece": (C.c_char_p, [_p, _i32]),
    "llt_load_opts_init": (None, [C.POINTER(S.LoadOpts)]),
    "llt_model_load": (_st, [C.c_char_p, C.POINTER(S.LoadOpts), C.POINTER(_p), _err]),
    "llt_model_random": (_st, [C.POINTER(S.Config), C.c_uint64, C.POINTER(S.LoadOpts),
                               C.POINTER(_p), _err]),
    "llt_model_free": (None, [_p]),
    "llt_model_config": (C.POINTER(S.Config), [_p]),
    "llt_model_tokenizer": (_p, [_p]),
    "llt_model_device": (C.c_char_p, [_p, C.POINTER(C.c_char_p)]),
    "llt_device_auto": (C.c_char_p, [C.POINTER(C.c_char_p)]),
    "llt_model_forward": (_st, [_p, _i32p, _sz, _f32p, _f32p, _f32p, _err]),
    "llt_model_kv_cache": (_p, [_p]),
    "llt_model_decode": (_st, [_p, C.POINTER(S.Batch), _f32p, _i32p, _err]),
    "llt_kv_cache_create": (_st, [C.POINTER(S.KVCacheOpts), C.POINTER(_p), _err]),
    "llt_kv_cache_free": (None, [_p]),
    "llt_kv_seq_create": (_st, [_p, _i32p, _err]),
    "llt_kv_seq_fork": (_st, [_p, _i32, _i32p, _err]),
    "llt_kv_seq_free": (None, [_p, _i32]),
    "llt_kv_seq_len": (_i32, [_p, _i32]),
    "llt_kv_pages_in_use": (_i32, [_p]),
    "llt_kv_pages_free": (_i32, [_p]),
    "llt_kv_cache_allocate": (_st, [_p, _i32, _i32, _f32p, _f32p, _i32, _err]),
    "llt_kv_cache_get_pages": (_st, [_p, _i32, _i32, C.POINTER(S.KVPages), _err]),
    "llt_gemm_f32": (None, [_f32p, _f32p, _f32p, _i64, _i64, _i64]),
    "llt_rmsnorm_f32": (None, [_f32p, _f32p, _f32p, _i64, _i64, C.c_float]),
    "llt_rotary_build": (_st, [C.c_float, _i32, _i32, _f32p, _f32p, _err]),
    "llt_rotary_apply": (None, [_f32p, _i32, _i32, _f32p, _f32p, _i32]),
    "llt_page_attention_f32": (_st, [_f32p, _i32, C.POINTER(S.KVPages), C.c_float, _f32p,
                                     _err]),
    "llt_sampler_create": (_st, [C.POINTER(S.SamplerParams), _i32, C.POINTER(_p), _err]),
    "llt_sampler_free": (None, [_p]),
    "llt_sampler_sample": (_i32, [_p, _f32p]),
    "llt_gen_params_init": (None, [C.POINTER(S.GenParams)]),
    "llt_template_parse": (_st, [C.c_char_p, _sz, C.POINTER(_p), _err]),
    "llt_template_render": (_st, [_p, C.c_char_p, _sz, C.POINTER(S.ChatOpts), C.POINTER(_p),
                                  C.POINTER(_sz), _err]),
    "llt_template_free": (None, [_p]),
    "llt_chat_template_from_path": (_st, [C.c_char_p, C.POINTER(_p), C.POINTER(_p), C.POINTER(_p), _err]),
    "llt_chat_create": (_st, [_p, C.POINTER(_p), _err]),
    "llt_chat_free": (None, [_p]),
    "llt_chat_turn": (_st, [_p, C.c_char_p, _sz, C.POINTER(S.GenParams), S.TOKEN_CB, _p,
                            C.POINTER(S.GenStats), _err]),
    "llt_chat_reset": (None, [_p]),
    "llt_chat_n_cached": (_i32, [_p]),
    "llt_chat_n_reused": (_i32, [_p]),
    "llt_generate": (_st, [_p, C.c_char_p, C.POINTER(S.GenParams), S.TOKEN_CB, _p,
                           C.POINTER(S.GenStats), _err]),
    "llt_generate_batch": (_st, [_p, C.POINTER(C.c_char_p), _i32, _i32,
                                 C.POINTER(S.GenParams), S.TOKEN_CB, _p,
                                 C.POINTER(S.GenStats), _err]),
    # engine/batch.h (exported, not in the public header): llt_generate_batch + token counts
    # and per-prompt errors
    "llt_generate_batch_each": (_st, [_p, C.POINTER(C.c_char_p), _i32, _i32,
                                      C.POINTER(S.GenParams), S.TOKEN_CB, _p, _i32p, _err,
                                      C.POINTER(S.GenStats), _err]),
    # kv/paged_cache.h and backend/cuda/cuda_backend.h (exported, not in the public header)
    "llt_kv_cache_create_with": (_st, [C.POINTER(S.KVCacheOpts), C.POINTER(S.KVStorage),
                                       C.POINTER(_p), _err]),
    "llt_kv_cache_allocate_fn": (_st, [_p, _i32, _i32, _i32, S.KV_WRITE_FN, _p, _err]),
    "llt_cuda_device_count": (C.c_int, []),
    "llt_cuda_ctx_create": (_st, [C.c_int, C.POINTER(_p), _err]),
    "llt_cuda_sync": (_st, [_p, _err]),
    "llt_cuda_attn_splits": (_i32, [_p, _i32, _i32]),
    "llt_cuda_attn_work_floats": (_i64, [_i32, _i32, _i32, _i32]),
    "llt_cuda_attention_decode": (_st, [_p, C.POINTER(S.CudaAttn), _err]),
    "llt_cuda_model_forward_device": (_st, [_p, _i32p, _sz, _p, _err]),
    "llt_cuda_linear_run": (_st, [_p, C.POINTER(S.CudaLinear), S.c_enum, _err]),
    "llt_cuda_rmsnorm": (_st, [_p, S.c_enum, _p, _p, _p, _p, _p, _i32, _i32, C.c_float, _err]),
    "llt_convert": (_st, [C.c_char_p, S.c_enum, C.c_char_p, S.c_enum, _err]),
}


def candidate_paths():
    """Where the library is looked for, in order (LLT_LIB alone when it is set)."""
    env = os.environ.get("LLT_LIB")
    if env:
        return [Path(env)]
    here = Path(__file__).resolve().parent
    return [here / LIB_NAME, here.parent.parent / "build" / LIB_NAME]


class Library:
    """The loaded shared library and its lazily declared functions."""

    def __init__(self, path):
        self.path = Path(path)
        self.unresolved = None  # the dlopen message when loaded with lazy binding
        self._fns = {}
        self._lock = threading.Lock()
        try:
            self._dll = C.CDLL(str(self.path))
        except OSError as e:
            self._dll = self._load_lazily(e)

    def _load_lazily(self, first_error):
        """A library that references symbols it does not define (a partial build) still
        loads with lazy binding, so the functions that are complete can be used; calling
        one that needs a missing symbol would end the process, hence the warning."""
        if "undefined symbol" not in str(first_error):
            raise LibraryNotFoundError("cannot load %s: %s" % (self.path, first_error)) from None
        try:
            dll = C.CDLL(str(self.path), mode=os.RTLD_LAZY)
        except OSError as e:
            raise LibraryNotFoundError("cannot load %s: %s" % (self.path, e)) from None
        self.unresolved = str(first_error)
        warnings.warn("%s is incompletely linked (%s); loaded with lazy binding"
                      % (self.path, first_error), RuntimeWarning, stacklevel=3)
        return dll

    def has(self, name):
        """True when the library exports `name`."""
        try:
            getattr(self._dll, name)
            return True
        except AttributeError:
            return False

    def fn(self, name):
        """The ctypes function `name`, with its prototype applied."""
        f = self._fns.get(name)
        if f is not None:
            return f
        with self._lock:
            try:
                f = getattr(self._dll, name)
            except AttributeError:
                raise MissingSymbolError(
                    "%s does not export %s (a build older than this binding?)" % (self.path, name),
                    4) from None
            restype, argtypes = PROTOTYPES[name]
            f.restype = restype
            f.argtypes = argtypes
            self._fns[name] = f
        return f

    def call(self, name, *args):
        """Calls a status-returning function (the llt_error* is added here); raises the
        matching LlamaTritonError when the status is not LLT_OK."""
        err = S.Error()
        status = self.fn(name)(*args, C.byref(err))
        if status != 0:
            raise error_for_status(status, err.msg.decode("utf-8", "replace"))
        return status


_lib = None
_lib_lock = threading.Lock()


def lib():
    """The process-wide Library, loaded on first use."""
    global _lib
    if _lib is None:
        with _lib_lock:
            if _lib is None:
                _lib = _load()
    return _lib


def _load():
    tried = []
    for p in candidate_paths():
        if p.is_file():
            return Library(p)
        tried.append(str(p))
    raise LibraryNotFoundError(
        "libllama_triton.so not found (looked at: %s); build it with `make` or set LLT_LIB"
        % ", ".join(tried))


def fspath(path, what="path"):
    """A path argument as the bytes the C library expects (InvalidArgumentError naming the
    argument for anything else)."""
    try:
        return os.fsencode(os.fspath(path))
    except TypeError:
        from .errors import InvalidArgumentError
        raise InvalidArgumentError("%s: expected a path (str or os.PathLike), got %s"
                                   % (what, type(path).__name__)) from None
