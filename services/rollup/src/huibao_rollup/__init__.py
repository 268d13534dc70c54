"""Huibao rollup service."""
