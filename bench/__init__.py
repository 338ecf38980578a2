"""Benchmarks (see bench/README.md and BENCHMARKS.md). Not part of the product."""
