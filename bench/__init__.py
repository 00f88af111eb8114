"""Shoal benchmark instruments; see bench/RESULTS.md."""
