"""Starting `llama-triton serve` for tests: a free loopback port (--port 0, read back from the
server's "ready on" line), stderr kept for assertions, SIGTERM at the end with exit status 0
checked. Also the CLI's greedy output, the reference for what the server generates, and for
chat: the template rendered by python3-jinja2 as transformers renders it, continued greedily by
the CLI with the server's chat tokenization."""

import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CLI = os.environ.get("LLT_CLI", str(REPO / "build" / "llama-triton"))
STORIES = str(REPO / "models" / "stories260K.gguf")


class Server:
    def __init__(self, *flags, model=STORIES, wait_ready=True, shape_flags=()):
        what = [model] if model else list(shape_flags)
        self.proc = subprocess.Popen([CLI, "serve", *what, "--port", "0", *map(str, flags)],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, errors="replace")
        self.lines = []
        self.port = None
        self._seen = threading.Event()
        self._ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        if not self._seen.wait(30):
            self.kill()
            raise RuntimeError("serve did not start listening:\n" + "".join(self.lines))
        if wait_ready and not self._ready.wait(60):
            self.kill()
            raise RuntimeError("serve did not become ready:\n" + "".join(self.lines))

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line)
            m = re.search(r"listening on http://[^:]+:(\d+)", line)
            if m:
                self.port = int(m.group(1))
                self._seen.set()
            if "ready on http" in line:
                self._ready.set()
        self._seen.set()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def log(self):
        return "".join(self.lines)

    def stop(self, timeout=30):
        """SIGTERM; returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        rc = self.stop()
        assert rc == 0, f"serve exited with {rc}:\n{self.log()}"


def cli_greedy(prompt, n, model=STORIES, extra=()):
    """What `llama-triton MODEL -p PROMPT -n N --temperature 0` prints (its final newline off)."""
    out = subprocess.run([CLI, model, "-p", prompt, "-n", str(n), "--temperature", "0",
                          *extra], capture_output=True, timeout=120)
    assert out.returncode == 0, out.stderr.decode(errors="replace")
    text = out.stdout.decode()
    assert text.endswith("\n")
    return text[:-1]


# the server tokenizes a rendered chat with special tokens parsed and no BOS of its own
CHAT_FLAGS = ("--no-bos", "--parse-special")


def render_chat(template, messages):
    """The prompt as transformers renders it: Jinja2's sandbox, trim_blocks/lstrip_blocks,
    add_generation_prompt."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    return env.from_string(Path(template).read_text()).render(
        messages=messages, add_generation_prompt=True, bos_token="<s>", eos_token="</s>")


def cli_chat(template, messages, n, model=STORIES):
    """The reference for a greedy chat reply: the CLI's greedy continuation of render_chat."""
    return cli_greedy(render_chat(template, messages), n, model=model, extra=CHAT_FLAGS)


def cli_sample(prompt, n, temperature, top_p, seed, model=STORIES):
    out = subprocess.run([CLI, model, "-p", prompt, "-n", str(n), "--temperature", str(temperature),
                          "--top_p", str(top_p), "--seed", str(seed)], capture_output=True, timeout=120)
    assert out.returncode == 0, out.stderr.decode(errors="replace")
    return out.stdout.decode()[:-1]


def cli_batch(prompts, n, model=STORIES, tmp=None):
    """Greedy outputs of many prompts in one CLI run (--prompts-file, JSON lines)."""
    import json
    import tempfile
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, dir=tmp) as f:
        f.write("\n".join(prompts) + "\n")
        path = f.name
    try:
        out = subprocess.run([CLI, model, "--prompts-file", path, "--parallel", "8", "-n", str(n),
                              "--temperature", "0"], capture_output=True, timeout=300)
        assert out.returncode == 0, out.stderr.decode(errors="replace")
        rows = [json.loads(l) for l in out.stdout.decode().splitlines()]
        return [r["text"] for r in sorted(rows, key=lambda r: r["index"])]
    finally:
        os.unlink(path)


def metrics(client):
    """/metrics as {name{labels}: value}."""
    text = client.get("/metrics").text
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
    return out


def sse_events(lines):
    """The JSON payloads of an SSE stream (list of str lines), and whether it ended in [DONE]."""
    import json
    events, done = [], False
    for line in lines:
        line = line.rstrip("\r\n")  # httpx 0.23's iter_lines keeps the line ending
        if not line.startswith("data: "):
            assert line == "", f"unexpected SSE line {line!r}"
            continue
        data = line[6:]
        assert not done, "data after [DONE]"
        if data == "[DONE]":
            done = True
        else:
            events.append(json.loads(data))
    return events, done


def wait_for(fn, timeout=10.0, step=0.02):
    end = time.time() + timeout
    while time.time() < end:
        v = fn()
        if v:
            return v
        time.sleep(step)
    return fn()
