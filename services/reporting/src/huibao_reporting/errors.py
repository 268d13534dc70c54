"""Reporting's own errors: every refusal a use case raises derives from `ReportingError`.

A driver's error never leaves an adapter as itself: the stores translate PostgreSQL's into
the platform's `StorageUnavailableError` or `UnstorableValueError` (`adapters/storage.py`),
which the HTTP and Kafka entrypoints answer as 503 or a reject.
"""

from __future__ import annotations

from huibao_platform.errors import HuibaoError


class ReportingError(HuibaoError):
    """Base of the reporting service's errors (under the platform's `HuibaoError`, as the
    scheduler's and the rollup's are)."""
