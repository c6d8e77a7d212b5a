"""dtype names <-> llt_dtype codes, through the C library's own tables."""

import ctypes as C

from . import _structs as S
from ._lib import lib
from .errors import InvalidArgumentError


def code(value, what="dtype"):
    """llt_dtype code of a name ("f16", "float16", "bfloat16", ...), a code, or a numpy dtype."""
    if isinstance(value, bool):
        raise InvalidArgumentError("%s: expected a dtype name, got %r" % (what, value))
    if isinstance(value, int):
        if not 0 <= value < S.DTYPE_COUNT:
            raise InvalidArgumentError("%s: dtype code %d out of range [0, %d)"
                                       % (what, value, S.DTYPE_COUNT))
        return value
    name = getattr(value, "name", value)  # numpy dtype / type objects carry .name
    if isinstance(value, type):
        name = value.__name__
    if not isinstance(name, str):
        raise InvalidArgumentError("%s: expected a dtype name, got %r" % (what, value))
    out = S.c_enum()
    if not lib().fn("llt_dtype_from_name")(name.encode(), C.byref(out)):
        raise InvalidArgumentError("%s: unknown dtype %r" % (what, name))
    return out.value


def name(code_):
    """The library's short name of an llt_dtype code ("f32", "bf16", ...)."""
    n = lib().fn("llt_dtype_name")(code_)
    return n.decode() if n else "dtype%d" % code_
