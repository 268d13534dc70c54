"""CloudEvents as integrators send them (structured mode, JSON), and the client that sends them.

Tests talk to the running stack through `huibao-client`, the package integrators use:
`client_for(stack)` is an `AsyncHuibaoClient` of its three services.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING, Any

from huibao_client import AsyncHuibaoClient

if TYPE_CHECKING:
    from huibao_stack.stack import EmbeddedStack


def cloudevent(
    type: str,
    subject: str,
    data: dict[str, Any],
    *,
    id: str | None = None,
    source: str = "/tests",
    time: str | dt.datetime | None = None,
) -> dict[str, Any]:
    """A structured CloudEvent 1.0 dict; `time` is left out when None (receipt time counts)."""
    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": id or uuid.uuid4().hex,
        "source": source,
        "type": type,
        "subject": subject,
        "datacontenttype": "application/json",
        "data": data,
    }
    if time is not None:
        event["time"] = time.isoformat() if isinstance(time, dt.datetime) else time
    return event


def client_for(stack: EmbeddedStack, token: str | None = None) -> AsyncHuibaoClient:
    """An async client of the stack's reporting, rollup and scheduler (admin token unless
    `token` is given); use it as `async with client_for(stack) as huibao:`."""
    urls = stack.urls
    return AsyncHuibaoClient(
        urls["reporting"],
        rollup_url=urls["rollup"],
        scheduler_url=urls["scheduler"],
        token=stack.admin_token if token is None else token,
        timeout=60,
    )
