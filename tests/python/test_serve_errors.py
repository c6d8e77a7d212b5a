"""`llama-triton serve` against bad and hostile requests: every field of the wrong type or out
of range is a 400 naming it (OpenAI's error body); oversized, truncated, malformed, deeply
nested, invalid UTF-8, slow and abandoned requests get clear errors and the server keeps
serving; API keys, the queue limit, the per-request timeout and SIGTERM behave as documented."""

import json
import socket
import threading
import time

import httpx
import pytest

from serve_util import Server, cli_greedy, metrics, sse_events, wait_for


@pytest.fixture(scope="module")
def server():
    with Server("--parallel", "2", "--idle-timeout", "2") as s:
        yield s


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


def error(r, status, param=None):
    assert r.status_code == status, r.text
    e = r.json()["error"]
    assert set(e) == {"message", "type", "param", "code"} and e["message"]
    if param is not None:
        assert e["param"] == param, e
    return e


def still_serving(client):
    r = client.post("/v1/completions", json={"prompt": "The sun was", "max_tokens": 5, "temperature": 0})
    assert r.status_code == 200 and r.json()["choices"][0]["text"] == cli_greedy("The sun was", 5)


BAD_FIELDS = [
    ("prompt", 5, "prompt"), ("prompt", [], "prompt"), ("prompt", [1.5], "prompt"),
    ("prompt", [-1], "prompt"), ("prompt", [[1, "x"]], "prompt[0]"), ("prompt", [999999], "prompt"),
    ("prompt", {"a": 1}, "prompt"), ("max_tokens", -1, "max_tokens"), ("max_tokens", "10", "max_tokens"),
    ("max_tokens", 1.5, "max_tokens"), ("max_completion_tokens", -5, "max_completion_tokens"),
    ("temperature", "hot", "temperature"), ("temperature", 2.5, "temperature"),
    ("temperature", -0.1, "temperature"), ("top_p", 1.5, "top_p"), ("top_p", [1], "top_p"),
    ("top_k", -2, "top_k"), ("top_k", 1.5, "top_k"), ("seed", "x", "seed"), ("seed", 1.5, "seed"),
    ("n", 0, "n"), ("n", 1000000, "n"), ("n", True, "n"), ("stop", 5, "stop"), ("stop", [1], "stop[0]"),
    ("stop", [""], "stop[0]"), ("stop", ["x" * 300], "stop[0]"), ("stop", ["a"] * 10000, "stop"),
    ("logprobs", 50, "logprobs"), ("logprobs", -1, "logprobs"), ("echo", "yes", "echo"),
    ("stream", 1, "stream"), ("presence_penalty", 3, "presence_penalty"),
    ("frequency_penalty", "x", "frequency_penalty"), ("model", 5, "model"),
    ("stream_options", {"include_usage": True}, "stream_options"),
]


@pytest.mark.parametrize("field,value,param", BAD_FIELDS)
def test_bad_field(client, field, value, param):
    body = {"prompt": "Once", "max_tokens": 3}
    body[field] = value
    e = error(client.post("/v1/completions", json=body), 400, param)
    assert e["type"] == "invalid_request_error"
    assert field.split("_")[0] in e["message"] or param.split("[")[0] in e["message"]


def test_unknown_fields_and_nulls_are_fine(client):
    r = client.post("/v1/completions", json={"prompt": "The sun was", "max_tokens": 5, "temperature": 0,
                                             "user": "x", "suffix": None, "best_of": None, "top_p": None,
                                             "whatever": {"deep": [1, 2]}})
    assert r.status_code == 200 and r.json()["choices"][0]["text"] == cli_greedy("The sun was", 5)


def test_missing_and_malformed(client):
    error(client.post("/v1/completions", json={"max_tokens": 3}), 400, "prompt")
    for body in [b"{", b"[1,2]", b"", b"{\"prompt\": \"x\",}", b"nul", b"{\"prompt\": \"x\"} trailing"]:
        error(client.post("/v1/completions", content=body), 400)
    # invalid UTF-8 inside a string, and a lone surrogate escape
    error(client.post("/v1/completions", content=b'{"prompt": "\xff\xfe abc"}'), 400)
    error(client.post("/v1/completions", content=b'{"prompt": "\\udc00"}'), 400)
    # deeply nested JSON: refused, no crash
    deep = b'{"prompt": "x", "extra": ' + b"[" * 100000 + b"]" * 100000 + b"}"
    e = error(client.post("/v1/completions", content=deep), 400)
    assert "nesting" in e["message"]
    still_serving(client)


def test_context_limit_names_numbers(client):
    ctx = client.get("/health").json()["context_length"]
    e = error(client.post("/v1/completions", json={"prompt": "Once upon a time", "max_tokens": ctx}), 400,
              "max_tokens")
    assert e["code"] == "context_length_exceeded" and str(ctx) in e["message"]
    e = error(client.post("/v1/completions", json={"prompt": [1] * (ctx + 5), "max_tokens": 1}), 400)
    assert str(ctx) in e["message"] and str(ctx + 5) in e["message"]


