"""LlamaTritonModel: a loaded (or randomly initialised) model and its teacher-forced forward."""

import collections.abc
import contextlib
import ctypes as C
import os
import sys
import tempfile
import threading
from pathlib import Path

from . import _arrays, _device, _dtype, _torch
from . import _structs as S
from ._handle import Handle
from ._lib import fspath, lib
from .config import LlamaConfig
from .errors import CancelledError, InvalidArgumentError, StateError


def device_string(device):
    """"cuda:0,cuda:1" from ["cuda:0", "cuda:1"] (a list splits the layers over the GPUs);
    a string passes as it is."""
    if isinstance(device, (list, tuple)):
        if not device or not all(isinstance(d, str) and d and "," not in d for d in device):
            raise InvalidArgumentError("device: expected a non-empty list of device names, got %r"
                                       % (device,))
        return ",".join(device)
    return str(device)


def load_opts(fmt=None, device=None, dtype=None, n_threads=0, page_size=0, max_pages=0,
              max_seqs=0, layer_split=None, no_cache=False, kv_dtype=None, batch_rows=0):
    """An llt_load_opts from keyword values; returns (opts, objects to keep alive).
    kv_dtype None keeps the config's (the C library checks the value against the backend).
    batch_rows: rows per forward pass on the CUDA backend, 0 = its default (the C library
    checks the range)."""
    o = S.LoadOpts()
    lib().fn("llt_load_opts_init")(C.byref(o))
    key = fmt.lower() if isinstance(fmt, str) else fmt
    if key not in S.FORMATS:
        raise InvalidArgumentError("fmt: expected one of auto, gguf, hf, triton, got %r" % (fmt,))
    o.format = S.FORMATS[key]
    keep = []
    if device is not None:
        keep.append(device_string(device).encode())
        o.device = keep[-1]
    else:
        o.device = None  # NULL: the config's "devices", else auto (first GPU, else cpu)
    if dtype is not None:
        o.dtype = _dtype.code(_torch.dtype_name(dtype), "dtype")
    if kv_dtype is not None:
        o.kv_dtype = _dtype.code(_torch.dtype_name(kv_dtype, "kv_dtype", f8=True), "kv_dtype")
    for name, v in (("n_threads", n_threads), ("page_size", page_size),
                    ("max_pages", max_pages), ("max_seqs", max_seqs), ("batch_rows", batch_rows)):
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 2**31:
            raise InvalidArgumentError("%s: expected a non-negative int, got %r" % (name, v))
        setattr(o, name, v)
    if layer_split is not None:
        split, _ = _arrays.token_ids(layer_split, "layer_split")
        keep.append(split)
        o.layer_split = C.cast(split, C.POINTER(C.c_int32))
    o.no_cache = bool(no_cache)
    return o, keep


