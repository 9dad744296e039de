"""ZeroMQ publisher (one PUB socket, topics driver_state and telemetry) and the ``listen`` subscriber."""
