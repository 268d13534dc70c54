"""Adapters: PostgreSQL repositories and Kafka decoding for the reporting service."""
