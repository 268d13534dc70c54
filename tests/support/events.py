"""CloudEvents as integrators send them (structured mode, JSON)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any


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