def test_body_too_large(server, client):
    big = b'{"prompt": "' + b"a" * (9 << 20) + b'"}'
    error(client.post("/v1/completions", content=big), 413)

    def chunks():  # no Content-Length: found while reading
        for _ in range(10):
            yield b"a" * (1 << 20)
    error(client.post("/v1/completions", content=chunks()), 413)
    # far beyond the limit: refused from the announced length, before the body is read
    out = raw(server, b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 900000000\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 413")
    still_serving(client)


def test_routes(client):
    error(client.get("/v1/nothing"), 404)
    error(client.get("/v1/completions"), 405)
    error(client.post("/tokenize", json={"content": 5}), 400, "content")
    error(client.post("/detokenize", json={"tokens": [1, -3]}), 400, "tokens")
    error(client.post("/detokenize", json={"tokens": "1"}), 400, "tokens")


def raw(server, data, close_after=True, read=True):
    s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    s.sendall(data)
    out = b""
    if read:
        try:
            while True:
                b = s.recv(65536)
                if not b:
                    break
                out += b
        except socket.timeout:
            pass
    if close_after:
        s.close()
    return out


def test_truncated_body_and_abandoned(server, client):
    # Content-Length promises 1000 bytes, 20 come, the client leaves
    s = socket.create_connection(("127.0.0.1", server.port))
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: 1000\r\n\r\n{\"prompt\": \"Once up")
    s.close()
    # headers only, never finished
    s2 = socket.create_connection(("127.0.0.1", server.port))
    s2.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n")
    still_serving(client)
    # the idle connection is closed by --idle-timeout (2 s)
    s2.settimeout(10)
    t0 = time.time()
    assert s2.recv(100) == b"" and time.time() - t0 < 8
    s2.close()


def test_slow_client(server):
    body = json.dumps({"prompt": "The sun was", "max_tokens": 5, "temperature": 0}).encode()
    req = (b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n"
           b"Content-Length: %d\r\n\r\n" % len(body)) + body
    s = socket.create_connection(("127.0.0.1", server.port), timeout=20)
    for i in range(0, len(req), 16):  # a trickle, well inside the idle timeout
        s.sendall(req[i:i + 16])
        time.sleep(0.02)
    out = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        out += b
    s.close()
    head, _, payload = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert json.loads(payload)["choices"][0]["text"] == cli_greedy("The sun was", 5)


def test_api_key():
    with Server("--api-key", "s3cret") as s, httpx.Client(base_url=s.url, timeout=30) as c:
        assert c.get("/health").status_code == 200
        e = error(c.get("/v1/models"), 401)
        assert e["type"] == "authentication_error"
        error(c.post("/v1/completions", json={"prompt": "x"}, headers={"Authorization": "Bearer s3cre"}), 401)
        error(c.post("/v1/completions", json={"prompt": "x"}, headers={"Authorization": "Bearer s3cret2"}), 401)
        error(c.post("/v1/completions", json={"prompt": "x"}, headers={"Authorization": "s3cret"}), 401)
        ok = c.post("/v1/completions", json={"prompt": "The sun was", "max_tokens": 3},
                    headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200
        assert metrics(httpx.Client(base_url=s.url, headers={"Authorization": "Bearer s3cret"})
                       )['llt_requests_total{status="401"}'] >= 4


def test_queue_full():
    """One sequence slot, no queue: of 24 requests sent at once some are refused with 429 and
    Retry-After, the others are answered; then the server is idle again."""
    import asyncio

    async def burst(url):
        async with httpx.AsyncClient(base_url=url, timeout=60) as c:
            return await asyncio.gather(*(c.post("/v1/completions", json={"prompt": "Once", "max_tokens": 200})
                                          for _ in range(24)))

    with Server("--parallel", "1", "--max-queue", "0") as s, httpx.Client(base_url=s.url, timeout=30) as c:
        rs = asyncio.run(burst(s.url))
        codes = [r.status_code for r in rs]
        assert set(codes) <= {200, 429} and 429 in codes and 200 in codes, codes
        for r in rs:
            if r.status_code == 429:
                assert r.headers["retry-after"] == "1"
                assert error(r, 429)["type"] == "rate_limit_error"
        assert wait_for(lambda: metrics(c)["llt_requests_in_flight"] == 0, 10)
        assert c.post("/v1/completions", json={"prompt": "x", "max_tokens": 2}).status_code == 200


def test_timeout():
    with Server("--parallel", "2", "--timeout", "0.05") as s, httpx.Client(base_url=s.url, timeout=30) as c:
        with c.stream("POST", "/v1/completions", json={"prompt": "Once", "max_tokens": 1800, "stream": True}) as r:
            events, done = sse_events(list(r.iter_lines()))
        # the stream ran into --timeout: an error event, then [DONE]
        assert done and "error" in events[-1] and events[-1]["error"]["code"] == "timeout"
        e = error(c.post("/v1/completions", json={"prompt": "Once", "max_tokens": 1800}), 504)
        assert "--timeout" in e["message"]
        assert wait_for(lambda: metrics(c)["llt_kv_pages_used"] == 0, 15)
        assert metrics(c)["llt_requests_timeout_total"] == 2


def test_sigterm_finishes_inflight_stream():
    s = Server("--parallel", "2")
    got = {}
    streaming = threading.Event()

    def run():
        with httpx.Client(base_url=s.url, timeout=60) as c:
            with c.stream("POST", "/v1/completions",
                          json={"prompt": "Once upon a time", "max_tokens": 300, "temperature": 0,
                                "stream": True}) as r:
                lines = []
                for line in r.iter_lines():
                    lines.append(line)
                    streaming.set()
                got["events"], got["done"] = sse_events(lines)
        streaming.set()

    t = threading.Thread(target=run)
    t.start()
    assert streaming.wait(30)  # the first chunk is in: the request is in flight
    rc = s.stop()
    t.join(30)
    assert rc == 0, s.log()
    assert got.get("done"), s.log()
    text = "".join(e["choices"][0]["text"] for e in got["events"] if e.get("choices"))
    assert text == cli_greedy("Once upon a time", 300)
    assert "SIGTERM" in s.log() and "stopped" in s.log()
