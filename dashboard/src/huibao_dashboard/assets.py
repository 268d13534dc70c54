"""The page's files, shipped as package data under `static/` and served from memory."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
"""Media type by file suffix; only these kinds of files are served."""


@dataclass(frozen=True, slots=True)
class Asset:
    """One file of the page: its bytes and media type."""

    body: bytes
    media_type: str


def load_assets() -> dict[str, Asset]:
    """Every servable file of `static/` by name (no sub-folders, known suffixes only)."""
    out: dict[str, Asset] = {}
    for entry in resources.files("huibao_dashboard").joinpath("static").iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1] if "." in entry.name else ""
        if entry.is_file() and suffix in MEDIA_TYPES:
            out[entry.name] = Asset(entry.read_bytes(), MEDIA_TYPES[suffix])
    return out