class LlamaTritonModel(Handle):
    """LlamaTritonModel(cfg, device='cuda', *, fmt=None, dtype=None, ...): the specification's
    model, with forward(input_ids) -> logits.

    cfg: a LlamaConfig (a model of that shape with random weights, `seed`; give it weights
    with load_state_dict) or, beyond the specification, a model path (.gguf file, Hugging
    Face folder, native folder) loaded with llt_model_load.
    device: "cuda" (default; the CPU with a warning on stderr when there is no GPU), "cpu",
    "cuda:N", a torch.device, or several GPUs as ["cuda:0", "cuda:1"] (or "cuda:0,cuda:1"),
    whose layers are split contiguously, by layer_split=[20, 12] or in proportion to each
    GPU's free memory; None = the model's configured devices, else the CPU.
    fmt: None/"auto", "gguf", "hf", "triton". dtype: compute dtype ("f32", "f16", "bf16",
    "bfloat16", torch.bfloat16; None = the checkpoint's). kv_dtype: the KV cache's dtype
    ("f32", "f16", "bf16", or "f8" = e4m3 with a scale per token and kv head; the
    CUDA cache holds the compute dtype or f8; None = the config's); config.kv_dtype then
    reports it. no_cache: for Hugging Face folders, do not write the converted native cache.
    batch_rows: rows one CUDA forward pass takes (1..4096; 0 = 2048)."""

    _free_name = "llt_model_free"

    def __init__(self, cfg, device=_device.DEFAULT, *, fmt=None, dtype=None, n_threads=0, seed=0,
                 page_size=0, max_pages=0, max_seqs=0, layer_split=None, no_cache=False,
                 kv_dtype=None, batch_rows=0):
        device = _device.resolve(device)
        self._load_kw = dict(fmt=fmt, device=device, dtype=dtype, n_threads=n_threads,
                             page_size=page_size, max_pages=max_pages, max_seqs=max_seqs,
                             layer_split=layer_split, no_cache=no_cache, kv_dtype=kv_dtype,
                             batch_rows=batch_rows)
        opts, keep = load_opts(**self._load_kw)
        ptr = C.c_void_p()
        if isinstance(cfg, LlamaConfig):
            if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**64:
                raise InvalidArgumentError("seed: expected an unsigned 64-bit int, got %r" % (seed,))
            lib().call("llt_model_random", cfg._ptr(), seed, C.byref(opts), C.byref(ptr))
            self.path = None
        elif isinstance(cfg, (str, bytes, os.PathLike)):
            lib().call("llt_model_load", fspath(cfg), C.byref(opts), C.byref(ptr))
            self.path = os.fsdecode(cfg)
        else:
            raise InvalidArgumentError("cfg / model_dir: expected a LlamaConfig or a model path, got %r"
                                       % type(cfg).__name__)
        del keep  # llt_load_opts is only read during the call
        super().__init__(ptr.value)
        # where the library put it ("auto" and the config's devices resolved)
        self.device = (lib().fn("llt_model_device")(ptr, None) or b"cpu").decode()
        self._lock = threading.RLock()  # the C model runs one call at a time
        self._stream_state = None       # set while a streaming generation holds the lock

    def load_state_dict(self, state_dict):
        """Replaces the weights (torch.nn.Module style): state_dict is a torch state dict with
        our native key names (tok_embeddings.weight, layers.N.attention.wq.weight, ..., as
        utils.hf_import writes them), or a path to a native state_dict.pt or native model
        folder. Shapes are checked against this model's configuration by the C loader, which
        names the offending tensor. Keeps the device and load options of the constructor."""
        cfg = self.config
        with tempfile.TemporaryDirectory(prefix="llt-sd-") as tmp:
            src = _state_dict_folder(state_dict, cfg, Path(tmp))
            opts, keep = load_opts(**dict(self._load_kw, fmt="triton", no_cache=True))
            ptr = C.c_void_p()
            lib().call("llt_model_load", fspath(src, "state_dict"), C.byref(opts), C.byref(ptr))
            del keep
        new = LlamaConfig._from_c(lib().fn("llt_model_config")(ptr.value)[0])
        for k in ("n_layers", "hidden_size", "intermediate_size", "vocab_size", "n_heads", "n_kv_heads"):
            if getattr(new, k) != getattr(cfg, k):
                lib().fn("llt_model_free")(ptr.value)
                raise InvalidArgumentError("state_dict: %s is %d, this model's is %d"
                                           % (k, getattr(new, k), getattr(cfg, k)))
        with self._acquire():
            old, self._ptr = self._h, ptr.value
            lib().fn("llt_model_free")(old)
        return self

    @contextlib.contextmanager
    def _acquire(self):
        """Holds the model for one C call. Waiting is fine from any thread except the one
        reading an open stream of this model: that would wait for itself, so it is an error,
        unless this thread is handling a KeyboardInterrupt: then the stream was abandoned by
        it, so it is ended (its next read raises CancelledError) and the model is freed."""
        while not self._lock.acquire(timeout=0.05):
            st = self._stream_state
            if st is not None and not st.stop.is_set() and st.reader == threading.get_ident():
                if isinstance(sys.exc_info()[1], KeyboardInterrupt):
                    st.interrupt(CancelledError("the stream was interrupted (KeyboardInterrupt)", 10))
                    continue
                raise StateError("the model is busy with an open stream read by this thread; "
                                 "finish or close() the stream first", 7)
        try:
            yield
        finally:
            self._lock.release()

    def close(self):
        """Frees the model (waiting for a call in progress). A second close() raises."""
        if getattr(self, "_lock", None) is None:  # __init__ failed before the handle existed
            return super().close()
        with self._acquire():
            return super().close()

    @property
    def config(self):
        """A copy of the model's configuration."""
        return LlamaConfig._from_c(lib().fn("llt_model_config")(self._h)[0])

    @property
    def tokenizer(self):
        """The model's tokenizer (valid while the model is open), None for random weights."""
        from .tokenizer import Tokenizer
        p = lib().fn("llt_model_tokenizer")(self._h)
        return Tokenizer._borrowed(p, self) if p else None

    def forward(self, input_ids, return_hidden=False):
        """Teacher-forced logits of input_ids from position 0, no state kept.

        input_ids: a 1-D sequence of ids -> logits [T, vocab] float32; a 2-D array [B, T] ->
        [B, T, vocab]. A torch tensor (any integer dtype, CPU or CUDA) gives torch tensors on
        this model's device (a CUDA model's logits stay on the GPU: device-to-device copy;
        with return_hidden they pass through the host); otherwise numpy arrays when numpy is
        present, nested lists without. The ids are read from host memory (a few bytes).
        return_hidden: also return the residual stream after each layer [n_layers, T, hidden]
        and the final RMSNorm output [T, hidden]: (logits, hidden, final_norm)."""
        if _torch.is_tensor(input_ids):
            ids = _torch.ids(input_ids, "input_ids")
            if not return_hidden and _device.is_cuda(self.device) and \
                    lib().has("llt_cuda_model_forward_device"):
                return self._forward_device(ids)
            out = self.forward(ids, return_hidden)
            dev = self.device.split(",")[0]
            return (tuple(_to_torch(o, dev) for o in out) if return_hidden else _to_torch(out, dev))
        rows = _rows(input_ids)
        if rows is None:
            return self._forward1(input_ids, return_hidden)
        outs = [self._forward1(r, return_hidden) for r in rows]
        if not return_hidden:
            return _stack(outs)
        return tuple(_stack([o[i] for o in outs]) for i in range(3))

    def _forward1(self, ids, return_hidden):
        with self._acquire():
            return self._forward1_locked(ids, return_hidden)

    def _forward1_locked(self, ids, return_hidden):
        h = self._h
        cfg = lib().fn("llt_model_config")(h)[0]
        buf, n = _checked_ids(ids, cfg)
        logits = _arrays.f32_out(n * cfg.vocab_size)
        hidden = final = None
        if return_hidden:
            hidden = _arrays.f32_out(cfg.n_layers * n * cfg.hidden_size)
            final = _arrays.f32_out(n * cfg.hidden_size)
        lib().call("llt_model_forward", h, buf, n, _arrays.f32_ptr(logits),
                   _arrays.f32_ptr(hidden) if hidden is not None else None,
                   _arrays.f32_ptr(final) if final is not None else None)
        out = _arrays.shaped(logits, (n, cfg.vocab_size))
        if not return_hidden:
            return out
        return (out, _arrays.shaped(hidden, (cfg.n_layers, n, cfg.hidden_size)),
                _arrays.shaped(final, (n, cfg.hidden_size)))

    __call__ = forward

    def _forward_device(self, ids):
        """forward on a CUDA model for torch callers: the logits stay on the GPU (the model's
        last device), written there by a device-to-device copy."""
        torch = _torch.loaded()
        rows = _rows(ids)
        if rows is not None:
            outs = [self._forward_device(r) for r in rows]
            return torch.stack(outs) if len({tuple(o.shape) for o in outs}) == 1 else outs
        with self._acquire():
            h = self._h
            cfg = lib().fn("llt_model_config")(h)[0]
            buf, n = _checked_ids(ids, cfg)
            dev = "cuda:%d" % _device.ordinal(self.device.split(",")[-1])
            out = torch.empty((n, cfg.vocab_size), dtype=torch.float32, device=dev)
            torch.cuda.current_stream(dev).synchronize()  # the block may be one torch just freed
            lib().call("llt_cuda_model_forward_device", h, buf, n, out.data_ptr())
        return out

    # --- stateful decoding over the model's own paged cache ---
    @property
    def kv_cache(self):
        """The model's own PageKVCache (valid while the model is open)."""
        from .kv_cache import PageKVCache
        return PageKVCache._borrowed(lib().fn("llt_model_kv_cache")(self._h), self, self.config,
                                     self.device)

    def decode(self, tokens, seq_ids, want_logits=None):
        """One step of batched decoding (llt_model_decode): appends each token to its
        sequence in the model's KV cache. Returns logits [rows, vocab] of the rows that want
        them (default: the last token of each sequence)."""
        with self._acquire():
            return self._decode_locked(tokens, seq_ids, want_logits)

    def _decode_locked(self, tokens, seq_ids, want_logits):
        h = self._h
        cfg = lib().fn("llt_model_config")(h)[0]
        tok, n = _arrays.token_ids(tokens, "tokens")
        seq, ns = _arrays.token_ids(seq_ids, "seq_ids")
        if n == 0 or ns != n:
            raise InvalidArgumentError("decode: %d tokens and %d seq_ids (need equal, > 0)" % (n, ns))
        b = S.Batch(n, C.cast(tok, C.POINTER(C.c_int32)), C.cast(seq, C.POINTER(C.c_int32)), None)
        if want_logits is not None:
            w = [1 if x else 0 for x in want_logits]
            if len(w) != n:
                raise InvalidArgumentError("decode: want_logits has %d entries, expected %d" % (len(w), n))
            wb = (C.c_int8 * n)(*w)
            b.want_logits = C.cast(wb, C.POINTER(C.c_int8))
        logits = _arrays.f32_out(n * cfg.vocab_size)
        rows = C.c_int32()
        lib().call("llt_model_decode", h, C.byref(b), _arrays.f32_ptr(logits), C.byref(rows))
        r = rows.value
        if _arrays.have_numpy():
            return logits[:r * cfg.vocab_size].reshape(r, cfg.vocab_size)
        return _arrays.nest(list(logits[:r * cfg.vocab_size]), (r, cfg.vocab_size))


