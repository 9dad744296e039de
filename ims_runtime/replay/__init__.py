"""Deterministic replay of recorded footage through the service's own pipeline."""
