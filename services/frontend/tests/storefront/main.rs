//! Storefront tests against the real stack: backend and ml on a fresh PostgreSQL
//! database, the frontend in front of them, a real browser for the end-to-end journey.

mod browser;
mod failures;
mod page_cache;
mod pages;
mod shopping;
mod support;
mod tracing;
