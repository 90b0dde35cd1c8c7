"""Builders: the stack image and app images (with scheduler/, the only code that talks to Docker)."""
