"""Synthetic scenes with ground truth and injected annotation errors (tests, demo, bench)."""
