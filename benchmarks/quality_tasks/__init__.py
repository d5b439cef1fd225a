"""The tasks of benchmarks/quality.py: each module makes its data from a seed, and scores."""
