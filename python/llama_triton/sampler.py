"""Sampler: the C sampler (greedy, temperature, top-k, top-p) on one row of logits."""

import ctypes as C

from . import _arrays
from . import _structs as S
from ._handle import Handle
from ._lib import lib
from .errors import InvalidArgumentError


class Sampler(Handle):
    """Sampler(vocab_size, temperature=0.8, top_p=0.9, top_k=0, seed=0); temperature 0 is
    greedy. sample(logits) -> token id; logits: [vocab_size] floats (not modified)."""

    _free_name = "llt_sampler_free"

    def __init__(self, vocab_size, temperature=0.8, top_p=0.9, top_k=0, seed=0):
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or not 0 < vocab_size < 2**31:
            raise InvalidArgumentError("vocab_size: expected a positive int, got %r" % (vocab_size,))
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**64:
            raise InvalidArgumentError("seed: expected an unsigned 64-bit int, got %r" % (seed,))
        if isinstance(top_k, bool) or not isinstance(top_k, int) or not 0 <= top_k < 2**31:
            raise InvalidArgumentError("top_k: expected an int >= 0, got %r" % (top_k,))
        p = S.SamplerParams(float(temperature), float(top_p), top_k, seed)
        ptr = C.c_void_p()
        lib().call("llt_sampler_create", C.byref(p), vocab_size, C.byref(ptr))
        super().__init__(ptr.value)
        self.vocab_size = vocab_size

    def sample(self, logits):
        h = self._h
        buf, rows = _arrays.float32_rows(logits, self.vocab_size, "logits")
        if rows != 1:
            raise InvalidArgumentError("logits: expected one row of %d, got %d rows" % (self.vocab_size, rows))
        if _arrays.have_numpy():
            buf = buf.copy()  # the C sampler may modify its input
        return lib().fn("llt_sampler_sample")(h, _arrays.f32_ptr(buf))
