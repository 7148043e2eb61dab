"""Device backends: one module per device kind (local, aihub, queue) behind registry.py."""
