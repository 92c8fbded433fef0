-- The catalogue's version: a number that changes in the same transaction as any change to
-- products or categories (an order's stock, a price, a new product), whoever makes it. The
-- backend keys every cached catalogue answer by it, so nothing stale is served once the
-- change is committed. It is microseconds since the epoch, or one more than before when that
-- is higher: a database restored to an older state and changed again never reuses a number
-- whose cached answers described other data.
--
-- Every change takes this row's lock until commit, so changes to the catalogue commit one
-- at a time (orders still check and reserve stock concurrently).
CREATE TABLE catalogue_version (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    version bigint NOT NULL
);
INSERT INTO catalogue_version (version)
VALUES ((extract(epoch FROM clock_timestamp()) * 1000000)::bigint);

CREATE FUNCTION bump_catalogue_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE catalogue_version
    SET version = greatest(version + 1, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint);
    RETURN NULL;
END $$;

CREATE TRIGGER products_change_the_catalogue
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON products
    FOR EACH STATEMENT EXECUTE FUNCTION bump_catalogue_version();
CREATE TRIGGER categories_change_the_catalogue
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON categories
    FOR EACH STATEMENT EXECUTE FUNCTION bump_catalogue_version();

GRANT SELECT, UPDATE ON catalogue_version TO shopmicro_backend_grants;
