"""Fuzz tests: hostile input against the parsers and protocol cores (see tests/fuzz/fuzzlib.py)."""
