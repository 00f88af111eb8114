"""Applications and their packages (see `registry.py`)."""
