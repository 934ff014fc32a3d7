-- Create or update a read-only login role for Grafana: SELECT on every table
-- of schema shop, nothing else. Running it again changes nothing but the
-- password. It is not a migration: pipeline/migrate.py applies only sql/*.sql.
--
-- Run it with psql as the owner of the shop tables (the local stack's user
-- fraud), after the migrations:
--
--   export GRAFANA_DB_USER=grafana_reader     # optional, this is the default
--   read -rs GRAFANA_DB_PASSWORD && export GRAFANA_DB_PASSWORD
--   psql -X postgresql://fraud:fraud@127.0.0.1:5433/fraud -f sql/roles/grafana_reader.sql
--
-- The role name and password come from the same variables that the Grafana
-- datasource in grafana/provisioning/datasources/postgres.yml reads.
-- `-v reader_role=NAME -v reader_password=SECRET` override them, but put
-- the password in the process list. psql 15 or newer is needed for \getenv.
--
-- NOTE: the password travels to the server inside ALTER ROLE, which the
-- server stores as a SCRAM hash (password_encryption, default since
-- PostgreSQL 14) but would write to its log if log_statement is 'all' or 'ddl'.

\set ON_ERROR_STOP on

\if :{?reader_role}
\else
    \getenv reader_role GRAFANA_DB_USER
\endif
\if :{?reader_role}
\else
    \set reader_role grafana_reader
\endif
\if :{?reader_password}
\else
    \getenv reader_password GRAFANA_DB_PASSWORD
\endif
\if :{?reader_password}
\else
    \set reader_password ''
\endif

-- Session settings carry the psql variables into the DO block, because psql
-- does not substitute variables inside a dollar-quoted body.
SELECT set_config('grafana_reader.role', :'reader_role', false),
       set_config('grafana_reader.password', :'reader_password', false)
\g /dev/null

DO $grafana_reader$
DECLARE
    reader   text := current_setting('grafana_reader.role');
    password text := current_setting('grafana_reader.password');
    existing pg_roles%ROWTYPE;
BEGIN
    IF password = '' THEN
        RAISE EXCEPTION 'The password of role % is missing.', reader
            USING HINT = 'Export GRAFANA_DB_PASSWORD, or pass -v reader_password=..., and run the script again.';
    END IF;
    IF to_regnamespace('shop') IS NULL THEN
        RAISE EXCEPTION 'Schema shop does not exist in database %.', current_database()
            USING HINT = 'Create it with `python -m pipeline.migrate`, then run this script again.';
    END IF;
    IF reader = current_user THEN
        RAISE EXCEPTION 'Role % is the user running this script, which must stay able to write.', reader
            USING HINT = 'Set GRAFANA_DB_USER to another name, such as grafana_reader.';
    END IF;

    -- An existing role is reused only when it is an ordinary role that owns
    -- nothing in shop. So the script never restricts an administrator or
    -- the pipeline's writer.
    SELECT * INTO existing FROM pg_roles WHERE rolname = reader;
    IF FOUND THEN
        IF existing.rolsuper OR existing.rolcreaterole OR existing.rolcreatedb
           OR existing.rolreplication OR existing.rolbypassrls THEN
            RAISE EXCEPTION 'Role % exists and has administrative attributes, so it is not made read-only.', reader
                USING HINT = 'Set GRAFANA_DB_USER to a new role name.';
        END IF;
        IF EXISTS (SELECT FROM pg_namespace WHERE nspname = 'shop' AND nspowner = existing.oid)
           OR EXISTS (SELECT FROM pg_class
                      WHERE relnamespace = 'shop'::regnamespace AND relowner = existing.oid) THEN
            RAISE EXCEPTION 'Role % owns schema shop or tables in it, so it is not made read-only.', reader
                USING HINT = 'Set GRAFANA_DB_USER to a new role name.';
        END IF;
    ELSE
        EXECUTE format('CREATE ROLE %I', reader);
        RAISE NOTICE 'Created role %.', reader;
    END IF;

    EXECUTE format('ALTER ROLE %I WITH LOGIN PASSWORD %L', reader, password);
    -- Every session of the role is read-only, and a dashboard query that
    -- scans too much is cancelled instead of loading the server.
    EXECUTE format('ALTER ROLE %I SET default_transaction_read_only = on', reader);
    EXECUTE format('ALTER ROLE %I SET statement_timeout = %L', reader, '30s');

    EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), reader);
    EXECUTE format('GRANT USAGE ON SCHEMA shop TO %I', reader);
    EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA shop TO %I', reader);
    -- Tables that later migrations create, when the same user runs them.
    EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA shop GRANT SELECT ON TABLES TO %I', reader);
    RAISE NOTICE 'Role % can log in and read schema shop of database %.', reader, current_database();
END
$grafana_reader$;

-- The password stays in this session's settings until it ends; clear it now.
SELECT set_config('grafana_reader.password', '', false) \g /dev/null
