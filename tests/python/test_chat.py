"""Chat (issue 11, the chat half): templates applied from Python, LlamaGenerator.chat on the
CPU fixtures end to end (template -> tokens -> reply streamed), the greedy reply equal to a plain
generation of the rendered text with the same special-token handling, multi-turn reuse of the KV
cache (counters), the Llama 3 template's markers as single token ids, and `llama-triton chat`
scripted through stdin. References nobody here wrote: python3-jinja2 renders the templates as
transformers configures it, special_tokens.json gives Meta's ids."""

import json
import os
import re
import signal
import subprocess
import time

import pytest

from conftest import LLAMA3_TOK, REPO, STORIES, chat_templates, needs

CHAT = ("llt_chat_create", "llt_chat_turn", "llt_template_parse", "llt_template_render")


NEMO = chat_templates() / "mistralai-Mistral-Nemo-Instruct-2407.jinja"    # [INST] ... [/INST], bos_token
LLAMA32 = chat_templates() / "meta-llama-Llama-3.2-3B-Instruct.jinja"
CLI = os.environ.get("LLT_CLI", str(REPO / "build" / "llama-triton"))


def _jinja2(src, **ctx):
    """The reference: Jinja2 configured as transformers configures it (SOURCES.md)."""
    jinja2 = pytest.importorskip("jinja2")
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(msg):
        raise jinja2.exceptions.TemplateError(msg)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = lambda x, indent=None, **kw: json.dumps(x, ensure_ascii=False, indent=indent)
    env.globals["raise_exception"] = raise_exception
    return env.from_string(src).render(**ctx)


@pytest.fixture(scope="module")
def gen():
    import llama_triton as L
    with L.LlamaGenerator(str(STORIES), device="cpu", max_seqs=2) as g:
        yield g


MSGS = [{"role": "user", "content": "Once upon a time"}]


@needs(*CHAT)
def test_apply_chat_template_is_jinja2s(gen):
    src = NEMO.read_text()
    msgs = [{"role": "system", "content": "Be kind. {\"x\": 1}"}, {"role": "user", "content": "Hi 台北"},
            {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "More"}]
    got = gen.apply_chat_template(msgs, chat_template=src)
    want = _jinja2(src, messages=msgs, add_generation_prompt=True, bos_token="<s>", eos_token="</s>")
    assert got == want and got.startswith("<s>[INST]Hi 台北[/INST]Hello!</s>")
    import llama_triton as L
    with pytest.raises(L.LlamaTritonError, match="alternate"):  # the template's raise_exception
        gen.apply_chat_template([{"role": "assistant", "content": "x"}], chat_template=src)


@needs(*CHAT)
def test_chat_equals_generate_of_the_rendered_text(gen):
    src = NEMO.read_text()
    reply = gen.chat(MSGS, chat_template=src, temperature=0, max_new_tokens=24)
    text = gen.apply_chat_template(MSGS, chat_template=src)
    assert text == "<s>[INST]Once upon a time[/INST]"
    want = gen.generate(text, temperature=0, max_new_tokens=24, add_bos=False, parse_special=True)
    assert reply == want and len(reply) > 10
    pieces = list(gen.chat(MSGS, chat_template=src, temperature=0, max_new_tokens=24, stream=True))
    assert len(pieces) > 3 and "".join(pieces) == reply


@needs(*CHAT)
def test_multi_turn_prefills_only_the_new_tokens(gen):
    src = NEMO.read_text()
    tok = gen.tokenizer
    r1 = gen.chat(MSGS, chat_template=src, temperature=0, max_new_tokens=16)
    n1 = len(tok.encode(gen.apply_chat_template(MSGS, chat_template=src), add_bos=False, parse_special=True))
    msgs2 = MSGS + [{"role": "assistant", "content": r1}, {"role": "user", "content": "Lily"}]
    text2 = gen.apply_chat_template(msgs2, chat_template=src)
    n2 = len(tok.encode(text2, add_bos=False, parse_special=True))
    r2 = gen.chat(msgs2, chat_template=src, temperature=0, max_new_tokens=16)
    prefilled = gen.last_stats["n_prompt"]
    reused = gen.chat_session.n_reused
    assert reused >= n1 and reused + prefilled == n2 and prefilled < n2 - n1, (reused, prefilled, n1, n2)
    assert r2 == gen.generate(text2, temperature=0, max_new_tokens=16, add_bos=False, parse_special=True)


@needs(*CHAT)
def test_model_without_template_says_how(gen):
    import llama_triton as L
    with pytest.raises(L.LlamaTritonError, match="chat-template|chat_template"):
        gen.chat(MSGS)


