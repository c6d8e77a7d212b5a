"""LlamaGenerator: the specification's text generation front end over llt_generate and
llt_generate_batch.

Streaming (stream=True) is a true lazy iterator: the C generation runs in a worker thread
(ctypes releases the GIL during the call) and hands each piece through a small bounded queue,
so the generation advances only a few pieces ahead of the reader. Leaving the loop early (or
close()) tells the C loop to stop at its next token. Closing the generator ends every open
stream with ClosedError; a KeyboardInterrupt while waiting for a piece ends that stream.

Ctrl-C during a generation that runs in the main thread is recorded by a temporary SIGINT
handler (a KeyboardInterrupt raised inside a ctypes callback would be printed and ignored);
the callback then stops the C loop and the KeyboardInterrupt is raised when it returns."""

import contextlib
import ctypes as C
import queue
import signal
import threading

from . import _structs as S
from . import chat as _chat
from ._lib import lib
from .errors import (BatchError, CancelledError, ClosedError, InvalidArgumentError,
                     LlamaTritonError, error_for_status)
from .model import LlamaTritonModel

_DONE = object()


class LlamaGenerator:
    """LlamaGenerator(model_dir, device='cuda', *, fmt=None, dtype=None, **load_options).

    model_dir: a .gguf file, a Hugging Face folder (fmt="hf"), or a native folder
    (fmt="triton"); fmt None detects it. device: "cuda" (default; the CPU with a warning on
    stderr when there is no GPU), "cpu", "cuda:N", ["cuda:0", "cuda:1"] (layer split), ...
    dtype: compute dtype ("bfloat16", "f16", ...); a Hugging Face folder's converted cache is
    written in it. max_seqs: sequence slots of the model's KV cache, the most prompts
    generate_batch runs at once (its `parallel` is clamped to it). Other keywords go to
    LlamaTritonModel (n_threads, page_size, max_pages, kv_dtype, ...)."""

    def __init__(self, model_dir, device="cuda", *, fmt=None, dtype=None, max_seqs=8, **load_options):
        self.model = LlamaTritonModel(model_dir, device=device, fmt=fmt, dtype=dtype,
                                      max_seqs=max_seqs, **load_options)
        self._streams = set()
        self.last_stats = None          # llt_gen_stats of the last generation, as a dict
        self.last_token_counts = None   # generate_batch: generated tokens per prompt

    @property
    def tokenizer(self):
        return self.model.tokenizer

    @property
    def config(self):
        return self.model.config

    # --- single prompt ---
    def generate(self, prompt, max_new_tokens=32, temperature=0.8, top_p=0.9, top_k=0, seed=None,
                 stream=False, add_bos=True, parse_special=False):
        """Generated text of `prompt` (the prompt itself is not repeated). max_new_tokens -1
        runs until an end-of-generation token or the context is full; temperature 0 is greedy;
        seed None seeds from the clock. stream=True returns an iterator of pieces."""
        params = _params(max_new_tokens, temperature, top_p, top_k, seed, add_bos, parse_special)
        data = _text(prompt, "prompt")
        run = lambda cb, stats: lib().call(  # noqa: E731
            "llt_generate", self.model._h, data, C.byref(params), cb, None, C.byref(stats))
        if stream:
            return self._stream(run, with_index=False)
        return "".join(p for _, p in self._collect(run))

    # --- many prompts, one forward pass per step for all sequences in flight ---
    def generate_batch(self, prompts, parallel=4, max_new_tokens=32, temperature=0.8, top_p=0.9,
                       top_k=0, seed=None, stream=False, add_bos=True, parse_special=False):
        """Texts of several prompts (in prompt order), with up to `parallel` sequences in
        flight (at most the model's max_seqs); prompt i is sampled with seed + i. stream=True
        returns an iterator of (prompt_index, piece) in the order they are produced.
        last_token_counts then holds the generated tokens of each prompt."""
        if isinstance(prompts, (str, bytes)):
            raise InvalidArgumentError("generate_batch: expected a list of prompts, got one string")
        datas = [_text(p, "prompts[%d]" % i) for i, p in enumerate(prompts)]
        n = len(datas)
        if isinstance(parallel, bool) or not isinstance(parallel, int) or not 1 <= parallel < 2**31:
            raise InvalidArgumentError("generate_batch: parallel must be an int in [1, 2**31), got %r"
                                       % (parallel,))
        if n >= 2**31:
            raise InvalidArgumentError("generate_batch: %d prompts, at most 2**31 - 1" % n)
        params = _params(max_new_tokens, temperature, top_p, top_k, seed, add_bos, parse_special)
        arr = (C.c_char_p * max(1, n))(*datas)
        counts = (C.c_int32 * max(1, n))()
        errs = (S.Error * max(1, n))()
        if lib().has("llt_generate_batch_each"):  # engine/batch.h: token counts, per-prompt errors
            def run(cb, stats):
                try:
                    lib().call("llt_generate_batch_each", self.model._h, arr, n, parallel,
                               C.byref(params), cb, None, counts, errs, C.byref(stats))
                except LlamaTritonError as e:
                    failed = [error_for_status(x.status, x.msg.decode("utf-8", "replace")) if x.status else None
                              for x in errs[:n]]
                    if any(failed):  # the others ran
                        raise BatchError(e.message, e.status, failed) from None
                    raise
        else:
            run = lambda cb, stats: lib().call(  # noqa: E731
                "llt_generate_batch", self.model._h, arr, n, parallel, C.byref(params),
                cb, None, C.byref(stats))
        if stream:
            return self._stream(run, with_index=True)
        pieces = []
        try:
            self._collect(run, pieces)
        except BatchError as e:
            e.results = [None if e.errors[i] else t for i, t in enumerate(_join(pieces, n))]
            e.token_counts = self.last_token_counts = list(counts[:n])
            raise
        self.last_token_counts = list(counts[:n])
        return _join(pieces, n)

    # --- chat (chat.py): the model's chat template, one chat session per generator ---
    def apply_chat_template(self, messages, add_generation_prompt=True, chat_template=None,
                            tools=None, date=None):
        """The conversation (a list of {"role", "content", ...}) rendered with the model's chat
        template, or with chat_template (Jinja text), as transformers' apply_chat_template(...,
        tokenize=False) renders it. date "YYYY-MM-DD" pins strftime_now."""
        return _chat.template_for(self, chat_template).render(messages, add_generation_prompt, tools, date)

    def chat(self, messages, stream=False, chat_template=None, tools=None, date=None,
             max_new_tokens=512, temperature=0.8, top_p=0.9, top_k=0, seed=None):
        """The assistant's reply to `messages`, generated after the rendered conversation until
        an end-of-turn token (<|eot_id|>, <|im_end|>, EOS, ...) or max_new_tokens; stream=True
        yields the pieces. The conversation stays in the KV cache (chat_session): a next call
        whose messages extend these (the reply included) prefills only the new tokens;
        last_stats["n_prompt"] counts the tokens a call prefilled."""
        text = self.apply_chat_template(messages, True, chat_template, tools, date).encode("utf-8")
        params = _params(max_new_tokens, temperature, top_p, top_k, seed, True, True)
        session = self.chat_session
        run = lambda cb, stats: lib().call(  # noqa: E731
            "llt_chat_turn", session._h, text, len(text), C.byref(params), cb, None, C.byref(stats))
        if stream:
            return self._stream(run, with_index=False)
        return "".join(p for _, p in self._collect(run))

    @property
    def chat_session(self):
        """The ChatSession whose KV cache holds the conversation of chat() (created on first use;
        reset() forgets it)."""
        return _chat.session_for(self)

    # --- plumbing ---
    def _collect(self, run, pieces=None):
        """Runs in this thread; returns [(index, piece)] (appended to `pieces` as they come).
        An exception raised inside the callback, or Ctrl-C, stops the C loop and is re-raised
        here."""
        pieces = [] if pieces is None else pieces
        failure = []

        def on_piece(index, ptr, n, token, user):
            if failure:  # Ctrl-C was recorded: stop now
                return 1
            try:
                pieces.append((index, C.string_at(ptr, n).decode("utf-8", "replace")))
                return 0
            except BaseException as e:  # noqa: B902  re-raised after the C call returns
                failure.append(e)
                return 1

        cb = S.TOKEN_CB(on_piece)
        with self.model._acquire(), _sigint_recorded(failure):
            self._run(run, cb, failure)
        return pieces

    def _run(self, run, cb, failure):
        stats = S.GenStats()
        try:
            run(cb, stats)
        except CancelledError:
            if not failure:
                raise
        finally:
            self.last_stats = {k: getattr(stats, k) for k, _ in S.GenStats._fields_}
        if failure:
            raise failure[0]

    def _stream(self, run, with_index):
        self.model._h  # fail now, not on the first next(), when closed
        return _Stream(self, run, with_index)

    def close(self):
        """Stops running streams (their next read raises ClosedError) and frees the model. A
        second close() raises ClosedError."""
        for st in list(self._streams):
            st.close(ClosedError("the LlamaGenerator was closed while this stream was open", 7))
        _chat.release(self)  # the chat session's sequence lives in the model's cache
        self.model.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if not self.model.closed:
            self.close()


