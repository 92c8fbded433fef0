//! Backend integration tests: the real application on port 0, a fresh PostgreSQL
//! database per test, real Redis.

mod cache;
mod health;
mod helpers;
mod orders;
mod products;
mod query_counter;
mod reads;
mod recommendations;
mod shutdown;
