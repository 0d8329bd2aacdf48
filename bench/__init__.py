"""Benchmarks that run Tocsin and its peers side by side on this machine and print ratios (`make bench`)."""
