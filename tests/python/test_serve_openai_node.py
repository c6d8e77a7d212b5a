"""The official OpenAI Node client (npm `openai`, pinned in tests/node/package-lock.json and
installed with `npm ci`) completing and streaming against `llama-triton serve` on a free
loopback port, as an application would: the texts equal the CLI's greedy output, usage and
finish reasons are OpenAI's, errors arrive as the client's typed exceptions."""

import json
import shutil
import subprocess
from pathlib import Path

from serve_util import Server, cli_greedy

NODE_DIR = Path(__file__).resolve().parents[1] / "node"


def node_client():
    node, npm = shutil.which("node"), shutil.which("npm")
    assert node and npm, "Node.js and npm are needed (make deps installs nodejs)"
    if not (NODE_DIR / "node_modules" / "openai" / "package.json").exists():
        r = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, capture_output=True,
                           text=True, timeout=300)
        assert r.returncode == 0, "npm ci failed:\n" + r.stdout + r.stderr
    return node


def run_client(server, key, *mode):
    r = subprocess.run([node_client(), str(NODE_DIR / "openai_client.mjs"), server.url, key, *mode],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr + server.log()
    return json.loads(r.stdout)


def test_openai_node_client_completions():
    with Server("--api-key", "k-123", "--parallel", "2") as s:
        out = run_client(s, "k-123")
    want = cli_greedy("Once upon a time", 30)
    assert out["model"] == "stories260K.gguf"
    c = out["completion"]
    assert c["text"] == want and c["finish"] == "length" and c["object"] == "text_completion"
    assert c["usage"]["completion_tokens"] == 30
    st = out["completion_stream"]
    assert st["text"] == want and st["finish"] == "length" and st["chunks"] >= 30
    assert st["usage"]["completion_tokens"] == 30
    assert out["bad_request"] == {"isBadRequest": True, "status": 400, "param": "max_tokens",
                                  "type": "invalid_request_error"}
    assert out["bad_key"] == {"isAuth": True, "status": 401}


def test_openai_node_client_chat():
    from test_serve_chat import MESSAGES, TEMPLATE, cli_chat
    with Server("--parallel", "2", "--chat-template", TEMPLATE) as s:
        out = run_client(s, "any", "chat")
    want = cli_chat(MESSAGES, 24)
    assert out["chat"]["content"] == want and out["chat"]["role"] == "assistant"
    assert out["chat"]["object"] == "chat.completion" and out["chat"]["finish"] in ("stop", "length")
    assert out["chat_stream"] == {"content": want, "role": "assistant", "finish": out["chat"]["finish"]}
