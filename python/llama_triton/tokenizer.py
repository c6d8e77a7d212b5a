"""Tokenizers: one front door (Tokenizer) over every file llt_tokenizer_open reads, and the
specification's SentencePieceTokenizer name."""

import ctypes as C
import operator

from . import _arrays
from . import _structs as S
from ._handle import Handle
from ._lib import fspath, lib
from .errors import CacheFullError, InvalidArgumentError


# First guesses of the output sizes; a larger buffer is taken when the C call says so.
ENCODE_SLACK = 16        # ids for text of n bytes: n // 2 + ENCODE_SLACK
DECODE_BYTES_PER_ID = 8  # text bytes for n ids: n * DECODE_BYTES_PER_ID + 16
STREAM_CAP = 256         # text bytes for one streamed id


class Tokenizer(Handle):
    """Tokenizer(path): a .gguf file, a SentencePiece or tiktoken tokenizer.model, a Hugging
    Face tokenizer.json, or a model folder."""

    _free_name = "llt_tokenizer_free"

    def __init__(self, path, _what="path"):
        ptr = C.c_void_p()
        lib().call("llt_tokenizer_open", fspath(path, _what), C.byref(ptr))
        super().__init__(ptr.value)
        self.path = str(path)

    @classmethod
    def _borrowed(cls, ptr, owner):
        """A view of a tokenizer owned by `owner` (a model): valid while the owner is open."""
        self = cls.__new__(cls)
        Handle.__init__(self, ptr, owner)
        self.path = getattr(owner, "path", None)
        return self

    # --- vocabulary ---
    def vocab_size(self):
        return lib().fn("llt_tokenizer_vocab_size")(self._h)

    def bos_id(self):
        """BOS id, -1 when the vocabulary has none."""
        return lib().fn("llt_tokenizer_bos")(self._h)

    def eos_id(self):
        """EOS id, -1 when the vocabulary has none."""
        return lib().fn("llt_tokenizer_eos")(self._h)

    def is_eog(self, token_id):
        """True for tokens that end generation (EOS, EOT, ...)."""
        return bool(lib().fn("llt_tokenizer_is_eog")(self._h, _int32(token_id)))

    def id_to_piece(self, token_id):
        """The raw vocabulary piece of an id (bytes decoded as UTF-8 with replacement)."""
        h = self._h
        n = self.vocab_size()
        token_id = _int32(token_id)
        if not 0 <= token_id < n:
            raise InvalidArgumentError("token id %r out of range [0, %d)" % (token_id, n))
        p = lib().fn("llt_tokenizer_piece")(h, token_id)
        return None if p is None else p.decode("utf-8", "replace")

    def __len__(self):
        return self.vocab_size()

    # --- text <-> ids ---
    def encode(self, text, add_bos=True, add_eos=False, parse_special=False):
        """Token ids of `text` (str or UTF-8 bytes)."""
        if isinstance(text, str):
            data = text.encode("utf-8")
        elif isinstance(text, (bytes, bytearray, memoryview)):
            data = bytes(text)
        else:  # bytes(None) is a bare TypeError, bytes(5) five NUL bytes
            raise InvalidArgumentError("encode: text: expected str or bytes, got %s" % type(text).__name__)
        flags = ((S.TOK_ADD_BOS if add_bos else 0) | (S.TOK_ADD_EOS if add_eos else 0)
                 | (S.TOK_PARSE_SPECIAL if parse_special else 0))
        cap = len(data) // 2 + ENCODE_SLACK
        while True:
            ids = (C.c_int32 * cap)()
            n = C.c_size_t()
            try:
                lib().call("llt_tokenizer_encode", self._h, data, len(data), flags, ids, cap,
                           C.byref(n))
            except CacheFullError:
                if n.value <= cap:
                    raise
                cap = n.value
                continue
            return list(ids[:n.value])

    def decode(self, ids):
        """Text of token ids (SentencePiece: the first piece's leading space is dropped)."""
        buf_ids, n = _arrays.token_ids(ids, "ids")
        cap = DECODE_BYTES_PER_ID * n + 16
        while True:
            out = C.create_string_buffer(cap)
            got = C.c_size_t()
            try:
                lib().call("llt_tokenizer_decode", self._h, buf_ids, n, out, cap, C.byref(got))
            except CacheFullError:
                if got.value < cap:
                    raise
                cap = got.value + 1
                continue
            return out.raw[:got.value].decode("utf-8", "replace")

    def decoder(self):
        """A streaming decoder: feed(id) -> the newly completed text (may be '')."""
        return StreamDecoder(self)


class StreamDecoder:
    """Incremental decode (llt_tokenizer_decode_next): a character split over byte tokens is
    held back until complete."""

    def __init__(self, tok):
        self._tok = tok
        self._st = S.DetokState()

    def feed(self, token_id):
        cap = STREAM_CAP
        token_id = _int32(token_id)
        while True:
            out = C.create_string_buffer(cap)
            got = C.c_size_t()
            saved = S.DetokState.from_buffer_copy(self._st)
            try:
                lib().call("llt_tokenizer_decode_next", self._tok._h, C.byref(self._st),
                           token_id, out, cap, C.byref(got))
            except CacheFullError:
                if got.value < cap:
                    raise
                C.pointer(self._st)[0] = saved  # retry from the same state
                cap = got.value + 1
                continue
            return out.raw[:got.value].decode("utf-8", "replace")


class SentencePieceTokenizer(Tokenizer):
    """The specification's SentencePieceTokenizer(model_path): encode(text, add_bos=True,
    add_eos=False) -> ids, decode(ids) -> text. Any tokenizer file Tokenizer reads works.
    decode also takes a 1-D integer torch tensor or numpy array."""

    def __init__(self, model_path):
        super().__init__(model_path, "model_path")


def _int32(v):
    try:
        i = operator.index(v)
    except TypeError:
        i = None
    if i is None or isinstance(v, bool) or not -2**31 <= i < 2**31:
        raise InvalidArgumentError("token id: expected an int32, got %r" % (v,))
    return i
