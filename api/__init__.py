"""The specification's `api` package (api.inference): see api/inference.py."""
