"""Reading request bodies within limits: media types, sizes, JSON and CSV."""

from __future__ import annotations

import csv
import io
from typing import Any

from fastapi import HTTPException, Request

from huibao_platform.http import error_body
from huibao_reporting.domain.events import decode_json


def media_type(request: Request) -> str:
    """The request's media type without parameters, lower-case ('' when absent)."""
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def require_media_type(request: Request, allowed: tuple[str, ...]) -> str:
    """The media type, or 415 naming the ones accepted."""
    mt = media_type(request)
    if mt not in allowed:
        raise HTTPException(
            415,
            error_body(
                "content-type",
                "unsupported_media_type",
                f"content type {mt or '(none)'!r} is not accepted; use {', '.join(allowed)}",
            ),
        )
    return mt


def too_large(field: str, message: str) -> HTTPException:
    """A 413 answer with the usual error body."""
    return HTTPException(413, error_body(field, "too_large", message))


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, or 413 as soon as it exceeds `limit` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large("body", f"the body is {declared} bytes; the limit is {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large("body", f"the body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(raw: bytes) -> Any:
    """The decoded JSON body, or 400 `not_json`."""
    try:
        return decode_json(raw)
    except ValueError as e:
        raise HTTPException(
            400, error_body("body", "not_json", f"the body is not JSON: {e}")
        ) from e


def parse_csv(raw: bytes, columns: tuple[str, ...]) -> list[dict[str, str]]:
    """Rows of a CSV body with a header line; empty cells are left out of each row."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise HTTPException(
            400, error_body("body", "invalid_field", f"CSV must be UTF-8: {e}")
        ) from e
    reader = csv.DictReader(io.StringIO(text))
    try:  # reading the header already parses its line (a stray carriage return is refused)
        header = [h.strip() for h in reader.fieldnames or []]
    except csv.Error as e:
        raise HTTPException(400, error_body("body", "invalid_field", f"bad CSV: {e}")) from e
    unknown = [h for h in header if h not in columns]
    if not header or unknown:
        raise HTTPException(
            422,
            error_body(
                "header",
                "invalid_field",
                f"unknown columns {unknown}; the header may name {', '.join(columns)}"
                if unknown
                else f"the first line must name the columns ({', '.join(columns)})",
            ),
        )
    reader.fieldnames = header
    try:
        return [
            {k: v.strip() for k, v in row.items() if k is not None and v and v.strip()}
            for row in reader
        ]
    except csv.Error as e:
        raise HTTPException(400, error_body("body", "invalid_field", f"bad CSV: {e}")) from e
