"""Chat templates and chat sessions (the C template engine and llt_chat).

apply_chat_template() renders OpenAI-style messages with the model's own chat template (the
Jinja text of tokenizer_config.json or the GGUF key tokenizer.chat_template), rendered in C
exactly as transformers renders it. LlamaGenerator.chat() renders the conversation and runs
it through one chat session per generator, whose KV cache keeps the conversation between calls:
a call whose messages extend the previous call's (plus its reply) prefills only the new
tokens."""

import ctypes as C
import json

from . import _structs as S
from ._handle import Handle
from ._lib import lib
from .errors import InvalidArgumentError

_free = C.CDLL(None).free  # the library's malloc'd strings (same process allocator)
_free.argtypes, _free.restype = [C.c_void_p], None


def _take_string(ptr):
    """A malloc'd C string -> str, freed."""
    if not ptr:
        return None
    try:
        return C.string_at(ptr).decode("utf-8")
    finally:
        _free(ptr)


class ChatTemplate(Handle):
    """ChatTemplate(source, bos_token=None, eos_token=None): a parsed Jinja chat template.
    ChatTemplate.from_model(path) takes a model's own template and BOS/EOS texts (a model
    without one raises NotFoundError, whose message points at chat_template=...)."""

    _free_name = "llt_template_free"

    def __init__(self, source, bos_token=None, eos_token=None):
        if isinstance(source, str):
            source = source.encode("utf-8")
        if not isinstance(source, bytes):
            raise InvalidArgumentError("ChatTemplate: expected the template text, got %r"
                                       % type(source).__name__)
        ptr = C.c_void_p()
        lib().call("llt_template_parse", source, len(source), C.byref(ptr))
        super().__init__(ptr.value)
        self.bos_token, self.eos_token = bos_token, eos_token

    @classmethod
    def from_model(cls, model_path):
        src, bos, eos = C.c_void_p(), C.c_void_p(), C.c_void_p()
        lib().call("llt_chat_template_from_path", str(model_path).encode(), C.byref(src),
                   C.byref(bos), C.byref(eos))
        text, b, e = _take_string(src.value), _take_string(bos.value), _take_string(eos.value)
        return cls(text, b, e)

    def render(self, messages, add_generation_prompt=True, tools=None, date=None,
               bos_token=None, eos_token=None):
        """The rendered text (str). messages: a list of {"role", "content", ...} dicts;
        tools: a list of tool definitions; date: "YYYY-MM-DD" pins strftime_now."""
        if isinstance(messages, (str, bytes)) or not isinstance(messages, (list, tuple)):
            raise InvalidArgumentError("messages: expected a list of {'role': ..., 'content': ...}")
        data = json.dumps(list(messages), ensure_ascii=False).encode("utf-8")
        enc = lambda s: None if s is None else str(s).encode("utf-8")  # noqa: E731
        o = S.ChatOpts(bool(add_generation_prompt), enc(bos_token or self.bos_token),
                     enc(eos_token or self.eos_token),
                     None if tools is None else json.dumps(tools, ensure_ascii=False).encode("utf-8"),
                     enc(date))
        out, n = C.c_void_p(), C.c_size_t()
        lib().call("llt_template_render", self._h, data, len(data), C.byref(o), C.byref(out),
                   C.byref(n))
        try:
            return C.string_at(out.value, n.value).decode("utf-8")
        finally:
            _free(out.value)


class ChatSession(Handle):
    """One llt_chat on a model: the conversation's tokens stay in the model's KV cache. Holds
    the model so that the model outlives it."""

    _free_name = "llt_chat_free"

    def __init__(self, model):
        ptr = C.c_void_p()
        lib().call("llt_chat_create", model._h, C.byref(ptr))
        super().__init__(ptr.value)
        self._model = model

    def reset(self):
        lib().fn("llt_chat_reset")(self._h)

    @property
    def n_cached(self):
        return lib().fn("llt_chat_n_cached")(self._h)

    @property
    def n_reused(self):
        return lib().fn("llt_chat_n_reused")(self._h)


# ---- LlamaGenerator's chat state (kept here so generator.py only delegates) ----------------

def _vocab_text(tok, token_id):
    return tok.id_to_piece(token_id) if token_id is not None and token_id >= 0 else None


def template_for(gen, chat_template=None):
    """chat_template (Jinja text) with the model's BOS/EOS texts, else the model's own template
    (cached on the generator)."""
    if chat_template is None:
        t = gen.__dict__.get("_chat_template")
        if t is None:
            t = gen.__dict__["_chat_template"] = ChatTemplate.from_model(gen.model.path)
        return t
    cache = gen.__dict__.setdefault("_chat_templates", {})
    t = cache.get(chat_template)
    if t is None:
        tok = gen.tokenizer
        t = cache[chat_template] = ChatTemplate(chat_template, _vocab_text(tok, tok.bos_id()),
                                                _vocab_text(tok, tok.eos_id()))
    return t


def session_for(gen):
    s = gen.__dict__.get("_chat_session")
    if s is None or s.closed:
        s = gen.__dict__["_chat_session"] = ChatSession(gen.model)
    return s


def release(gen):
    s = gen.__dict__.pop("_chat_session", None)
    if s is not None and not s.closed:
        s.close()
