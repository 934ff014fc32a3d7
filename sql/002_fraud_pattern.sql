-- The fraud pattern of each transaction, and the country names that the
-- ISO 3166-1 alpha-2 codes in location and transaction_location stand for.
-- Every statement is idempotent, like 001_schema.sql.

-- The simulator's pattern (high_amount, geo_jump, new_device, card_testing,
-- account_takeover, or a newer producer's own), NULL for legitimate
-- transactions and for frauds of producers that send no pattern.
ALTER TABLE shop.transactions ADD COLUMN IF NOT EXISTS fraud_pattern text;
ALTER TABLE shop.fraud_transactions ADD COLUMN IF NOT EXISTS fraud_pattern text;

CREATE INDEX IF NOT EXISTS fraud_transactions_pattern_idx
    ON shop.fraud_transactions (fraud_pattern, event_time DESC);
-- Partial, because legitimate rows, most of the ledger, have no pattern.
CREATE INDEX IF NOT EXISTS transactions_fraud_pattern_idx
    ON shop.transactions (fraud_pattern, event_time DESC)
    WHERE fraud_pattern IS NOT NULL;

-- Display names of the country codes, the same list as pipeline/countries.py.
-- Codes are not foreign keys in the transaction tables: older rows hold free
-- text, and a consumer must never reject a message for a country it does
-- not list.
CREATE TABLE IF NOT EXISTS shop.countries (
    code text PRIMARY KEY CHECK (code ~ '^[A-Z]{2}$'),
    name text NOT NULL
);

INSERT INTO shop.countries (code, name) VALUES
    ('AE', 'United Arab Emirates'),
    ('AR', 'Argentina'),
    ('AT', 'Austria'),
    ('AU', 'Australia'),
    ('BE', 'Belgium'),
    ('BR', 'Brazil'),
    ('CA', 'Canada'),
    ('CH', 'Switzerland'),
    ('CL', 'Chile'),
    ('CN', 'China'),
    ('CO', 'Colombia'),
    ('CZ', 'Czechia'),
    ('DE', 'Germany'),
    ('DK', 'Denmark'),
    ('DO', 'Dominican Republic'),
    ('EG', 'Egypt'),
    ('ES', 'Spain'),
    ('FI', 'Finland'),
    ('FR', 'France'),
    ('GB', 'United Kingdom'),
    ('GR', 'Greece'),
    ('HK', 'Hong Kong'),
    ('HR', 'Croatia'),
    ('HU', 'Hungary'),
    ('ID', 'Indonesia'),
    ('IE', 'Ireland'),
    ('IL', 'Israel'),
    ('IN', 'India'),
    ('IS', 'Iceland'),
    ('IT', 'Italy'),
    ('JP', 'Japan'),
    ('KE', 'Kenya'),
    ('KR', 'South Korea'),
    ('LU', 'Luxembourg'),
    ('MA', 'Morocco'),
    ('MX', 'Mexico'),
    ('MY', 'Malaysia'),
    ('NG', 'Nigeria'),
    ('NL', 'Netherlands'),
    ('NO', 'Norway'),
    ('NZ', 'New Zealand'),
    ('PE', 'Peru'),
    ('PH', 'Philippines'),
    ('PL', 'Poland'),
    ('PT', 'Portugal'),
    ('RO', 'Romania'),
    ('RU', 'Russia'),
    ('SA', 'Saudi Arabia'),
    ('SE', 'Sweden'),
    ('SG', 'Singapore'),
    ('TH', 'Thailand'),
    ('TR', 'Türkiye'),
    ('UA', 'Ukraine'),
    ('US', 'United States'),
    ('VN', 'Vietnam'),
    ('ZA', 'South Africa')
ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name;
