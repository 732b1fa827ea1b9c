"""Probes that ship with gridalarm (registered in pyproject.toml like any plug-in)."""
