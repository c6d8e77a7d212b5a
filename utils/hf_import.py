"""The specification's utils.hf_import: a Hugging Face folder (config.json +
pytorch_model-*.bin / *.safetensors, tokenizer files) -> model.json + state_dict.pt (+ the
tokenizer) beside it, offline and without transformers. Then load it with fmt="triton".

    python -m utils.hf_import ./hf-ckpt --dtype bfloat16

The conversion is the C library's (llt_convert, the same one LlamaGenerator(fmt="hf") runs
and caches); this module is its command line and Python entry point."""

import argparse
import sys

from llama_triton import LlamaTritonError
from llama_triton import convert as _convert


def convert(src, dst=None, dtype=None):
    """Writes model.json + state_dict.pt (+ tokenizer files) for the Hugging Face folder
    `src` into `dst` (default: src itself, where LlamaGenerator(fmt="hf") caches them).
    dtype: the weights' dtype ("bfloat16", "float16", "float32", ...; None keeps the
    checkpoint's)."""
    _convert(src, src if dst is None else dst, fmt="hf", dtype=dtype)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m utils.hf_import",
                                 description="Convert a Hugging Face Llama folder to the native "
                                             "model.json + state_dict.pt.")
    ap.add_argument("src", help="Hugging Face folder (config.json + weights)")
    ap.add_argument("--out", default=None, help="output folder (default: SRC itself)")
    ap.add_argument("--dtype", default=None,
                    help="bfloat16 | float16 | float32 (default: the checkpoint's)")
    args = ap.parse_args(argv)
    try:
        convert(args.src, args.out, args.dtype)
    except (LlamaTritonError, OSError) as e:
        print("hf_import: error: %s" % e, file=sys.stderr)
        return 1
    print("hf_import: wrote model.json and state_dict.pt to %s" % (args.out or args.src),
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
