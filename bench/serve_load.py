#!/usr/bin/env python3
"""serve_load.py: a load generator for any OpenAI-compatible completions endpoint
(llama-triton serve, llama.cpp's llama-server, vLLM), Python's standard library only.

Each request sends a prompt of --input random token ids and asks for exactly --output tokens
(`"ignore_eos": true`, which llama-triton, llama-server and vLLM accept) with streaming on; at
each concurrency level, --requests requests run with that many in flight. Reported per level:
output tokens/s, requests/s, time to first token and inter-token latency (p50 / p99), as a
table and, with --json, as JSON lines.

    bench/serve_load.py --url http://127.0.0.1:8080 --concurrency 1,16,64,256 --input 1024 --output 128
"""

import argparse
import asyncio
import json
import multiprocessing
import random
import statistics
import sys
import time
from urllib.parse import urlparse


async def read_chunked(reader):
    """Yields the body bytes of a chunked response as they arrive."""
    while True:
        size_line = await reader.readline()
        if not size_line:
            return
        size = int(size_line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            await reader.readline()
            return
        data = await reader.readexactly(size)
        await reader.readexactly(2)
        yield data


async def one_request(host, port, path, headers, body):
    """Streams one completion; returns (t_start, [arrival time of each token chunk], tokens)."""
    reader, writer = await asyncio.open_connection(host, port)
    payload = json.dumps(body).encode()
    head = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", "Content-Type: application/json",
            f"Content-Length: {len(payload)}", "Connection: close", "Accept: text/event-stream"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    t0 = time.perf_counter()
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + payload)
    await writer.drain()
    status = await reader.readline()
    if b" 200 " not in status:
        rest = await reader.read(4096)
        writer.close()
        raise RuntimeError(f"{status.decode().strip()}: {rest[-500:].decode(errors='replace')}")
    chunked = False
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        if line.lower().startswith(b"transfer-encoding:") and b"chunked" in line.lower():
            chunked = True
    source = read_chunked(reader) if chunked else _plain(reader)
    times, tokens, buf = [], 0, b""
    async for data in source:
        buf += data
        while b"\n\n" in buf:
            event, buf = buf.split(b"\n\n", 1)
            for line in event.splitlines():
                if not line.startswith(b"data: ") or line == b"data: [DONE]":
                    continue
                msg = json.loads(line[6:])
                if msg.get("usage"):
                    tokens = msg["usage"].get("completion_tokens", tokens)
                if msg.get("choices") and msg["choices"][0].get("text"):
                    times.append(time.perf_counter())
    writer.close()
    return t0, times, tokens or len(times)


async def _plain(reader):
    while True:
        data = await reader.read(65536)
        if not data:
            return
        yield data


def pct(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


async def run_level_raw(args, conc, n_req, rng):
    """The requests of one level (or of one process's share of it): raw samples."""
    url = urlparse(args.url)
    host, port = url.hostname, url.port or 80
    path = url.path.rstrip("/") + "/v1/completions"
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    prompts = [[rng.randrange(args.min_id, args.max_id) for _ in range(args.input)] for _ in range(n_req)]
    queue = asyncio.Queue()
    for p in prompts:
        queue.put_nowait(p)
    ttft, itl, tokens, errors = [], [], 0, []

    async def worker():
        nonlocal tokens
        while not queue.empty():
            p = queue.get_nowait()
            body = {"model": args.model, "prompt": p, "max_tokens": args.output, "temperature": 0,
                    "ignore_eos": True, "stream": True, "stream_options": {"include_usage": True}}
            try:
                t0, times, n = await one_request(host, port, path, headers, body)
            except Exception as e:  # noqa: BLE001 - reported, not hidden
                errors.append(str(e))
                continue
            tokens += n
            if times:
                ttft.append(times[0] - t0)
                itl.extend(b - a for a, b in zip(times, times[1:]))

    t0 = time.monotonic()  # system-wide on Linux: comparable across the processes of a level
    await asyncio.gather(*(worker() for _ in range(conc)))
    return {"t0": t0, "t1": time.monotonic(), "n_req": n_req, "ttft": ttft, "itl": itl, "tokens": tokens,
            "errors": errors}


def _proc_share(job):
    args, conc, n_req, seed = job
    return asyncio.run(run_level_raw(args, conc, n_req, random.Random(seed)))


def run_level(args, conc, rng):
    """One level: --procs processes (one event loop each) share the clients and the requests, so
    that the generator's own parsing is not what limits a fast server at high concurrency."""
    n_req = args.requests or max(conc * 2, 8)
    procs = max(1, min(args.procs, conc))
    if procs == 1:
        parts = [asyncio.run(run_level_raw(args, conc, n_req, rng))]
    else:
        jobs = [(args, conc // procs + (i < conc % procs), n_req // procs + (i < n_req % procs),
                 rng.randrange(1 << 62)) for i in range(procs)]
        with multiprocessing.Pool(procs) as pool:
            parts = pool.map(_proc_share, jobs)
    wall = max(p["t1"] for p in parts) - min(p["t0"] for p in parts)
    ttft = [x for p in parts for x in p["ttft"]]
    itl = [x for p in parts for x in p["itl"]]
    errors = [e for p in parts for e in p["errors"]]
    tokens = sum(p["tokens"] for p in parts)
    return {"concurrency": conc, "procs": procs, "requests": n_req - len(errors), "errors": len(errors),
            "first_error": errors[0] if errors else None, "wall_s": round(wall, 3),
            "output_tokens": tokens, "output_tok_s": round(tokens / wall, 1),
            "req_s": round((n_req - len(errors)) / wall, 3),
            "ttft_p50_ms": round(pct(ttft, 50) * 1e3, 2), "ttft_p99_ms": round(pct(ttft, 99) * 1e3, 2),
            "itl_p50_ms": round(pct(itl, 50) * 1e3, 3), "itl_p99_ms": round(pct(itl, 99) * 1e3, 3),
            "itl_mean_ms": round(statistics.fmean(itl) * 1e3, 3) if itl else None}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default="http://127.0.0.1:8080")
    ap.add_argument("--model", default="default")
    ap.add_argument("--api-key")
    ap.add_argument("--concurrency", default="1,16,64,256")
    ap.add_argument("--requests", type=int, default=0, help="per level (default: 2 x concurrency, >= 8)")
    ap.add_argument("--input", type=int, default=1024, help="prompt tokens")
    ap.add_argument("--output", type=int, default=128, help="generated tokens")
    ap.add_argument("--min-id", type=int, default=100, help="random prompt ids from [min-id, max-id)")
    ap.add_argument("--max-id", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--procs", type=int, default=1, help="client processes per level (each its own event loop)")
    ap.add_argument("--json", action="store_true", help="one JSON line per level on stdout")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    print(f"{'conc':>5} {'reqs':>5} {'err':>4} {'tok/s':>10} {'req/s':>8} {'TTFT p50':>9} {'p99':>9} "
          f"{'ITL p50':>9} {'p99':>9}  (ms)", file=sys.stderr)
    for conc in [int(c) for c in args.concurrency.split(",")]:
        r = run_level(args, conc, rng)
        print(f"{conc:>5} {r['requests']:>5} {r['errors']:>4} {r['output_tok_s']:>10.1f} {r['req_s']:>8.2f} "
              f"{r['ttft_p50_ms']:>9.1f} {r['ttft_p99_ms']:>9.1f} {r['itl_p50_ms']:>9.2f} {r['itl_p99_ms']:>9.2f}",
              file=sys.stderr)
        if r["first_error"]:
            print(f"      first error: {r['first_error']}", file=sys.stderr)
        if args.json:
            print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
