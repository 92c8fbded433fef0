-- Who may do what with the schema. The login roles are made by the platform's database
-- setup (templates/postgres/roles.sql, run as a superuser); the tables' privileges live
-- here, beside the tables, and are granted to two group roles so that a dump carries them
-- to any server set up the same way: the backend reads and writes the shop's tables and
-- reads the schema version it checks at start; ml reads only what it trains on.
--
-- The group roles are made here when missing (a superuser running the migrations, as in
-- tests and hand-run services). The platform's schema owner cannot make roles, and need
-- not: its setup has made them.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'shopmicro_backend_grants') THEN
        CREATE ROLE shopmicro_backend_grants NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'shopmicro_ml_grants') THEN
        CREATE ROLE shopmicro_ml_grants NOLOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL; -- made at the same moment by another database's migration on this server
END $$;

GRANT USAGE ON SCHEMA public TO shopmicro_backend_grants, shopmicro_ml_grants;
GRANT SELECT, INSERT, UPDATE, DELETE ON categories, products, orders, order_items
    TO shopmicro_backend_grants;
GRANT SELECT ON _sqlx_migrations TO shopmicro_backend_grants;
GRANT SELECT ON products, order_items TO shopmicro_ml_grants;
