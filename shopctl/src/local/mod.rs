//! The local target: the whole platform as processes on this machine.
//!
//! `shopctl up --env local` starts a supervisor (`shopctl supervise`, detached) that owns
//! everything it starts: a private PostgreSQL (or `DATABASE_URL`), a private Redis (or
//! `REDIS_URL`, or none), then ml, backend and frontend on free ports, each gated on its
//! readiness, restarted with backoff when it crashes. State lives in one directory with a
//! lock; processes are recorded by pid *and* start time, so a stale record never makes
//! shopctl signal an unrelated process.

pub mod addresses;
pub mod binaries;
pub mod events;
pub mod launch;
pub mod postgres;
pub mod process;
pub mod release;
pub mod state;
pub mod supervisor;
