"""The specification's `device` argument, resolved in one place.

Every class takes device='cuda' by default (the specification's default). It is used when the
loaded library has a CUDA device; otherwise a warning goes to stderr and the CPU is used
instead (the specification: CPU-only machines fall back automatically, with lower speed).
Accepted: "cpu", "cuda", "cuda:N", a list of GPUs (["cuda:0", "cuda:1"]: layer split), a
comma-joined string of them, a torch.device, or None (the model's configured devices)."""

import os
import sys
import warnings

from ._lib import lib
from .errors import InvalidArgumentError

DEFAULT = "cuda"


def cuda_device_count():
    """CUDA devices the loaded library can use (0 for a CPU-only build or no driver)."""
    L = lib()
    return L.fn("llt_cuda_device_count")() if L.has("llt_cuda_device_count") else 0


def _names(device, what):
    """The device as a list of names ("cuda:0", ...), type-checked."""
    if type(device).__name__ == "device" and type(device).__module__ == "torch":
        return [str(device)]
    if isinstance(device, str):
        names = device.split(",")
    elif isinstance(device, (list, tuple)):
        names = list(device)
    else:
        raise InvalidArgumentError("%s: expected a device name such as 'cuda' or 'cpu', got %r"
                                   % (what, device))
    if not names or not all(isinstance(d, str) and d.strip() for d in names):
        raise InvalidArgumentError("%s: expected non-empty device names, got %r" % (what, device))
    return [d.strip() for d in names]


def resolve(device, what="device"):
    """The device string to run on: "cpu", "cuda:0", "cuda:0,cuda:1", ... (None stays None:
    the model's configured devices). A CUDA request without a usable GPU warns on stderr and
    gives "cpu"."""
    if device is None:
        return None
    names = _names(device, what)
    if any(n.startswith("cuda") for n in names) and cuda_device_count() == 0:
        warnings.warn("%s=%r: no CUDA device is available to this build of libllama_triton; "
                      "running on the CPU (slower)" % (what, ",".join(names)), RuntimeWarning,
                      stacklevel=_caller_level())
        return "cpu"
    return ",".join(names)


def _caller_level():
    """warnings stacklevel of the first frame outside this package (the user's call)."""
    here = os.path.dirname(os.path.realpath(__file__))
    f, level = sys._getframe(1), 1
    while f is not None and os.path.dirname(os.path.realpath(f.f_code.co_filename)) == here:
        f, level = f.f_back, level + 1
    return level


def is_cuda(device):
    """True for a resolved device string on a GPU."""
    return isinstance(device, str) and device.startswith("cuda")


def ordinal(device):
    """CUDA ordinal of "cuda" / "cuda:N" (the first of a list)."""
    first = device.split(",")[0]
    idx = first.split(":")[1] if ":" in first else "0"
    if not idx.isdigit():
        raise InvalidArgumentError("device: expected cuda or cuda:N, got %r" % first)
    return int(idx)
