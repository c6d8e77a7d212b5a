"""Chat templates: `llama-triton template` against Jinja2 itself.

Every template in ../shared/fixtures/chat_templates/ (24 real models' chat templates) is
rendered with a set of conversations written here, by our C engine through the CLI and by
Debian's python3-jinja2 configured the way Hugging Face transformers configures it (see that
folder's SOURCES.md), and the two must be byte-for-byte identical -- or both must fail, with
Jinja's error message contained in ours (raise_exception, UndefinedError, SecurityError,
TypeError). Then hostile templates: deep nesting, runaway loops, huge output, recursion and
unsupported constructs must fail with a clear message and never crash or hang."""

import copy
import functools
import json
import os
import subprocess
from datetime import datetime

import pytest

jinja2 = pytest.importorskip("jinja2")  # python3-jinja2 is in the Makefile's DEB_PKGS
from jinja2.ext import Extension, loopcontrols  # noqa: E402
from jinja2.sandbox import ImmutableSandboxedEnvironment  # noqa: E402

from conftest import REPO, chat_templates  # noqa: E402

CLI = os.environ.get("LLT_CLI", str(REPO / "build" / "llama-triton"))
DATE = "2026-12-03"


TEMPLATES = chat_templates()
TEMPLATE_FILES = sorted(TEMPLATES.glob("*.jinja"))


# ---- the reference: transformers' Jinja environment (SOURCES.md) --------------------------------

class _Generation(Extension):
    """{% generation %}...{% endgeneration %} renders its body (transformers' AssistantTracker)."""
    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_render"), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


def _raise(message):
    raise jinja2.exceptions.TemplateError(message)


def _tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


@functools.lru_cache(maxsize=None)
def _compiled(source):
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[_Generation, loopcontrols])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise
    pinned = datetime.strptime(DATE, "%Y-%m-%d")
    env.globals["strftime_now"] = lambda fmt: pinned.strftime(fmt)
    return env.from_string(source)


def reference(source, messages, add_generation_prompt, tools=None, bos="<s>", eos="</s>"):
    # copies: the sandbox lets list.pop / list.clear mutate what a template is given
    kw = dict(messages=copy.deepcopy(messages), add_generation_prompt=add_generation_prompt, bos_token=bos,
              eos_token=eos)
    if tools is not None:
        kw["tools"] = copy.deepcopy(tools)
    return _compiled(source).render(**kw)


def ours(template_path, messages, add_generation_prompt, tmp_path, tools=None, bos="<s>", eos="</s>"):
    m = tmp_path / "messages.json"
    m.write_text(json.dumps(messages, ensure_ascii=False), encoding="utf-8")
    args = [CLI, "template", str(template_path), "--messages", str(m), "--bos", bos, "--eos", eos, "--date", DATE]
    if add_generation_prompt:
        args.append("--add-generation-prompt")
    if tools is not None:
        t = tmp_path / "tools.json"
        t.write_text(json.dumps(tools), encoding="utf-8")
        args += ["--tools", str(t)]
    return subprocess.run(args, capture_output=True, timeout=60)


# ---- conversations ------------------------------------------------------------------------------

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "The city, e.g. Taipei"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "description": "Unit"},
                "days": {"type": "integer", "description": "Forecast days", "default": 1},
            },
            "required": ["city"],
        },
    },
}
SEARCH_TOOL = {
    "type": "function",
    "function": {
        "name": "search",
        "description": "Search the web for \"exact\" phrases & <tags>",
        "parameters": {
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "What to look for"},
                "sites": {"type": "array", "items": {"type": "string"}, "description": "Sites to search"},
            },
            "required": ["query", "sites"],
        },
    },
}
TOOLS = [WEATHER_TOOL, SEARCH_TOOL]

CALL_ID = "call12345"  # 9 characters: Mistral's templates insist
TOOL_TURN = [
    {"role": "user", "content": "What's the weather in Taipei?"},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": CALL_ID, "type": "function",
         "function": {"name": "get_weather", "arguments": {"city": "Taipei", "unit": "celsius", "days": 2,
                                                           "ratio": 0.5, "big": 1e20, "flag": True,
                                                           "nothing": None, "list": [1, "二", 3.0]}}}]},
    {"role": "tool", "tool_call_id": CALL_ID, "name": "get_weather", "content": "{\"temperature\": 23, \"sky\": \"晴\"}"},
    {"role": "assistant", "content": "It is 23 °C and sunny in Taipei."},
]

