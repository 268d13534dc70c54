"""Shared runtime of the Huibao services: adapters and wiring helpers, no domain logic."""
