-- The platform's database roles: a psql script run as a superuser in the platform's
-- database each time PostgreSQL starts (the postgres container's postStart hook; `shopctl
-- up` on the local target). Idempotent; it converges a database made before the roles
-- existed too.
--
--   <database>_owner    owns the schema and runs the migrations (`shopmicro-backend migrate`)
--   <database>_backend  reads and writes the shop's tables (group shopmicro_backend_grants)
--   <database>_ml       reads what it trains on (group shopmicro_ml_grants)
--   <database>_backup   reads everything for pg_dump; makes scratch databases to verify
--
-- The tables' privileges are granted by the migrations, to the group roles, so a dump
-- carries them. Passwords come from the environment (\getenv), never from arguments:
-- SHOPMICRO_DB_{OWNER,BACKEND,ML,BACKUP}_PASSWORD. Called with `-v database=NAME`.
\set ON_ERROR_STOP on
\set owner :database '_owner'
\set backend :database '_backend'
\set ml :database '_ml'
\set backup :database '_backup'
\getenv owner_password SHOPMICRO_DB_OWNER_PASSWORD
\getenv backend_password SHOPMICRO_DB_BACKEND_PASSWORD
\getenv ml_password SHOPMICRO_DB_ML_PASSWORD
\getenv backup_password SHOPMICRO_DB_BACKUP_PASSWORD

SET client_min_messages = warning;

BEGIN;

SELECT format('CREATE ROLE %I NOLOGIN', name)
FROM unnest(ARRAY[:'owner', :'backend', :'ml', :'backup',
                  'shopmicro_backend_grants', 'shopmicro_ml_grants']) AS name
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = name)
\gexec

ALTER ROLE :"owner" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS
    PASSWORD :'owner_password';
ALTER ROLE :"backend" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS
    PASSWORD :'backend_password';
ALTER ROLE :"ml" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS
    PASSWORD :'ml_password';
-- CREATEDB: `shopctl db verify` restores into a scratch database it then drops.
ALTER ROLE :"backup" LOGIN NOSUPERUSER CREATEDB NOCREATEROLE NOBYPASSRLS
    PASSWORD :'backup_password';
GRANT shopmicro_backend_grants TO :"backend";
GRANT shopmicro_ml_grants TO :"ml";
GRANT pg_read_all_data TO :"backup";

-- Only the platform's roles may connect.
REVOKE ALL ON DATABASE :"database" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"database" TO :"owner", :"backend", :"ml", :"backup";

-- The owner owns the schema: it creates in it and grants on it; nobody else creates.
ALTER SCHEMA public OWNER TO :"owner";
REVOKE ALL ON SCHEMA public FROM PUBLIC;

-- What was made before the owner existed (by the superuser) becomes the owner's, so later
-- migrations may alter it (a table's identity sequences follow the table).
SELECT format('ALTER TABLE public.%I OWNER TO %I', tablename, :'owner')
FROM pg_tables
WHERE schemaname = 'public' AND tableowner <> :'owner'
\gexec
SELECT format('ALTER VIEW public.%I OWNER TO %I', viewname, :'owner')
FROM pg_views
WHERE schemaname = 'public' AND viewowner <> :'owner'
\gexec

COMMIT;