class _StreamState:
    """What the worker thread shares with the reader: the queue and the stop flag. The worker
    never refers to the _Stream itself, so dropping the iterator lets __del__ stop it."""

    def __init__(self):
        self.q = queue.Queue(maxsize=8)
        self.stop = threading.Event()
        self.thread = None
        self.reader = None  # ident of the thread reading the stream
        self.error = None   # why the stream was ended from outside (raised by the next read)

    def put(self, item):
        """Blocks while the reader is behind; gives up (False) once stop is set."""
        while not self.stop.is_set():
            try:
                self.q.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def on_piece(self, index, ptr, n, token, user):
        try:
            piece = C.string_at(ptr, n).decode("utf-8", "replace")
            return 0 if self.put((index, piece)) else 1
        except BaseException:  # noqa: B902  never let an exception cross into C
            return 1

    def finish(self, item):
        """The worker's last item. Waits for the reader like put(); once stopped, makes room by
        dropping unread pieces, so that a reader blocked in get() always wakes up."""
        if self.put(item):
            return
        while True:
            try:
                self.q.put_nowait(item)
                return
            except queue.Full:
                with contextlib.suppress(queue.Empty):
                    self.q.get_nowait()

    def interrupt(self, error):
        """Ends the stream without waiting for the worker (it stops at its next token and then
        releases the model); the next read raises `error`."""
        if self.error is None:
            self.error = error
        self.stop.set()

    def close(self, error=None):
        if error is not None:
            self.interrupt(error)
        self.stop.set()
        t = self.thread
        if t is not None and t is not threading.current_thread():
            t.join()


