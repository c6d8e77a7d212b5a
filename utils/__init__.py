"""The specification's `utils` package (utils.hf_import): see utils/hf_import.py."""
