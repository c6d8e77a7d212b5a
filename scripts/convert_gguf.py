#!/usr/bin/env python3
"""The specification's scripts/convert_gguf.py: a llama.cpp GGUF file -> a native folder
(model.json + state_dict.pt readable by torch.load + tokenizer.model).

    python scripts/convert_gguf.py MODEL.gguf OUT_DIR [--dtype bfloat16]

Quantized GGUF tensors are dequantized (to float32, or to --dtype). The conversion is the C
library's (llt_convert, also `llama-triton convert --from gguf`); this is its Python entry."""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the llama_triton link

from llama_triton import LlamaTritonError, convert  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(prog="scripts/convert_gguf.py",
                                 description="Convert a GGUF model to model.json + state_dict.pt.")
    ap.add_argument("src", help="the .gguf file")
    ap.add_argument("dst", help="output folder (created)")
    ap.add_argument("--dtype", default=None,
                    help="bfloat16 | float16 | float32 (default: the file's; quantized -> float32)")
    args = ap.parse_args(argv)
    try:
        convert(args.src, args.dst, fmt="gguf", dtype=args.dtype)
    except (LlamaTritonError, OSError) as e:
        print("convert_gguf: error: %s" % e, file=sys.stderr)
        return 1
    print("convert_gguf: wrote %s/model.json, state_dict.pt, tokenizer.model" % args.dst,
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
