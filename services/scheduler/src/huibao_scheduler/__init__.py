"""Huibao scheduler service."""
