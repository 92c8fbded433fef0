-- Shoppers and API clients see an order by an unguessable reference; the sequential id,
-- which would let anyone enumerate every order, stays internal (order_items still joins
-- on it). Existing orders get a reference of their own.
ALTER TABLE orders ADD COLUMN reference UUID NOT NULL DEFAULT gen_random_uuid();
ALTER TABLE orders ADD CONSTRAINT orders_reference_key UNIQUE (reference);
