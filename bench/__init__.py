"""Benchmarks: our CAT engine side by side with its peers (catsim, PyPI mirt)."""
