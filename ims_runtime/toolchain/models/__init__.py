"""PyTorch definitions of the networks the project exports (toolchain only)."""