def _checked_ids(ids, cfg):
    """(int32 buffer, n) of one sequence of ids, each in [0, vocab_size)."""
    buf, n = _arrays.token_ids(ids)
    if n == 0:
        raise InvalidArgumentError("input_ids: empty sequence")
    for i, t in enumerate(buf):
        if not 0 <= t < cfg.vocab_size:
            raise InvalidArgumentError("input_ids[%d] = %d out of range [0, %d)"
                                       % (i, t, cfg.vocab_size))
    return buf, n


def _rows(ids):
    """The rows of a 2-D batch of ids, or None for a single 1-D sequence."""
    np = _arrays.np
    if np is not None and isinstance(ids, np.ndarray):
        return list(ids) if ids.ndim == 2 else None
    if isinstance(ids, (list, tuple)) and ids and isinstance(ids[0], (list, tuple)):
        return list(ids)
    if np is not None and isinstance(ids, (list, tuple)) and ids and isinstance(ids[0], np.ndarray):
        return list(ids)
    return None


def _stack(arrays):
    """One array for rows of equal length; a list of arrays for ragged rows (or no numpy)."""
    np = _arrays.np
    if np is None or len({a.shape for a in arrays}) != 1:
        return list(arrays)
    return np.stack(arrays)


def _to_torch(x, device):
    """A torch float32 tensor on `device` of a numpy array / nested lists result."""
    np = _arrays.np
    if np is not None:
        return _torch.from_host(np.asarray(x, dtype=np.float32), device)
    return _torch.loaded().tensor(x, dtype=_torch.loaded().float32, device=device)


def _state_dict_folder(sd, cfg, tmp):
    """A native folder (model.json + state_dict.pt) holding state dict `sd` for config cfg."""
    if isinstance(sd, (str, bytes, os.PathLike)):
        p = Path(os.fsdecode(sd))
        if p.is_dir():
            return p
        if not p.is_file():
            raise InvalidArgumentError("state_dict: %s: no such file or folder" % p)
        os.symlink(p.resolve(), tmp / "state_dict.pt")
    elif isinstance(sd, collections.abc.Mapping):
        torch = _torch.require("load_state_dict of a state dict object")
        tensors = {}
        for k, v in sd.items():
            if not isinstance(k, str) or not isinstance(v, torch.Tensor):
                raise InvalidArgumentError("state_dict: expected str -> torch.Tensor, got %r -> %s"
                                           % (k, type(v).__name__))
            tensors[k] = v.detach().to("cpu").contiguous()
        torch.save(tensors, tmp / "state_dict.pt")
    else:
        raise InvalidArgumentError("state_dict: expected a torch state dict or a path, got %s"
                                   % type(sd).__name__)
    cfg.to_json(tmp / "model.json")
    return tmp
