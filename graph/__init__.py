"""The specification's `graph` package (graph.config): see graph/config.py."""
