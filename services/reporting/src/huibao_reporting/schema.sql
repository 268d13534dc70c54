-- The reporting schema: org-unit registry, seen messages, accepted activities.
-- Idempotent; the outbox and auth tables come from huibao_platform (adapters/schema.py).
CREATE SCHEMA IF NOT EXISTS reporting;

CREATE SEQUENCE IF NOT EXISTS reporting.registry_seq;

-- Current state of every org unit (parent = the latest placement's parent).
CREATE TABLE IF NOT EXISTS reporting.orgunits (
    id          text PRIMARY KEY,
    name        text        NOT NULL,
    level       text        NOT NULL,
    parent      text,
    members     integer     NOT NULL DEFAULT 0,
    opened      date,
    closed      date,
    merged_into text,
    seq         bigint      NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Dated parents: the placement valid_from '0001-01-01' holds since always.
CREATE TABLE IF NOT EXISTS reporting.placements (
    unit       text NOT NULL,
    valid_from date NOT NULL,
    parent     text,
    PRIMARY KEY (unit, valid_from)
);
CREATE INDEX IF NOT EXISTS placements_parent ON reporting.placements (parent);

-- Dated names and member counts (a unit without rows: its orgunits name and members since
-- always). A row without name and members marks a point (a close, a merge) that changes
-- neither: a version was published from it.
CREATE TABLE IF NOT EXISTS reporting.unit_labels (
    unit       text    NOT NULL,
    valid_from date    NOT NULL,
    name       text,
    members    integer,
    PRIMARY KEY (unit, valid_from)
);

-- Every accepted message, by source + id: a repeat is a duplicate.
CREATE TABLE IF NOT EXISTS reporting.events_seen (
    source      text        NOT NULL,
    id          text        NOT NULL,
    activity_id text        NOT NULL,
    channel     text        NOT NULL,
    received_at timestamptz NOT NULL,
    PRIMARY KEY (source, id)
);

-- The accepted revision of every activity.
CREATE TABLE IF NOT EXISTS reporting.activities (
    activity_id       text PRIMARY KEY,
    type              text        NOT NULL,
    unit              text        NOT NULL,
    revision          integer     NOT NULL,
    date              date        NOT NULL,
    month             date        NOT NULL,
    retracted         boolean     NOT NULL DEFAULT false,
    source            text        NOT NULL,
    event_id          text        NOT NULL,
    time              timestamptz,
    received_at       timestamptz NOT NULL,
    first_received_at timestamptz NOT NULL,
    data              jsonb       NOT NULL
);
CREATE INDEX IF NOT EXISTS activities_party_day ON reporting.activities (unit, month)
    WHERE type = 'huibao.party_day.held.v1' AND NOT retracted;

-- Bumped in every registry write's transaction: a reader that cached unit records
-- drops them when it sees a new version (adapters/registry_cache.py).
CREATE TABLE IF NOT EXISTS reporting.registry_version (
    one     boolean PRIMARY KEY DEFAULT true CHECK (one),
    version bigint  NOT NULL
);
INSERT INTO reporting.registry_version (one, version) VALUES (true, 0) ON CONFLICT DO NOTHING;
