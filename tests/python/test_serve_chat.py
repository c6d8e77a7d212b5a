"""Chat completions through `llama-triton serve`: the prompt is the chat template rendered as
transformers renders it (python3-jinja2's sandbox, the reference nobody here wrote), tokenized
with special tokens parsed; the greedy reply equals the CLI's greedy continuation of that
text. Streaming, n, stop and the chat-shaped logprobs; the official Node client's chat calls;
message errors."""

import httpx
import pytest

from conftest import chat_templates
from serve_util import Server, sse_events
from serve_util import cli_chat as _cli_chat

jinja2 = pytest.importorskip("jinja2")  # python3-jinja2 is in the Makefile's DEB_PKGS

TEMPLATE = chat_templates() / "microsoft-Phi-3.5-mini-instruct.jinja"
MESSAGES = [{"role": "system", "content": "You tell short stories."},
            {"role": "user", "content": "Tell me about a dog."}]


def cli_chat(messages, n):
    return _cli_chat(TEMPLATE, messages, n)


@pytest.fixture(scope="module")
def server():
    with Server("--parallel", "4", "--chat-template", TEMPLATE) as s:
        yield s


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


def test_chat_greedy_equals_cli(client):
    want = cli_chat(MESSAGES, 24)
    r = client.post("/v1/chat/completions", json={"messages": MESSAGES, "max_tokens": 24, "temperature": 0})
    assert r.status_code == 200, r.text
    j = r.json()
    assert j["object"] == "chat.completion" and j["id"].startswith("chatcmpl-")
    msg = j["choices"][0]["message"]
    assert msg == {"role": "assistant", "content": want}
    assert j["usage"]["completion_tokens"] <= 24
    # content given as a list of text parts renders the same
    parts = [dict(m, content=[{"type": "text", "text": m["content"][:5]}, {"type": "text", "text": m["content"][5:]}])
             for m in MESSAGES]
    r2 = client.post("/v1/chat/completions", json={"messages": parts, "max_tokens": 24, "temperature": 0})
    assert r2.json()["choices"][0]["message"]["content"] == want


def test_chat_stream_n_stop_logprobs(client):
    want = cli_chat(MESSAGES, 20)
    with client.stream("POST", "/v1/chat/completions",
                       json={"messages": MESSAGES, "max_tokens": 20, "temperature": 0, "stream": True, "n": 2,
                             "stream_options": {"include_usage": True}}) as r:
        assert r.status_code == 200
        events, done = sse_events(list(r.iter_lines()))
    assert done and events[-1]["choices"] == [] and events[-1]["usage"]["completion_tokens"] > 0
    text = {0: "", 1: ""}
    roles = set()
    for e in events[:-1]:
        assert e["object"] == "chat.completion.chunk"
        for c in e["choices"]:
            d = c["delta"]
            roles.add(d.get("role"))
            text[c["index"]] += d.get("content") or ""
    assert text == {0: want, 1: want} and "assistant" in roles
    if len(want) > 6:
        stop = want[3:6]
        j = client.post("/v1/chat/completions", json={"messages": MESSAGES, "max_tokens": 20, "temperature": 0,
                                                      "stop": stop}).json()
        assert j["choices"][0]["message"]["content"] == want[:want.index(stop)]
        assert j["choices"][0]["finish_reason"] == "stop"
    j = client.post("/v1/chat/completions", json={"messages": MESSAGES, "max_tokens": 5, "temperature": 0,
                                                  "logprobs": True, "top_logprobs": 2}).json()
    content = j["choices"][0]["logprobs"]["content"]
    assert len(content) == j["usage"]["completion_tokens"]
    for t in content:
        assert t["logprob"] <= 0 and len(t["top_logprobs"]) == 2
        assert t["top_logprobs"][0]["logprob"] == pytest.approx(t["logprob"], abs=1e-6)
        assert bytes(t["bytes"]).decode() == t["token"]


def test_chat_errors(client):
    for body, param in [({"messages": "hi"}, "messages"), ({"messages": []}, "messages"),
                        ({"messages": [{"content": "x"}]}, "messages[0].role"),
                        ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
                        ({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, "messages[0].content"),
                        ({"messages": MESSAGES, "top_logprobs": 2}, "top_logprobs"),
                        ({"messages": MESSAGES, "logprobs": 3}, "logprobs"), ({}, "messages")]:
        r = client.post("/v1/chat/completions", json=body)
        assert r.status_code == 400 and r.json()["error"]["param"] == param, (body, r.text)


def test_chat_without_template():
    with Server("--parallel", "1") as s, httpx.Client(base_url=s.url) as c:
        r = c.post("/v1/chat/completions", json={"messages": MESSAGES})
        assert r.status_code == 400 and r.json()["error"]["code"] == "no_chat_template"
        assert "--chat-template" in r.json()["error"]["message"]