CONVERSATIONS = {
    "user_only": [{"role": "user", "content": "Hello!"}],
    "system_user": [{"role": "system", "content": "You are a concise assistant."},
                    {"role": "user", "content": "Name three colours."}],
    "multi_turn": [{"role": "system", "content": "You are helpful."},
                   {"role": "user", "content": "Hi"},
                   {"role": "assistant", "content": "Hello! How can I help?"},
                   {"role": "user", "content": "Tell me a joke."},
                   {"role": "assistant", "content": "Why did the chicken cross the road?"},
                   {"role": "user", "content": "Why?"}],
    "cjk_emoji": [{"role": "user", "content": "台灣的首都是？"},
                  {"role": "assistant", "content": "台北市。🏙️"},
                  {"role": "user", "content": "ありがとう 😀👍 — 한국어도?"}],
    "quotes_braces": [{"role": "system", "content": "Use {{ braces }} and {% tags %} {# literally #}."},
                      {"role": "user", "content": "She said \"hi\" and 'bye'; path C:\\temp\\n; tab\there\nnew line"},
                      {"role": "assistant", "content": "<b>&amp;</b> [INST] <|eot_id|> {\"json\": true}"},
                      {"role": "user", "content": "}} %} #} end"}],
    "empty_content": [{"role": "user", "content": ""},
                      {"role": "assistant", "content": ""},
                      {"role": "user", "content": "  "}],
    "unicode_spaces": [{"role": "system", "content": "\u3000 full-width and\u00a0nbsp \t"},
                       {"role": "user", "content": "\n\n  trim me  \u2003\n"}],
    "content_parts": [{"role": "system", "content": [{"type": "text", "text": "Parts system."}]},
                      {"role": "user", "content": [{"type": "text", "text": "First part, "},
                                                   {"type": "text", "text": "second part 漢字"}]}],
    "reasoning": [{"role": "user", "content": "2+2?"},
                  {"role": "assistant", "content": "<think>\nadd them\n</think>\n\n4"},
                  {"role": "user", "content": "And 3+3?"}],
    "no_messages": [],
    "named_and_numbers": [{"role": "user", "name": "alice", "content": "hi from alice"},
                          {"role": "assistant", "content": "Hello Alice, with tool text",
                           "tool_calls": [{"id": "xyz987654", "type": "function",
                                           "function": {"name": "get_weather", "arguments": {}}}]},
                          {"role": "tool", "tool_call_id": "xyz987654", "content": {"temp": 3.25, "ok": False}},
                          {"role": "user", "content": 42}],
    "not_alternating": [{"role": "user", "content": "one"}, {"role": "user", "content": "two"}],
    "tool_calls": TOOL_TURN,
    "tool_calls_string_args": [
        {"role": "system", "content": "Tools are available."},
        {"role": "user", "content": "Search for llamas"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "abcdefghi", "type": "function",
             "function": {"name": "search", "arguments": "{\"query\": \"llamas\", \"sites\": [\"a.org\"]}"}}]},
        {"role": "tool", "tool_call_id": "abcdefghi", "name": "search", "content": "Llamas are camelids."},
        {"role": "user", "content": "Thanks"}],
}
WITH_TOOLS = {"tool_calls", "tool_calls_string_args", "user_only", "system_user"}

CASES = []
for path in TEMPLATE_FILES:
    for conv in CONVERSATIONS:
        for gen in (True, False):
            CASES.append((path.name, conv, gen, False))
            if conv in WITH_TOOLS:
                CASES.append((path.name, conv, gen, True))


@pytest.mark.parametrize("name,conv,gen,with_tools", CASES,
                         ids=[f"{n[:-6]}-{c}-{'gen' if g else 'nogen'}{'-tools' if t else ''}" for n, c, g, t in CASES])
