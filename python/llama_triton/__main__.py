"""python -m llama_triton MODEL -p PROMPT --max_tokens 16 [--fmt hf]: the specification's
CLI (main.py at the repository root runs this with its "› " prefix), with the flags and
output of the C CLI (`llama-triton MODEL ...`): the generated text on stdout as it is
produced, then a newline; with --prompts-file one JSON object per prompt
and line, {"index": i, "text": "...", "n_tokens": k}, in prompt order; load and speed on
stderr. Exit codes: 0 ok, 1 runtime error, 2 usage error."""

import argparse
import json
import sys
import time

from . import __version__
from .errors import BatchError, LlamaTritonError
from .generator import LlamaGenerator


def build_parser(prog="python -m llama_triton"):
    ap = argparse.ArgumentParser(prog=prog,
                                 description="Generate text with a Llama-family model.")
    ap.add_argument("model", help="a .gguf file, a Hugging Face folder, or a native folder")
    src = ap.add_mutually_exclusive_group()
    src.add_argument("-p", "--prompt", default="", help="prompt (default: empty, from BOS)")
    src.add_argument("-f", "--file", help="read the prompt from FILE")
    src.add_argument("--prompts-file", "--prompts_file", dest="prompts_file",
                     help="one prompt per line, printed as JSON lines (with --parallel N)")
    ap.add_argument("-n", "--max_tokens", "--max-tokens", dest="max_tokens", type=int, default=32,
                    help="tokens to generate (default 32; -1 = until the context is full)")
    ap.add_argument("--temperature", type=float, default=0.8, help="0 = greedy (default 0.8)")
    ap.add_argument("--top_p", type=float, default=0.9, help="nucleus sampling (default 0.9; 1 = off)")
    ap.add_argument("--top_k", type=int, default=0, help="keep the K most likely tokens (default 0 = off)")
    ap.add_argument("--seed", type=int, default=None, help="sampling seed (default: from the clock)")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (default: all cores)")
    ap.add_argument("--fmt", choices=["triton", "hf", "gguf"], default=None,
                    help="model format (default: from the path)")
    ap.add_argument("--device", default="cuda",
                    help="cpu, cuda, cuda:N, or cuda:0,cuda:1,... to split the layers over GPUs "
                         "(default cuda; the CPU, with a warning, when there is no GPU)")
    ap.add_argument("--layer_split", "--layer-split", dest="layer_split", default=None,
                    type=lambda v: [int(x) for x in v.split(",")],
                    help="layers per listed GPU, e.g. 20,12 (default: in proportion to free memory)")
    ap.add_argument("--dtype", default=None, help="f16|bf16|f32: compute dtype (default: the checkpoint's)")
    ap.add_argument("--kv_dtype", "--kv-dtype", dest="kv_dtype", default=None,
                    help="f16|bf16|f32|f8: KV cache dtype (f8 = e4m3 with a scale per token and kv head; default: the config's)")
    ap.add_argument("--page_size", type=int, default=0, help="KV cache tokens per page (default 16)")
    ap.add_argument("--max_pages", type=int, default=0, help="KV cache pages (default: enough for the context)")
    ap.add_argument("--parallel", type=int, default=1, help="sequences generated at once with --prompts-file")
    ap.add_argument("--parse-special", action="store_true", help="recognise special tokens in the prompt")
    ap.add_argument("--no-bos", action="store_true", help="do not prepend the BOS token")
    ap.add_argument("--version", action="version", version="llama-triton " + __version__)
    return ap


def _read_prompts(path):
    """Every line is a prompt, empty ones included; a final newline starts no prompt; a
    trailing \\r is dropped (as the C CLI)."""
    with open(path, "rb") as f:
        data = f.read().decode("utf-8", "replace")
    lines = data.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]


def _report(stats, load_s):
    st = stats or {}
    rate = lambda n, s: n / s if s > 0 else 0.0  # noqa: E731
    sys.stderr.write("\nload: %.3f s\n" % load_s)
    sys.stderr.write("prompt: %d tokens in %.3f s (%.1f tokens/s)\n"
                     % (st.get("n_prompt", 0), st.get("prompt_s", 0), rate(st.get("n_prompt", 0), st.get("prompt_s", 0))))
    sys.stderr.write("generation: %d tokens in %.3f s (%.1f tokens/s)\n"
                     % (st.get("n_generated", 0), st.get("gen_s", 0), rate(st.get("n_generated", 0), st.get("gen_s", 0))))


def _run_batch(gen, prompts, parallel, sample):
    """JSON lines as the C CLI: a prompt that could not run gets {"index", "error"}; the others
    run; then the BatchError is raised (exit status 1)."""
    failed = None
    try:
        texts, counts, errors = gen.generate_batch(prompts, parallel=parallel, **sample), gen.last_token_counts, None
    except BatchError as e:
        failed, texts, counts, errors = e, e.results, e.token_counts, e.errors
    for i, (text, n) in enumerate(zip(texts, counts)):
        if errors and errors[i] is not None:
            line = {"index": i, "error": errors[i].message}
        else:
            line = {"index": i, "text": text, "n_tokens": n}
        sys.stdout.write(json.dumps(line, ensure_ascii=False) + "\n")
    if failed is not None:
        raise failed


def main(argv=None, prog="python -m llama_triton", prefix=""):
    """The CLI; prefix goes before the generated text (main.py: "› ", as the
    specification shows its output)."""
    args = build_parser(prog).parse_args(argv)
    sample = dict(max_new_tokens=args.max_tokens, temperature=args.temperature, top_p=args.top_p,
                  top_k=args.top_k, seed=args.seed, add_bos=not args.no_bos,
                  parse_special=args.parse_special)
    try:
        prompts = _read_prompts(args.prompts_file) if args.prompts_file else None
        prompt = args.prompt
        if args.file:
            with open(args.file, "rb") as f:
                prompt = f.read().decode("utf-8", "replace")
        t0 = time.perf_counter()
        with LlamaGenerator(args.model, fmt=args.fmt, device=args.device, dtype=args.dtype,
                            max_seqs=max(1, args.parallel), n_threads=args.threads,
                            page_size=args.page_size, max_pages=args.max_pages,
                            layer_split=args.layer_split, kv_dtype=args.kv_dtype) as gen:
            load_s = time.perf_counter() - t0
            if prompts is not None:
                _run_batch(gen, prompts, args.parallel, sample)
            else:
                sys.stdout.write(prefix)
                for piece in gen.generate(prompt, stream=True, **sample):
                    sys.stdout.write(piece)
                    sys.stdout.flush()
                sys.stdout.write("\n")
            sys.stdout.flush()
            _report(gen.last_stats, load_s)
    except (LlamaTritonError, OSError) as e:
        sys.stdout.flush()
        print("llama-triton: error: %s" % e, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
