"""Load on `llama-triton serve`: 64 concurrent streaming clients, 320 requests of mixed
prompt and output lengths, one in seven abandoned after a few chunks. Every stream that is
read to the end ends in [DONE] with exactly the CLI's greedy text; afterwards no sequence runs
and the KV pages in use are back to their baseline (from /metrics). Bounded in time."""

import asyncio
import random
import time

import httpx
import pytest

from serve_util import Server, cli_batch, metrics, sse_events, wait_for

SENTENCES = [
    "Once upon a time, there was a little girl named Lily.",
    "She loved to play outside in the park with her friends.",
    "One day, a big dog came to the park.",
    "Tom had a big red ball and he liked to throw it high.",
    "The sun was shining and the birds were singing.",
    "Mom said they could have a picnic under the tree.",
    "Ben was sad because his toy was broken.",
    "They all laughed and went home happy.",
]
LENGTHS = [8, 32, 96]
CLIENTS = 64
REQUESTS = 320


def prompts():
    rng = random.Random(7)
    out = []
    for i in range(16):  # 1 to 8 sentences: short and long prompts, shared beginnings
        k = 1 + i % 8
        start = rng.randrange(len(SENTENCES))
        out.append(" ".join(SENTENCES[(start + j) % len(SENTENCES)] for j in range(k)))
    return out


async def one(client, prompt, n, cancel_after, results, i):
    body = {"prompt": prompt, "max_tokens": n, "temperature": 0, "stream": True}
    lines = []
    async with client.stream("POST", "/v1/completions", json=body) as r:
        assert r.status_code == 200, await r.aread()
        async for line in r.aiter_lines():
            lines.append(line)
            if cancel_after and sum(l.startswith("data: ") for l in lines) >= cancel_after:
                results[i] = ("cancelled", None)
                return
    events, done = sse_events(lines)
    text = "".join(e["choices"][0]["text"] for e in events)
    finish = events[-1]["choices"][0]["finish_reason"] if events else None
    results[i] = ("done" if done else "no-done", (text, finish))


async def load(url, jobs):
    results = [None] * len(jobs)
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        queue = asyncio.Queue()
        for i, j in enumerate(jobs):
            queue.put_nowait((i, j))

        async def worker():
            while not queue.empty():
                i, (p, n, cancel) = queue.get_nowait()
                await one(client, p, n, cancel, results, i)

        await asyncio.gather(*(worker() for _ in range(CLIENTS)))
    return results


@pytest.mark.timeout(240)
def test_load_64_streaming_clients():
    ps = prompts()
    want = {n: cli_batch(ps, n) for n in LENGTHS}
    rng = random.Random(11)
    jobs = [(ps[rng.randrange(len(ps))], rng.choice(LENGTHS), rng.choice([0] * 6 + [3])) for _ in range(REQUESTS)]
    with Server("--parallel", "16", "--max-queue", "256") as s, httpx.Client(base_url=s.url) as c:
        base = metrics(c)["llt_kv_pages_used"]
        t0 = time.time()
        results = asyncio.run(load(s.url, jobs))
        wall = time.time() - t0
        assert wait_for(lambda: metrics(c)["llt_sequences_running"] == 0, 10)
        m = metrics(c)
        assert m["llt_kv_pages_used"] == base, m
        assert m["llt_requests_in_flight"] == 0
        assert m["llt_prefix_cache_hit_tokens_total"] > 0
    bad = []
    for (p, n, cancel), (state, got) in zip(jobs, results):
        if cancel:
            assert state == "cancelled"
            continue
        if state != "done" or got[0] != want[n][ps.index(p)]:
            bad.append((p[:30], n, state, got))
    assert not bad, f"{len(bad)} streams wrong, first: {bad[:3]}"
    print(f"load: {REQUESTS} requests, {CLIENTS} clients, {wall:.1f} s")
    assert wall < 90


def test_serve_load_script():
    """bench/serve_load.py against a random-weight shape with a borrowed tokenizer (what the GPU
    benchmark runs with llama3-8b): exact output lengths (ignore_eos), no errors, sane numbers,
    also with the clients split over two processes."""
    import json
    import subprocess
    import sys

    from serve_util import REPO
    with Server("--parallel", "4", model=None, shape_flags=("--shape", "tiny", "--tokenizer",
                                                           str(REPO / "models" / "stories260K.gguf"))) as s:
        r = subprocess.run([sys.executable, str(REPO / "bench" / "serve_load.py"), "--url", s.url,
                            "--input", "40", "--output", "12", "--concurrency", "1,4", "--requests", "8",
                            "--max-id", "500", "--procs", "2", "--json"], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
    rows = [json.loads(l) for l in r.stdout.splitlines()]
    assert [x["concurrency"] for x in rows] == [1, 4]
    for x in rows:
        assert x["errors"] == 0 and x["requests"] == 8 and x["output_tokens"] == 8 * 12, x
        assert x["procs"] == min(2, x["concurrency"]), x  # level 4: two processes, samples merged
        assert x["output_tok_s"] > 0 and x["ttft_p50_ms"] > 0
