"""Buffers between Python values and C: numpy arrays when numpy is importable, otherwise
ctypes arrays and nested lists (the package needs nothing beyond the standard library)."""

import ctypes as C
import operator
import struct

try:
    import numpy as np
except ImportError:  # numpy is optional
    np = None

from .errors import InvalidArgumentError

I32_MIN, I32_MAX = -(2 ** 31), 2 ** 31 - 1


def have_numpy():
    return np is not None


def token_ids(ids, name="input_ids"):
    """A flat int32 ctypes array from a sequence / 1-D array / 1-D torch tensor of ints,
    range-checked; floats are refused with the argument's name."""
    from . import _torch
    if _torch.is_tensor(ids):
        ids = _torch.ids(ids, name)
    if np is not None and isinstance(ids, np.ndarray):
        if ids.ndim != 1:
            raise InvalidArgumentError("%s: expected a 1-D array, got shape %s" % (name, ids.shape))
        if ids.dtype.kind not in "iu":
            raise InvalidArgumentError("%s: expected integer ids, got dtype %s" % (name, ids.dtype))
        ids = ids.tolist()
    if isinstance(ids, (str, bytes)):
        raise InvalidArgumentError("%s: expected a sequence of ints, got %s" % (name, type(ids).__name__))
    try:
        vals = [operator.index(i) for i in ids]  # floats are refused, not truncated
    except TypeError:
        raise InvalidArgumentError("%s: expected a sequence of ints" % name) from None
    for i in vals:
        if not I32_MIN <= i <= I32_MAX:
            raise InvalidArgumentError("%s: id %d does not fit int32" % (name, i))
    return (C.c_int32 * len(vals))(*vals), len(vals)


def f32_ptr(buf):
    """float* of a numpy float32 array or a ctypes float array."""
    if np is not None and isinstance(buf, np.ndarray):
        return buf.ctypes.data_as(C.POINTER(C.c_float))
    return C.cast(buf, C.POINTER(C.c_float))


def f32_out(count):
    """A zeroed float32 output buffer of `count` elements."""
    if np is not None:
        return np.zeros(count, dtype=np.float32)
    return (C.c_float * count)()


def shaped(buf, shape):
    """The output buffer as an array of `shape` (numpy) or nested lists."""
    if np is not None and isinstance(buf, np.ndarray):
        return buf.reshape(shape)
    return nest(list(buf), shape)


def nest(flat, shape):
    """Nested lists of `shape` from a flat list (row-major)."""
    if len(shape) <= 1:
        return list(flat)
    step = len(flat) // shape[0] if shape[0] else 0
    return [nest(flat[i * step:(i + 1) * step], shape[1:]) for i in range(shape[0])]


def floats_from_raw(raw, dtype_name):
    """Python floats from raw little-endian bytes of f32 / f16 / bf16 (no-numpy path)."""
    if dtype_name == "f32":
        return list(struct.unpack("<%df" % (len(raw) // 4), raw))
    if dtype_name == "f16":
        return list(struct.unpack("<%de" % (len(raw) // 2), raw))
    if dtype_name == "bf16":
        halves = struct.unpack("<%dH" % (len(raw) // 2), raw)
        return list(struct.unpack("<%df" % len(halves), struct.pack("<%dI" % len(halves),
                                                                   *[h << 16 for h in halves])))
    raise InvalidArgumentError("unsupported KV dtype %s" % dtype_name)


def float32_rows(x, inner, name):
    """A flat float32 buffer from a numpy array or nested lists whose trailing dimensions
    are `inner` (an int or a tuple); returns (buffer, rows)."""
    inner = (inner,) if isinstance(inner, int) else tuple(inner)
    width = 1
    for d in inner:
        width *= d
    if np is not None:
        a = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
        if a.ndim < len(inner) or a.shape[a.ndim - len(inner):] != inner or a.size == 0:
            raise InvalidArgumentError("%s: expected shape [n, %s], got %s"
                                       % (name, ", ".join(map(str, inner)), a.shape))
        return a.reshape(-1), a.size // width
    flat = list(_flatten(x))
    if not flat or len(flat) % width:
        raise InvalidArgumentError("%s: %d values are not a multiple of %d" % (name, len(flat), width))
    return (C.c_float * len(flat))(*flat), len(flat) // width


def _flatten(x):
    if isinstance(x, (list, tuple)):
        for e in x:
            yield from _flatten(e)
    else:
        yield float(x)
