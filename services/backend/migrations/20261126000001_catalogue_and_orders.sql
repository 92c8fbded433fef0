-- Catalogue, stock and orders. Stock can never go negative: the CHECK is the last line of
-- defence behind the row locks the order path takes.

CREATE TABLE categories (
    slug TEXT PRIMARY KEY CHECK (slug ~ '^[a-z0-9-]+$'),
    name TEXT NOT NULL
);

CREATE TABLE products (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name TEXT NOT NULL,
    category TEXT NOT NULL REFERENCES categories (slug),
    description TEXT NOT NULL,
    price_cents BIGINT NOT NULL CHECK (price_cents >= 0),
    stock INTEGER NOT NULL CHECK (stock >= 0),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    search_vector TSVECTOR GENERATED ALWAYS AS (
        to_tsvector('english', name || ' ' || category || ' ' || description)
    ) STORED
);

-- Keyset pagination per sort order, the category filter, and full-text search.
CREATE INDEX products_category_id_idx ON products (category, id);
CREATE INDEX products_price_id_idx ON products (price_cents, id);
CREATE INDEX products_name_id_idx ON products (name, id);
CREATE INDEX products_search_idx ON products USING GIN (search_vector);

CREATE TABLE orders (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    status TEXT NOT NULL CHECK (status IN ('confirmed', 'cancelled')),
    total_cents BIGINT NOT NULL CHECK (total_cents >= 0),
    idempotency_key TEXT UNIQUE,
    request_fingerprint TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE order_items (
    order_id BIGINT NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    product_id BIGINT NOT NULL REFERENCES products (id),
    quantity INTEGER NOT NULL CHECK (quantity > 0),
    unit_price_cents BIGINT NOT NULL CHECK (unit_price_cents >= 0),
    PRIMARY KEY (order_id, product_id)
);

-- Popularity (fallback recommendations) and co-purchase training read by product.
CREATE INDEX order_items_product_idx ON order_items (product_id);
