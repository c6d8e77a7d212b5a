"""python -m llama_triton MODEL -p PROMPT --max_tokens 16 [--fmt hf]: the specification's
main.py, with the flags of the C CLI (llama-triton MODEL ...). Generated text goes to stdout
as it is produced; errors go to stderr (exit 1; usage errors exit 2)."""

import argparse
import sys

from . import __version__
from .errors import LlamaTritonError
from .generator import LlamaGenerator


def build_parser():
    ap = argparse.ArgumentParser(prog="python -m llama_triton",
                                 description="Generate text with a Llama-family model.")
    ap.add_argument("model", help=".gguf file, Hugging Face folder or native folder")
    ap.add_argument("-p", "--prompt", default="", help="prompt text (default: empty, BOS only)")
    ap.add_argument("-f", "--prompts-file", help="generate for every line of this file")
    ap.add_argument("-n", "--max_tokens", "--max-tokens", "--max_new_tokens", dest="max_tokens",
                    type=int, default=32, help="tokens to generate (default 32)")
    ap.add_argument("--temperature", "--temp", type=float, default=0.8, help="0 = greedy (default 0.8)")
    ap.add_argument("--top_p", "--top-p", dest="top_p", type=float, default=0.9, help="default 0.9")
    ap.add_argument("--top_k", "--top-k", dest="top_k", type=int, default=0, help="default 0 (off)")
    ap.add_argument("-s", "--seed", type=int, default=None, help="sampling seed (default: clock)")
    ap.add_argument("--fmt", "--format", dest="fmt", choices=["auto", "gguf", "hf", "triton"],
                    default=None, help="weight format (default: detect)")
    ap.add_argument("--device", default=None, help='"cpu" (default), "cuda", "cuda:0,cuda:1"')
    ap.add_argument("--dtype", default=None, help="compute dtype: f32, f16, bf16")
    ap.add_argument("-t", "--threads", type=int, default=0, help="CPU threads (default: all)")
    ap.add_argument("--parallel", type=int, default=4, help="sequences in flight with --prompts-file")
    ap.add_argument("--version", action="version", version="llama_triton " + __version__)
    return ap


def main(argv=None):
    args = build_parser().parse_args(argv)
    sample = dict(max_new_tokens=args.max_tokens, temperature=args.temperature,
                  top_p=args.top_p, top_k=args.top_k, seed=args.seed)
    try:
        with LlamaGenerator(args.model, fmt=args.fmt, device=args.device, dtype=args.dtype,
                            n_threads=args.threads) as gen:
            if args.prompts_file:
                with open(args.prompts_file, encoding="utf-8") as f:
                    prompts = [line.rstrip("\n") for line in f if line.strip()]
                for text in gen.generate_batch(prompts, parallel=args.parallel, **sample):
                    sys.stdout.write(text + "\n")
            else:
                for piece in gen.generate(args.prompt, stream=True, **sample):
                    sys.stdout.write(piece)
                    sys.stdout.flush()
                sys.stdout.write("\n")
    except (LlamaTritonError, OSError) as e:
        sys.stdout.flush()
        print("llama_triton: error: %s" % e, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
