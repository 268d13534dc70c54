"""Adapters: PostgreSQL cycle store, rollup HTTP client, outbox publisher."""
