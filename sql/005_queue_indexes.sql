-- Indexes of the fraud queue page (pages/frauds.py, pipeline/fraud_queue.py).
-- Every statement is idempotent, like the other migrations.
--
-- NOTE: migrations run in a transaction, so these are plain CREATE INDEX
-- statements: they block writes to shop.fraud_transactions while they build,
-- an estimated 2 s per index for 1.5 million rows on 2 cores (one run). On a larger
-- table, create them by hand with CREATE INDEX CONCURRENTLY first; this file
-- then finds them and skips them.

-- Keyset paging of the "highest fraud_score" and "largest amount" orders.
-- The keys equal the ORDER BY and the row comparison of the page query, so
-- the next page starts with an index seek. Unscored rows have a NULL
-- fraud_score and sort last as -Infinity. The "newest" order uses the
-- existing (event_time DESC) index.
CREATE INDEX IF NOT EXISTS fraud_transactions_score_order_idx
    ON shop.fraud_transactions (
        (COALESCE(fraud_score, '-Infinity'::double precision)) DESC,
        event_time DESC,
        transaction_id DESC
    );
CREATE INDEX IF NOT EXISTS fraud_transactions_amount_order_idx
    ON shop.fraud_transactions (amount DESC, event_time DESC, transaction_id DESC);

-- The search box: LIKE 'prefix%' on either id. text_pattern_ops compares
-- bytes, so a prefix LIKE uses these indexes whatever the database
-- collation; the primary key and (user_id, event_time) serve = only.
CREATE INDEX IF NOT EXISTS fraud_transactions_id_prefix_idx
    ON shop.fraud_transactions (transaction_id text_pattern_ops);
CREATE INDEX IF NOT EXISTS fraud_transactions_user_prefix_idx
    ON shop.fraud_transactions (user_id text_pattern_ops);

-- Similar transactions (same device and country within a time window) and
-- the device plus country filter.
CREATE INDEX IF NOT EXISTS fraud_transactions_device_location_idx
    ON shop.fraud_transactions (device, transaction_location, event_time DESC);
