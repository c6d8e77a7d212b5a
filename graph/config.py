"""The specification's graph.config.LlamaConfig (model.json of a native model folder): the
llama_triton package's class under the specification's import path."""

from llama_triton.config import ATTRIBUTES, LlamaConfig  # noqa: F401

__all__ = ["LlamaConfig", "ATTRIBUTES"]
