"""Huibao reporting service."""
