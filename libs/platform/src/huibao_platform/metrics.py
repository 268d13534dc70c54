"""Prometheus metrics shared by the services: one prefix, base units, bounded labels.

Never label by org-unit id: labels here are channels, outcomes, reason codes, topics,
partitions, routes and cycle kinds, all of which have a small fixed set of values.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

HTTP_DURATION = Histogram(
    "huibao_http_request_duration_seconds",
    "HTTP request duration by route template, method and status code.",
    ["route", "method", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
INTAKE = Counter(
    "huibao_intake_events",
    "Events received by reporting, by channel, outcome and reject reason.",
    ["channel", "outcome", "reason"],
)
OUTBOX_BACKLOG = Gauge("huibao_outbox_backlog", "Outbox rows waiting to be relayed to Kafka.")
OUTBOX_OLDEST_AGE = Gauge(
    "huibao_outbox_oldest_age_seconds", "Age of the oldest outbox row waiting to be relayed."
)
RELAY_PUBLISHED = Counter("huibao_relay_published", "Outbox rows published to Kafka.")
RELAY_FAILURES = Counter("huibao_relay_failures", "Relay attempts that failed (broker outage).")
OUTBOX_KEPT = Gauge(
    "huibao_outbox_kept", "Published outbox rows kept until their consumers confirm them."
)
OUTBOX_STARTED_OVER = Counter(
    "huibao_outbox_topic_started_over",
    "Times the relay found a topic's partition had lost its log (the broker came back empty).",
    ["topic"],
)
OUTBOX_REPUBLISHED = Counter(
    "huibao_outbox_republished",
    "Kept outbox rows published again because their topic started over.",
    ["topic"],
)
CONSUMER_LAG = Gauge(
    "huibao_consumer_lag",
    "Messages behind the end of the partition, for every partition of every consumed topic"
    " (from the broker's end offsets, on a timer).",
    ["topic", "partition", "group"],
)
CONSUMER_OFFSET_RESET = Counter(
    "huibao_consumer_offset_reset",
    "Times a consumer found its position beyond the end of a partition (the broker came back"
    " empty) and read that partition again from its beginning.",
    ["topic"],
)
CONSUMER_PROGRESS_AGE = Gauge(
    "huibao_consumer_progress_age_seconds",
    "Seconds since the consumer's position on the partition last moved or its lag was 0.",
    ["topic", "partition", "group"],
)
BATCH_SIZE = Histogram(
    "huibao_rollup_batch_size",
    "Events per applied batch.",
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000),
)
BATCH_DURATION = Histogram(
    "huibao_rollup_batch_duration_seconds",
    "Time to apply one batch, PostgreSQL commit included.",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
EVENTS_APPLIED = Counter("huibao_rollup_events_applied", "Activity events applied to aggregates.")
DUPLICATES = Counter("huibao_rollup_duplicates", "Events skipped as duplicates or stale revisions.")
CORRECTIONS = Counter("huibao_rollup_corrections", "Corrections and retractions applied.")
ANSWERS = Counter(
    "huibao_rollup_answers",
    "Query answers by how they were obtained: hit (kept), built, shared (another request's"
    " build), bypass (cache not usable: tree changing or data version unknown).",
    ["outcome"],
)
CYCLE_STATE = Gauge(
    "huibao_cycle_state",
    "1 for the current state of the latest cycle of each kind.",
    ["kind", "state"],
)
CYCLE_OVERDUE = Gauge("huibao_cycle_overdue_steps", "Cycle steps due but not run yet.")
NOTIFICATIONS = Counter("huibao_notifications", "Notifications sent, by kind.", ["kind"])
CYCLE_BRANCHES = Gauge(
    "huibao_cycle_branches",
    "Branches of the latest monthly Party Day cycle by completeness state, summed over roots.",
    ["kind", "state"],
)
