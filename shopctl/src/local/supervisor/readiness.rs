//! When a component is ready, judged as a kubelet probe would: polled until it answers,
//! failing fast when the process exits.

use std::time::{Duration, Instant};

use tokio::process::Child;

use super::spec::Spec;
use crate::local::postgres;

/// How long a component may take to become ready (a first PostgreSQL initdb, a backend
/// seeding the demo data).
pub(super) const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// How to tell that a component is ready.
#[derive(Clone)]
pub(super) enum Probe {
    /// An HTTP GET of this path answers 2xx.
    Http(&'static str),
    /// Redis answers PING with PONG.
    RedisPing,
    /// `pg_isready` with the cluster's own binaries (which also start it).
    Postgres(postgres::Binaries),
}

/// Polls `spec`'s probe until it passes; fails when `child` exits or after
/// [`READY_TIMEOUT`].
pub(super) async fn wait_ready(spec: &Spec, mut child: Option<&mut Child>) -> anyhow::Result<()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()?;
    loop {
        if let Some(child) = child.as_deref_mut()
            && let Some(status) = child.try_wait()?
        {
            anyhow::bail!("{} exited during start-up ({status})", spec.name);
        }
        let ready = match &spec.probe {
            Probe::Postgres(binaries) => postgres::is_ready(binaries, spec.port),
            Probe::Http(path) => http
                .get(format!("http://127.0.0.1:{}{path}", spec.port))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success()),
            Probe::RedisPing => redis_pong(spec.port).await,
        };
        if ready {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{} not ready after {:?}",
            spec.name,
            READY_TIMEOUT
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn redis_pong(port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    let mut reply = [0u8; 7];
    stream.write_all(b"PING\r\n").await.is_ok()
        && tokio::time::timeout(Duration::from_secs(1), stream.read_exact(&mut reply))
            .await
            .is_ok_and(|r| r.is_ok())
        && &reply == b"+PONG\r\n"
}
