"""torch tensors in and out (optional: torch is never required).

Rule of the package: a call given torch tensors answers with torch tensors, on the device the
call asks for (or the inputs' device), in the dtype it computed (bf16 as torch.bfloat16).
Without torch: numpy arrays, or nested lists without numpy.

torch is only imported when the caller already did (a tensor argument) or asks for a GPU
result; memory on the GPU is handed over zero-copy through the CUDA array interface, the
owner kept alive by the tensor."""

import sys

from . import _arrays
from .errors import InvalidArgumentError, UnsupportedError

_INT_KINDS = ("int8", "int16", "int32", "int64", "uint8")


def loaded():
    """The torch module when the process imported it, else None (no import here)."""
    return sys.modules.get("torch")


def is_tensor(x):
    t = loaded()
    return t is not None and isinstance(x, t.Tensor)


def require(what):
    """Imports torch; UnsupportedError naming `what` when it is not installed."""
    try:
        import torch
    except ImportError:
        raise UnsupportedError("%s needs PyTorch (torch is not installed)" % what, 4) from None
    return torch


def device_of(x):
    """"cpu" / "cuda:N" of a tensor."""
    d = x.device
    return "cuda:%d" % (d.index or 0) if d.type == "cuda" else d.type


def ids(x, name):
    """Token ids of an integer tensor as a flat list (1-D) or rows (2-D); float, bool and
    complex tensors are refused with the argument's name."""
    kind = str(x.dtype).replace("torch.", "")
    if kind not in _INT_KINDS:
        raise InvalidArgumentError("%s: expected an integer tensor (token ids), got dtype %s"
                                   % (name, x.dtype))
    if x.dim() not in (1, 2):
        raise InvalidArgumentError("%s: expected a 1-D or 2-D tensor, got shape %s"
                                   % (name, tuple(x.shape)))
    return x.detach().cpu().tolist()  # a few ids: the C API reads them from host memory


def floats(x, name):
    """A host float32 array (numpy, or nested lists without numpy) of a float tensor."""
    if x.is_complex() or x.dtype == loaded().bool:
        raise InvalidArgumentError("%s: expected a float tensor, got dtype %s" % (name, x.dtype))
    h = x.detach().to("cpu", loaded().float32)
    return h.numpy() if _arrays.have_numpy() else h.tolist()


def torch_dtype(name):
    """torch dtype of a library dtype name ("f32", "f16", "bf16")."""
    t = loaded()
    return {"f32": t.float32, "f16": t.float16, "bf16": t.bfloat16}[name]


def from_host(a, device, dtype_name="f32"):
    """A torch tensor on `device` from a host numpy array (bf16 given as its uint16 bits)."""
    t = loaded() or require("a torch result")
    if dtype_name == "bf16":
        out = t.from_numpy(a.view(_arrays.np.int16).copy()).view(t.bfloat16)
    else:
        out = t.from_numpy(_arrays.np.ascontiguousarray(a))
    return out.to(device) if device not in (None, "cpu") else out


class CudaView:
    """Device memory owned by `owner`, described by the CUDA array interface (version 2) so
    that torch.as_tensor wraps it without a copy and keeps `owner` alive."""

    _TYPESTR = {"f32": "<f4", "f16": "<f2", "bf16": "<i2", "i32": "<i4", "u8": "|u1"}

    def __init__(self, ptr, shape, dtype_name, owner):
        self.__cuda_array_interface__ = {"shape": tuple(shape), "typestr": self._TYPESTR[dtype_name],
                                         "data": (int(ptr), False), "strides": None, "version": 2}
        self._owner = owner
        self._dtype_name = dtype_name

    def tensor(self, device):
        t = loaded() or require("GPU memory as a tensor")
        out = t.as_tensor(self, device=device)
        return out.view(t.bfloat16) if self._dtype_name == "bf16" else out


def dtype_name(dtype, what="dtype", f8=False):
    """Our dtype name of a torch dtype (or pass through a name / numpy dtype). f8: also
    torch.float8_e4m3fn (a KV cache dtype, never a compute dtype)."""
    t = loaded()
    if t is not None and isinstance(dtype, t.dtype):
        names = {t.float32: "f32", t.float16: "f16", t.bfloat16: "bf16", t.float64: "f64"}
        if f8 and hasattr(t, "float8_e4m3fn"):
            names[t.float8_e4m3fn] = "f8_e4m3"
        if dtype not in names:
            raise InvalidArgumentError("%s: expected a float dtype, got %s" % (what, dtype))
        return names[dtype]
    return dtype
