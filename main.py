"""The specification's CLI: python main.py MODEL -p PROMPT --max_tokens 16 [--fmt hf].

A thin entry over the llama_triton package (python/llama_triton, reached through the
llama_triton link beside this file): the flags of `python -m llama_triton --help`, the
generated text on stdout after "› " as the specification shows it, load and speed on stderr.
Runs on the GPU when there is one (--device cuda, the default), else on the CPU with a
warning."""

import sys

from llama_triton.__main__ import main

if __name__ == "__main__":
    sys.exit(main(prog="python main.py", prefix="\u203a "))