def test_template_matches_jinja2(name, conv, gen, with_tools, tmp_path):
    path = TEMPLATES / name
    source = path.read_text(encoding="utf-8")
    messages = CONVERSATIONS[conv]
    tools = TOOLS if with_tools else None
    try:
        want, want_err = reference(source, messages, gen, tools), None
    except Exception as e:  # the template raises (or Python fails) for this input
        want, want_err = None, e
    r = ours(path, messages, gen, tmp_path, tools)
    if want_err is None:
        assert r.returncode == 0, f"Jinja2 rendered, we failed: {r.stderr.decode()}"
        assert r.stdout.decode("utf-8") == want
    else:
        assert r.returncode != 0, f"Jinja2 raised {type(want_err).__name__}: {want_err}; we rendered"
        assert r.stdout == b""
        assert str(want_err) in r.stderr.decode("utf-8"), f"Jinja2: {want_err!r}; ours: {r.stderr.decode()}"


def test_every_fixture_is_covered():
    assert len(TEMPLATE_FILES) == 24
    n_ok = 0
    for path in TEMPLATE_FILES:  # each template renders at least one conversation successfully
        try:
            reference(path.read_text(encoding="utf-8"), CONVERSATIONS["multi_turn"], True)
            n_ok += 1
        except Exception:
            pass
    assert n_ok >= 20


# ---- hostile and unsupported templates ----------------------------------------------------------

def render_text(tmp_path, source, messages=None, extra=()):
    t = tmp_path / "t.jinja"
    t.write_text(source, encoding="utf-8")
    m = tmp_path / "m.json"
    m.write_text(json.dumps(messages if messages is not None else [{"role": "user", "content": "x"}]))
    return subprocess.run([CLI, "template", str(t), "--messages", str(m), "--date", DATE, *extra],
                          capture_output=True, timeout=60)


