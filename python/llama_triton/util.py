"""Library-wide helpers: conversion, logging, status names, the loaded library's path."""

import ctypes as C
import os

from . import _dtype
from . import _structs as S
from ._lib import fspath, lib
from .errors import InvalidArgumentError

LOG_LEVELS = {"debug": 0, "info": 1, "warn": 2, "warning": 2, "error": 3, "none": 4}
_LEVEL_NAMES = ("debug", "info", "warn", "error", "none")
_log_keepalive = []  # the C library holds the callback pointer: keep it alive here


def library_path():
    """Path of the loaded libllama_triton.so."""
    return str(lib().path)


def status_str(status):
    """The C library's text for an llt_status code."""
    return lib().fn("llt_status_str")(int(status)).decode()


def set_log_level(level="warn", handler=None):
    """Process-wide C log sink: messages at `level` or above go to handler(level_name, text),
    or to stderr when handler is None. level: debug, info, warn, error, none."""
    if level not in LOG_LEVELS:
        raise InvalidArgumentError("log level: expected one of %s, got %r" % (", ".join(LOG_LEVELS), level))
    if handler is None:
        fn = S.LOG_FN()  # NULL: the library's stderr default
    else:
        def on_log(lvl, msg, user):
            try:
                handler(_LEVEL_NAMES[lvl] if 0 <= lvl < 5 else str(lvl),
                        msg.decode("utf-8", "replace") if msg else "")
            except BaseException:  # noqa: B902  never let an exception cross into C
                pass
        fn = S.LOG_FN(on_log)
    lib().fn("llt_log_set")(fn, None, LOG_LEVELS[level])
    _log_keepalive[:] = [fn]


def convert(src, dst_dir, fmt="hf", dtype=None):
    """Writes the native folder (model.json, state_dict.pt, tokenizer files) from a Hugging
    Face folder (fmt="hf") or a GGUF file (fmt="gguf"). dtype: weights' dtype (None = keep)."""
    key = fmt.lower() if isinstance(fmt, str) else fmt
    if key not in ("hf", "gguf", "auto", None):
        raise InvalidArgumentError("convert: fmt must be hf or gguf, got %r" % (fmt,))
    code = S.DTYPE_COUNT if dtype is None else _dtype.code(dtype, "dtype")
    dst = fspath(dst_dir, "dst_dir")
    os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)  # the C side makes dst
    lib().call("llt_convert", fspath(src, "src"), S.FORMATS[key], dst, code)
