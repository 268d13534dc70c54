"""Entrypoints: the HTTP API and the Kafka intake consumer."""