@needs(*CHAT)
def test_llama3_template_markers_are_single_ids():
    import llama_triton as L
    special = json.loads((LLAMA3_TOK.parent / "special_tokens.json").read_text())
    tmpl = L.ChatTemplate(LLAMA32.read_text(), bos_token="<|begin_of_text|>", eos_token="<|eot_id|>")
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "台灣的首都是？"}]
    text = tmpl.render(msgs, add_generation_prompt=True, date="2026-12-03")
    tok = L.Tokenizer(str(LLAMA3_TOK))
    ids = tok.encode(text, add_bos=False, parse_special=True)
    markers = re.findall(r"<\|[a-z_]+\|>", text)
    assert len(markers) == 9 and markers[0] == "<|begin_of_text|>"
    assert [i for i in ids if i >= 128000] == [special[m] for m in markers]
    assert tok.decode([i for i in ids if i < 128000]) == re.sub(r"<\|[a-z_]+\|>", "", text)  # the text between
    assert all(tok.is_eog(special[m]) for m in ("<|eot_id|>", "<|eom_id|>", "<|end_of_text|>"))


# ---- the CLI -----------------------------------------------------------------------------

def _cli(*args, stdin=None, timeout=120):
    return subprocess.run([CLI, *args], input=stdin, capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, LLT_PROGRESS="off"))


def _rendered(tmp_path, msgs):
    f = tmp_path / "m.json"
    f.write_text(json.dumps(msgs))
    r = _cli("template", str(NEMO), "--messages", str(f), "--add-generation-prompt", "--bos", "<s>", "--eos", "</s>")
    assert r.returncode == 0, r.stderr
    return r.stdout


@needs(*CHAT)
def test_cli_chat_scripted(tmp_path):
    flags = ["--chat-template", str(NEMO), "--temperature", "0", "-n", "16", "--device", "cpu"]
    r = _cli("chat", str(STORIES), *flags, stdin="Once upon a time\nLily\n/reset\nOnce upon a time\n/exit\nnever\n")
    assert r.returncode == 0, r.stderr
    replies = r.stdout.split("\n")
    assert len(replies) == 4 and replies[3] == "", r.stdout  # three replies, each closed by a newline
    stats = re.findall(r"\[prompt: (\d+) new tokens \((\d+) reused", r.stderr)
    assert len(stats) == 3 and int(stats[1][1]) > int(stats[1][0]) and stats[2][1] == "0", r.stderr
    assert "[conversation reset]" in r.stderr and replies[2] == replies[0]
    # the first reply == a plain run of the rendered text with the same special-token handling
    text = _rendered(tmp_path, MSGS)
    plain = _cli(str(STORIES), "-p", text, "--parse-special", "--no-bos", "--temperature", "0", "-n", "16",
                 "--device", "cpu")
    assert plain.returncode == 0 and plain.stdout.rstrip("\n") == replies[0]
    # the second turn renders the whole conversation: its reply is the plain run of that text
    text2 = _rendered(tmp_path, MSGS + [{"role": "assistant", "content": replies[0]},
                                        {"role": "user", "content": "Lily"}])
    plain2 = _cli(str(STORIES), "-p", text2, "--parse-special", "--no-bos", "--temperature", "0", "-n", "16",
                  "--device", "cpu")
    assert plain2.stdout.rstrip("\n") == replies[1]
    # run --chat: one user turn through the template
    one = _cli(str(STORIES), "-p", "Once upon a time", "--chat", *flags)
    assert one.returncode == 0 and one.stdout.rstrip("\n") == replies[0], one.stderr


@needs(*CHAT)
def test_cli_chat_without_template_points_at_the_flag():
    r = _cli("chat", str(STORIES), "--device", "cpu", stdin="hi\n")
    assert r.returncode == 1 and "--chat-template" in r.stderr and r.stdout == ""
    r = _cli(str(STORIES), "-p", "hi", "--chat", "--device", "cpu")
    assert r.returncode == 1 and "--chat-template" in r.stderr


@needs(*CHAT)
def test_cli_chat_ctrl_c_stops_the_reply_not_the_program():
    p = subprocess.Popen([CLI, "chat", str(STORIES), "--chat-template", str(NEMO), "-n", "-1", "--temperature", "1",
                          "--seed", "1", "--device", "cpu", "--threads", "1"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ, LLT_PROGRESS="off"))
    try:
        p.stdin.write(b"Once upon a time\n")
        p.stdin.flush()
        first = p.stdout.read(1)  # the reply has started streaming
        p.send_signal(signal.SIGINT)
        time.sleep(0.2)
        p.send_signal(signal.SIGINT)  # a second one at the prompt (or in the reply) is harmless too
        out, err = p.communicate(b"Lily\n/exit\n", timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    assert first and p.returncode == 0, err
    assert b"[stopped]" in err and err.count(b"[prompt:") == 2, err
