"""Offline optimisation toolchain (``pip install .[toolchain]``): model definitions, export, quantisation,
training. The runtime never imports this package; it needs torch."""
