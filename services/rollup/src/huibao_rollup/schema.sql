-- The rollup's schema: facts, aggregates, consumed positions and the versioned tree.
-- Idempotent; applied at start-up under an advisory lock (huibao_platform.db.apply_schema).
CREATE SCHEMA IF NOT EXISTS rollup;

-- One row per activity: the revision applied and what it contributes, through which path.
CREATE TABLE IF NOT EXISTS rollup.facts (
    activity_id       text        PRIMARY KEY,
    unit              text        NOT NULL,
    type              text        NOT NULL,
    date              date        NOT NULL,
    revision          integer     NOT NULL,
    message_key       text        NOT NULL,
    first_reported_at timestamptz NOT NULL,
    on_time           boolean,
    retracted         boolean     NOT NULL DEFAULT false,
    contribution      jsonb       NOT NULL,
    path              text[]      NOT NULL,
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS facts_path_idx ON rollup.facts USING gin (path);
CREATE INDEX IF NOT EXISTS facts_type_date_idx ON rollup.facts (type, date);

-- Aggregates per node, month and shard (the Kafka partition applied; -1 for tree
-- re-attribution, 0 for a rebuild), so replicas never write the same row. `v` holds every
-- summed metric in the rollup's fixed slot order (huibao_rollup.domain.aggregation.SLOTS,
-- append only), trailing zeros left out. Quarters and years are sums of their months.
CREATE TABLE IF NOT EXISTS rollup.monthly (
    node  text      NOT NULL,
    month date      NOT NULL,
    shard integer   NOT NULL,
    v     numeric[] NOT NULL,
    PRIMARY KEY (node, month, shard)
) WITH (fillfactor = 70);
-- The per-metric layout this table replaced (never deployed); rebuild fills `monthly`.
DROP TABLE IF EXISTS rollup.agg;

-- Element-wise sum of two value arrays of any lengths (missing slots count as 0).
CREATE OR REPLACE FUNCTION rollup.vadd(a numeric[], b numeric[]) RETURNS numeric[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ARRAY(SELECT coalesce(x, 0) + coalesce(y, 0)
                 FROM unnest(a, b) WITH ORDINALITY AS t(x, y, i) ORDER BY i)
$$;
-- A value array with `x` in slot `i` (1-based) and zeros before it.
CREATE OR REPLACE FUNCTION rollup.vcell(i integer, x numeric) RETURNS numeric[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT array_fill(0::numeric, ARRAY[i - 1]) || x
$$;
CREATE OR REPLACE AGGREGATE rollup.vsum(numeric[]) (
    SFUNC = rollup.vadd, STYPE = numeric[], INITCOND = '{}'
);

-- The last record applied per partition, written in the same transaction as its effect.
CREATE TABLE IF NOT EXISTS rollup.offsets (
    topic       text    NOT NULL,
    partition   integer NOT NULL,
    "offset"    bigint  NOT NULL,
    message_key text    NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, partition)
);

-- Every version of every org unit, from huibao.orgunit.changes; '-infinity' = since always.
CREATE TABLE IF NOT EXISTS rollup.unit_versions (
    unit        text    NOT NULL,
    effective   date    NOT NULL,
    seq         bigint  NOT NULL,
    kind        text    NOT NULL,
    name        text    NOT NULL,
    level       text    NOT NULL,
    parent      text,
    members     integer NOT NULL,
    opened      date,
    closed      date,
    merged_into text,
    PRIMARY KEY (unit, effective)
);

-- Token hashes are owned by reporting; created here too so the rollup can start first.
CREATE SCHEMA IF NOT EXISTS auth;
CREATE TABLE IF NOT EXISTS auth.tokens (
    token_hash text PRIMARY KEY,
    unit       text        NOT NULL,
    label      text        NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);
