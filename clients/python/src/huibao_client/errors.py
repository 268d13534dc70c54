"""The client's exceptions: one small hierarchy, every HTTP error carrying Huibao's error body.

Every service answers an error as `{"errors": [{"field", "reason", "message"}, ...]}`;
`ApiError.errors` holds those items, typed. A status has its own subclass so that callers
catch what they can handle (`ServiceUnavailableError` after the bounded retries,
`AuthenticationError` for a bad token) and let the rest go up as `HuibaoError`.

A refused *event* is not an exception: `send_event` and `send_batch` answer it as an
`EventResult` with status `rejected` and its `FieldError`s (see `huibao_client.models`).
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class ErrorDetail(BaseModel):
    """One item of an error body: which field, a machine-readable reason, a message.

    `reason` is a string, not `huibao_contracts.rejects.Reason`: HTTP-level errors use
    further codes (`unauthenticated`, `missing_scope`, `unsupported_media_type`,
    `unavailable`, `not_found`, `conflict`, `invalid_period`, ...).
    """

    model_config = ConfigDict(frozen=True)

    field: str = Field(description="Dotted path of the field, or `body`, `token`, `event`.")
    reason: str = Field(description="Machine-readable reason code.")
    message: str = Field(description="Human-readable explanation.")


class _ErrorBody(BaseModel):
    errors: list[ErrorDetail]


class HuibaoError(Exception):
    """Base of every exception the client raises."""


class HuibaoConnectionError(HuibaoError):
    """The service could not be reached, or the connection broke (the cause is chained).

    Nothing is known about whether a request that was sent took effect; sending events
    again is safe (`source` + `id` makes a repeat a duplicate).
    """


class HuibaoTimeoutError(HuibaoConnectionError):
    """The request took longer than the client's timeout."""


class UnexpectedResponseError(HuibaoError):
    """A success answer whose body does not have the documented shape."""

    def __init__(self, status: int, message: str, body: bytes) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.body = body


class ApiError(HuibaoError):
    """The service answered an error status; `errors` is its error body, typed.

    Attributes:
        status: the HTTP status code.
        errors: the items of `{"errors": [...]}` (a single `body`/`http_error` item when
            the body was not of that shape, e.g. from a proxy).
        retry_after: seconds from the `Retry-After` header, when the service sent one.
        body: the raw response body.
    """

    status_code: int | None = None
    """The status this subclass stands for (None on the base class)."""

    def __init__(
        self,
        status: int,
        errors: tuple[ErrorDetail, ...],
        *,
        retry_after: float | None = None,
        body: bytes = b"",
    ) -> None:
        first = errors[0] if errors else None
        text = f"{first.field}: {first.reason}: {first.message}" if first else "no details"
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(f"HTTP {status}: {text}{more}")
        self.status = status
        self.errors = errors
        self.retry_after = retry_after
        self.body = body

    @property
    def reasons(self) -> tuple[str, ...]:
        """The reason codes of `errors`, in order."""
        return tuple(e.reason for e in self.errors)


class BadRequestError(ApiError):
    """400: the body is not JSON, a batch is not an array, a header is repeated."""

    status_code = 400


class AuthenticationError(ApiError):
    """401: no token, or an unknown or revoked one."""

    status_code = 401


class PermissionDeniedError(ApiError):
    """403: outside the token's subtree (`out_of_scope`) or a scope is missing."""

    status_code = 403


class NotFoundError(ApiError):
    """404: no such unit, node or feedback."""

    status_code = 404


class ConflictError(ApiError):
    """409: the cycle is closed, another replica ran the step, the clock is not manual."""

    status_code = 409


class PayloadTooLargeError(ApiError):
    """413: the body, one event or a batch is over its limit (`too_large`)."""

    status_code = 413


class UnsupportedMediaTypeError(ApiError):
    """415: the content type is not one the route accepts."""

    status_code = 415


class UnprocessableError(ApiError):
    """422: a field or parameter is refused; `errors` name each one and why."""

    status_code = 422


class ServiceUnavailableError(ApiError):
    """503: PostgreSQL or Kafka is unavailable; nothing was stored. Raised once the
    client's bounded retries are used up (or `Retry-After` asked for too long a wait)."""

    status_code = 503


_BY_STATUS: dict[int, type[ApiError]] = {
    cls.status_code: cls
    for cls in (
        BadRequestError,
        AuthenticationError,
        PermissionDeniedError,
        NotFoundError,
        ConflictError,
        PayloadTooLargeError,
        UnsupportedMediaTypeError,
        UnprocessableError,
        ServiceUnavailableError,
    )
    if cls.status_code is not None
}


def error_details(body: bytes, status: int) -> tuple[ErrorDetail, ...]:
    """The items of an error body; one synthetic `http_error` item when it has another shape."""
    try:
        return tuple(_ErrorBody.model_validate_json(body).errors)
    except ValidationError:
        text = body[:500].decode("utf-8", "replace") or f"HTTP {status}"
        return (ErrorDetail(field="body", reason="http_error", message=text),)


def api_error(status: int, headers: Mapping[str, str], body: bytes) -> ApiError:
    """The exception for an error answer: the subclass of its status, its error body."""
    cls = _BY_STATUS.get(status, ApiError)
    return cls(
        status,
        error_details(body, status),
        retry_after=retry_after_seconds(headers.get("retry-after")),
        body=body,
    )


def retry_after_seconds(value: str | None) -> float | None:
    """`Retry-After` as seconds (delta-seconds only; an HTTP date or junk is None)."""
    if value is None:
        return None
    text = value.strip()
    if not text.isdigit():
        return None
    return float(int(text))
