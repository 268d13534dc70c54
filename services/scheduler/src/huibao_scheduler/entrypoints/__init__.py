"""Entrypoints: the HTTP API and the ticker loop."""
