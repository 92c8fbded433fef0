//! What a service needs to be handed over to a successor without a failed request:
//! listening sockets it inherits rather than binds, and a way to say when it is ready.
//!
//! Both follow systemd's protocols, so any supervisor that speaks them works (shopctl's
//! local one does): sockets arrive as file descriptors 3, 4, … with `LISTEN_FDS` saying
//! how many (the public one, then the admin one), and readiness is a `READY=1` datagram
//! to the Unix socket named by `NOTIFY_SOCKET`. A successor started on the same sockets
//! takes connections from the same queue as its predecessor, so the predecessor can stop
//! accepting and drain while no connection is refused or reset.

use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower::ServiceExt;

/// The public and admin listeners the supervisor passed, if it passed any.
pub fn inherited_listeners()
-> anyhow::Result<Option<(std::net::TcpListener, std::net::TcpListener)>> {
    let mut passed = listenfd::ListenFd::from_env();
    match passed.len() {
        0 => return Ok(None),
        2 => {}
        other => anyhow::bail!(
            "LISTEN_FDS passes {other} sockets; a service takes two (public, then admin)"
        ),
    }
    let mut take = |index: usize, what: &str| -> anyhow::Result<std::net::TcpListener> {
        let listener = passed
            .take_tcp_listener(index)
            .with_context(|| format!("the inherited {what} socket"))?
            .with_context(|| format!("no inherited {what} socket"))?;
        listener.set_nonblocking(true)?;
        Ok(listener)
    };
    Ok(Some((take(0, "public")?, take(1, "admin")?)))
}

/// When `NOTIFY_SOCKET` names a supervisor's socket: asks `router` for `/readyz` until it
/// answers 200, then tells the supervisor `READY=1`. Without one, does nothing.
pub fn notify_when_ready(router: Router) {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    tokio::spawn(async move {
        loop {
            let probe = Request::get("/readyz")
                .body(Body::empty())
                .expect("a static request");
            if let Ok(response) = router.clone().oneshot(probe).await
                && response.status() == StatusCode::OK
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let sent = std::os::unix::net::UnixDatagram::unbound()
            .and_then(|notifier| notifier.send_to(b"READY=1", &socket));
        match sent {
            Ok(_) => tracing::info!("told the supervisor it is ready"),
            Err(err) => tracing::warn!(error = %err, "could not tell the supervisor it is ready"),
        }
    });
}
