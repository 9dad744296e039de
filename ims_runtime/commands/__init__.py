"""One module per ``ims-runtime`` subcommand; each exposes ``register(subparsers)``."""
