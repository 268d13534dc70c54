"""The Python client of Huibao, typed from `huibao_contracts`.

- `HuibaoClient` / `AsyncHuibaoClient`: every HTTP operation an integrator needs (events,
  dry runs, org-unit imports, the rollup's queries, scheduler cycles, feedback), sync or
  async, with a bearer token, timeouts and a bounded retry of 503 + `Retry-After`.
- `new_event`: a `CloudEvent` from a typed activity payload.
- `huibao_client.errors`: the exceptions (`HuibaoError` and below).
- `huibao_client.kafka.KafkaPublisher` (extra `kafka`, aiokafka): publish events to
  `huibao.activity.submitted` in structured or binary mode, keyed by unit.
- `huibao_client.rejects.rejected_record`: a record of `huibao.activity.rejected`, typed
  (reason, the contract's `FieldError`s, channel, the original bytes).
"""

from huibao_client.client import AsyncHuibaoClient, HuibaoClient
from huibao_client.core import Event, RetryPolicy, Unit, event_json, new_event
from huibao_client.errors import (
    ApiError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    ErrorDetail,
    HuibaoConnectionError,
    HuibaoError,
    HuibaoTimeoutError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    ServiceUnavailableError,
    UnexpectedResponseError,
    UnprocessableError,
    UnsupportedMediaTypeError,
)
from huibao_client.models import BatchResult, EventResult, EventStatus, ImportResult

__all__ = [
    "ApiError",
    "AsyncHuibaoClient",
    "AuthenticationError",
    "BadRequestError",
    "BatchResult",
    "ConflictError",
    "ErrorDetail",
    "Event",
    "EventResult",
    "EventStatus",
    "HuibaoClient",
    "HuibaoConnectionError",
    "HuibaoError",
    "HuibaoTimeoutError",
    "ImportResult",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RetryPolicy",
    "ServiceUnavailableError",
    "UnexpectedResponseError",
    "Unit",
    "UnprocessableError",
    "UnsupportedMediaTypeError",
    "event_json",
    "new_event",
]
