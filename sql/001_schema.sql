-- Ledger, fraud table and quarantine of the streaming pipeline.
-- Every statement is idempotent, so this file can also initialise a fresh
-- server (docker-compose mounts sql/ as its init folder) before
-- `python -m pipeline.migrate` records it.

CREATE SCHEMA IF NOT EXISTS shop;

-- Every valid transaction, fraud or not: the ledger keeps frauds too, so a
-- user's whole history can be browsed and models evaluated against is_fraud.
-- event_time is the message's `timestamp` field, converted to UTC.
CREATE TABLE IF NOT EXISTS shop.transactions (
    transaction_id       text PRIMARY KEY,
    user_id              text NOT NULL,
    event_time           timestamptz NOT NULL,
    first_name           text NOT NULL,
    last_name            text NOT NULL,
    location             text NOT NULL,
    transaction_location text NOT NULL,
    amount               numeric(12, 2) NOT NULL,
    device               text NOT NULL,
    is_fraud             smallint NOT NULL CHECK (is_fraud IN (0, 1)),
    fraud_reasons        text[] NOT NULL DEFAULT '{}',
    kafka_topic          text NOT NULL,
    kafka_partition      integer NOT NULL,
    kafka_offset         bigint NOT NULL,
    ingested_at          timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE INDEX IF NOT EXISTS transactions_event_time_idx
    ON shop.transactions (event_time DESC);
CREATE INDEX IF NOT EXISTS transactions_user_event_time_idx
    ON shop.transactions (user_id, event_time DESC);
CREATE INDEX IF NOT EXISTS transactions_ingested_at_idx
    ON shop.transactions (ingested_at DESC);

-- Transactions labelled fraud, with what an analyst needs to review them.
CREATE TABLE IF NOT EXISTS shop.fraud_transactions (
    transaction_id       text PRIMARY KEY,
    user_id              text NOT NULL,
    event_time           timestamptz NOT NULL,
    first_name           text NOT NULL,
    last_name            text NOT NULL,
    location             text NOT NULL,
    transaction_location text NOT NULL,
    amount               numeric(12, 2) NOT NULL,
    device               text NOT NULL,
    fraud_reasons        text[] NOT NULL DEFAULT '{}',
    kafka_topic          text NOT NULL,
    kafka_partition      integer NOT NULL,
    kafka_offset         bigint NOT NULL,
    ingested_at          timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE INDEX IF NOT EXISTS fraud_transactions_event_time_idx
    ON shop.fraud_transactions (event_time DESC);
CREATE INDEX IF NOT EXISTS fraud_transactions_user_event_time_idx
    ON shop.fraud_transactions (user_id, event_time DESC);
CREATE INDEX IF NOT EXISTS fraud_transactions_device_idx
    ON shop.fraud_transactions (device, event_time DESC);
CREATE INDEX IF NOT EXISTS fraud_transactions_location_idx
    ON shop.fraud_transactions (transaction_location, event_time DESC);

-- Messages the consumers could not accept, kept with the reason. A Kafka
-- record has one (topic, partition, offset), so a replayed batch or a second
-- consumer writing the same rejection adds no row.
CREATE TABLE IF NOT EXISTS shop.rejected_messages (
    id              bigserial PRIMARY KEY,
    kafka_topic     text NOT NULL,
    kafka_partition integer NOT NULL,
    kafka_offset    bigint NOT NULL,
    kafka_key       text,
    raw_payload     text,
    reason          text NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (kafka_topic, kafka_partition, kafka_offset)
);

CREATE INDEX IF NOT EXISTS rejected_messages_received_at_idx
    ON shop.rejected_messages (received_at DESC);