def _stream_worker(gen, run, st, cb):
    try:
        with gen.model._acquire():
            gen.model._stream_state = st
            try:
                gen._run(run, cb, [])
            finally:
                gen.model._stream_state = None
        st.finish((_DONE, None))
    except BaseException as e:  # noqa: B902  handed to the reader
        st.finish((_DONE, e))
    finally:
        gen._streams.discard(st)


class _Stream:
    """Iterator over the pieces of a generation running in a worker thread."""

    def __init__(self, gen, run, with_index):
        self._gen, self._run, self._with_index = gen, run, with_index
        self._st = _StreamState()
        self._finished = False

    def __iter__(self):
        return self

    def _start(self):
        st = self._st
        cb = S.TOKEN_CB(st.on_piece)  # referenced by the worker's frame while it runs
        self._gen._streams.add(st)
        st.thread = threading.Thread(target=_stream_worker, args=(self._gen, self._run, st, cb),
                                     name="llama_triton-generate", daemon=True)
        st.thread.start()

    def __next__(self):
        if self._finished:
            raise StopIteration
        st = self._st
        if st.error is not None:
            self._finished = True
            raise type(st.error)(st.error.message, st.error.status)
        st.reader = threading.get_ident()
        if st.thread is None:
            self._start()
        try:
            index, piece = st.q.get()
        except BaseException:  # noqa: B902  Ctrl-C while waiting: end the stream, free the model
            st.interrupt(CancelledError("the stream was interrupted (KeyboardInterrupt)", 10))
            self._finished = True
            raise
        if index is _DONE:
            self._finished = True
            if st.error is not None:
                raise type(st.error)(st.error.message, st.error.status)
            if piece is not None and not isinstance(piece, CancelledError):
                raise piece
            raise StopIteration
        return (index, piece) if self._with_index else piece

    def close(self):
        """Stops the generation (at its next token) and waits for the worker."""
        self._finished = True
        self._st.close()

    def __del__(self):
        # no join here: the C loop stops at its next token and the worker then exits
        self._st.stop.set()


@contextlib.contextmanager
def _sigint_recorded(failure):
    """In the main thread, with Python's default SIGINT handler in place: Ctrl-C appends a
    KeyboardInterrupt to `failure` instead of raising it (inside a ctypes callback it would be
    printed and ignored); the callback then stops the C loop and _run raises it."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield
        return
    old = signal.signal(signal.SIGINT, lambda signum, frame: failure.append(KeyboardInterrupt()))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def _join(pieces, n):
    texts = [[] for _ in range(n)]
    for i, piece in pieces:
        texts[i].append(piece)
    return ["".join(t) for t in texts]


def _text(s, what):
    if isinstance(s, str):
        data = s.encode("utf-8")
    elif isinstance(s, bytes):
        data = s
    else:
        raise InvalidArgumentError("%s: expected str, got %r" % (what, type(s).__name__))
    if b"\0" in data:
        raise InvalidArgumentError("%s: contains a NUL character" % what)
    return data


def _params(max_new_tokens, temperature, top_p, top_k, seed, add_bos, parse_special):
    p = S.GenParams()
    lib().fn("llt_gen_params_init")(C.byref(p))
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or not -1 <= max_new_tokens < 2**31:
        raise InvalidArgumentError("max_new_tokens: expected an int >= 0 (or -1: until the context "
                                   "is full), got %r" % (max_new_tokens,))
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 0 <= top_k < 2**31:
        raise InvalidArgumentError("top_k: expected an int >= 0, got %r" % (top_k,))
    try:
        temperature, top_p = float(temperature), float(top_p)
    except (TypeError, ValueError):
        raise InvalidArgumentError("temperature / top_p: expected numbers") from None
    if not temperature >= 0 or temperature == float("inf"):
        raise InvalidArgumentError("temperature: expected a finite number >= 0, got %r" % temperature)
    if not 0 <= top_p <= 1:
        raise InvalidArgumentError("top_p: expected a number in [0, 1], got %r" % top_p)
    p.max_new_tokens, p.temperature, p.top_p, p.top_k = max_new_tokens, temperature, top_p, top_k
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**64:
            raise InvalidArgumentError("seed: expected an unsigned 64-bit int, got %r" % (seed,))
        p.seed = seed
    p.add_bos, p.parse_special = bool(add_bos), bool(parse_special)
    return p