@pytest.mark.parametrize("source,needle", [
    ("{% for i in range(100000000) %}x{% endfor %}", "range() of more than"),
    ("{% for i in range(999999) %}{% for j in range(999999) %}{% endfor %}{% endfor %}", "loop iterations"),
    ("{{ 'x' * 100000000 }}", "limit"),
    ("{% set ns = namespace(s='xxxxxxxxxxxxxxxx') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
     "limit"),
    ("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "macro calls nested deeper"),
    ("{{ " + "(" * 300 + "1" + ")" * 300 + " }}", "nested"),
    ("{% if x %}" * 300 + "{% endif %}" * 300, "nested"),
    ("{% include 'other.jinja' %}", "unsupported statement '{% include %}'"),
    ("{% extends 'base.jinja' %}", "unsupported statement '{% extends %}'"),
    ("{{ messages | wordcount }}", "unsupported filter 'wordcount'"),
    ("{% if %}", "syntax error"),
    ("{{ 1 + }}", "syntax error"),
    ("{% for m in messages %}", "expected '{% endfor %}'"),
    ("{{ messages[0].content.__class__ }}", ""),
    ("{{ raise_exception('stop: ' ~ messages|length) }}", "stop: 1"),
    ("{{ 1 // 0 }}", "ZeroDivisionError"),
    ("{{ 9223372036854775807 + 1 }}", "64 bits"),
    ("{{ messages.append(1) }}", "unsafe"),
    # chains built by loops in the parser, not by recursion: each of these overflowed the stack
    ("{{ " + "+".join(["1"] * 100000) + " }}", "expression nested deeper than 256 levels"),
    ("{{ 1" + "|string" * 100000 + " }}", "expression nested deeper than 256 levels"),
    ("{{ messages" + ".a" * 100000 + " }}", "expression nested deeper than 256 levels"),
    ("{{ messages" + "[0]" * 100000 + " }}", "expression nested deeper than 256 levels"),
    ("{{ raise_exception" + "()" * 100000 + " }}", "expression nested deeper than 256 levels"),
    ("{{ " + " and ".join(["1"] * 100000) + " }}", "expression nested deeper than 256 levels"),
    ("{{ 1" + " if 1" * 100000 + " }}", "expression nested deeper than 256 levels"),
    # 64 macro levels, each 100 blocks deep: bounded at run time
    ("{% macro f(n) %}" + "{% if true %}" * 100 + "{{ f(n + 1) if n < 63 }}" + "{% endif %}" * 100
     + "{% endmacro %}{{ f(0) }}", "template evaluation nested deeper than 4096 levels"),
    # a namespace is the one value a loop can grow: deep, self-holding, shared
    ("{% set ns = namespace(x=1) %}{% for i in range(100000) %}{% set ns.x = [ns.x] %}{% endfor %}{{ ns.x }}",
     "a namespace nested deeper than 512 levels"),
    ("{% set ns = namespace(x=1) %}{% set ns.x = ns %}{{ ns }}", "holds itself"),
    ("{% set a = namespace(x=1) %}{% set b = namespace(y=[a]) %}{% set a.x = b %}{{ a }}", "holds itself"),
    ("{% set ns = namespace(x=1) %}{% for i in range(100) %}{% set ns.x = [ns.x, ns.x] %}{% endfor %}"
     "{{ ns.x }}", "output passes the limit"),
    # short ids: pytest puts the test's id in the environment of the CLI it starts
], ids=lambda v: v if len(v) <= 40 else "%s...(%d chars)" % (v[:30], len(v)))
def test_hostile_templates_fail_clearly(tmp_path, source, needle):
    r = render_text(tmp_path, source)
    if needle == "":  # Python's dunder attributes are not reachable: renders as undefined -> ""
        assert r.returncode == 0 and r.stdout == b""
        return
    assert r.returncode == 1, r
    err = r.stderr.decode()
    assert needle in err, err
    assert "chat template" in err


@pytest.mark.parametrize("source,needle", [
    ("{{ messages[0:1, 0] }}", "a slice inside a subscript tuple"),  # fuzz_template: crashed the renderer
    ("{{ messages[:, 0] }}", "a slice inside a subscript tuple"),
    ("{{ messages[0,] }}", "expected an expression, got ']'"),
])
def test_subscripts_jinja_rejects_fail_clearly(tmp_path, source, needle):
    """Subscripts Jinja2 itself refuses (a slice in a subscript tuple compiles to Python that does
    not parse; a trailing comma is a TemplateSyntaxError) are a syntax error here too."""
    with pytest.raises((SyntaxError, jinja2.TemplateSyntaxError)):
        jinja2.Environment().from_string(source).render(messages=[[1]])
    r = render_text(tmp_path, source)
    assert r.returncode == 1, r
    err = r.stderr.decode()
    assert "chat template 1:" in err and needle in err, err


def test_long_elif_chain_renders(tmp_path):
    """An elif chain is a loop in the parser and the renderer (it was a recursion that 100000
    elifs overflowed); Jinja renders any length."""
    source = "{% if messages|length == 0 %}a" + "{% elif false %}b" * 100000 + "{% else %}last{% endif %}"
    r = render_text(tmp_path, source)
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout == b"last"


def test_error_names_line_and_column(tmp_path):
    r = render_text(tmp_path, "line one\n{{ messages[0].content }}\n  {{ nope.attr }}")
    assert r.returncode == 1
    assert "chat template 3:11: UndefinedError: 'nope' is undefined" in r.stderr.decode()


def test_template_from_model_folder(tmp_path):
    cfg = {"chat_template": [{"name": "tool_use", "template": "T"},
                             {"name": "default", "template": "{{ bos_token }}{{ messages[0]['content'] }}{{ eos_token }}"}],
           "bos_token": {"content": "<|begin|>"}, "eos_token": "<|end|>"}
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(cfg))
    m = tmp_path / "m.json"
    m.write_text(json.dumps([{"role": "user", "content": "hi"}]))
    r = subprocess.run([CLI, "template", str(tmp_path), "--messages", str(m)], capture_output=True)
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout.decode() == "<|begin|>hi<|end|>"
    (tmp_path / "tokenizer_config.json").write_text("{}")
    r = subprocess.run([CLI, "template", str(tmp_path), "--messages", str(m)], capture_output=True)
    assert r.returncode == 1 and "--chat-template FILE" in r.stderr.decode()
