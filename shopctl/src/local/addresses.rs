//! What an environment keeps for its whole life in its state directory: the port of each
//! component, the storefront's cart-signing key and ml's retrain token. Releases, rollbacks and restarts start
//! processes on the same ports, so the storefront URL `up` printed keeps answering; and a
//! cart signed by one frontend process is accepted by the next.
//!
//! Ports are chosen once: a random free port in 20000–29999, below Linux's ephemeral range
//! (32768–60999) so an outgoing connection's source port is unlikely ever to hold one. A
//! recorded port that another program has taken since is replaced (and recorded). The
//! services' documented ports (8000, 8080, 8081) are not used: two environments starting
//! at once would race for them, and tests start many.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use base64::Engine;

use super::state::StateDir;

/// Where new ports are drawn from.
const RANGE: std::ops::Range<u16> = 20000..30000;

/// The ports an environment's components listen on.
pub struct Ports {
    file: PathBuf,
    ports: BTreeMap<String, u16>,
}

impl Ports {
    /// The ports recorded for the environment in `dir` (none yet for a new one).
    pub fn load(dir: &StateDir) -> anyhow::Result<Self> {
        let file = dir.path().join("ports.json");
        let ports = match std::fs::read_to_string(&file) {
            Ok(text) => serde_json::from_str(&text)
                .with_context(|| format!("{} is damaged", file.display()))?,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(err) => return Err(err).context(format!("reading {}", file.display())),
        };
        Ok(Self { file, ports })
    }

    /// `component`'s port: the recorded one while it is free, else a new one, recorded.
    pub fn port(&mut self, component: &str) -> anyhow::Result<u16> {
        if let Some(port) = self.ports.get(component).copied().filter(|p| is_free(*p)) {
            return Ok(port);
        }
        let taken: Vec<u16> = self.ports.values().copied().collect();
        let port = pick(&taken)?;
        self.ports.insert(component.to_owned(), port);
        let temporary = self.file.with_extension("json.tmp");
        std::fs::write(&temporary, serde_json::to_vec_pretty(&self.ports)?)?;
        std::fs::rename(&temporary, &self.file)
            .with_context(|| format!("recording ports in {}", self.file.display()))?;
        Ok(port)
    }
}

fn is_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// A free port in `RANGE` not among `taken` (the environment's others, which may be
/// down right now); the kernel's choice if the range seems full.
fn pick(taken: &[u16]) -> anyhow::Result<u16> {
    let span = u32::from(RANGE.end - RANGE.start);
    for _ in 0..64 {
        let offset = uuid::Uuid::new_v4().as_u128() as u32 % span;
        let port = RANGE.start + offset as u16;
        if !taken.contains(&port) && is_free(port) {
            return Ok(port);
        }
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// The storefront's cart-signing key for the environment in `dir`: generated once (64
/// random bytes, base64) and kept private (0600) beside its state.
pub fn cart_signing_key(dir: &StateDir) -> anyhow::Result<String> {
    kept_secret(dir, "cart-signing-key")
}

/// ml's retrain token for the environment in `dir`, kept like the cart-signing key.
pub fn ml_retrain_token(dir: &StateDir) -> anyhow::Result<String> {
    kept_secret(dir, "ml-retrain-token")
}

/// 64 random bytes, base64, made once and kept private (0600) in `dir` as `name`.
fn kept_secret(dir: &StateDir, name: &str) -> anyhow::Result<String> {
    let file = dir.path().join(name);
    match std::fs::read_to_string(&file) {
        Ok(key) if !key.trim().is_empty() => return Ok(key.trim().to_owned()),
        Ok(_) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(err).context(format!("reading {}", file.display())),
    }
    let random: Vec<u8> = (0..4)
        .flat_map(|_| uuid::Uuid::new_v4().into_bytes())
        .collect();
    let key = base64::engine::general_purpose::STANDARD.encode(random);
    crate::private::write(&file, key.as_bytes())
        .with_context(|| format!("keeping the {name} in {}", file.display()))?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch() -> (tempfile::TempDir, StateDir) {
        let root = tempfile::tempdir().unwrap();
        let dir = StateDir {
            root: root.path().to_path_buf(),
        };
        (root, dir)
    }

    #[test]
    fn a_port_is_kept_while_free_and_replaced_once_taken() {
        let (_root, dir) = scratch();
        let first = Ports::load(&dir).unwrap().port("frontend").unwrap();
        assert!(RANGE.contains(&first));
        let mut again = Ports::load(&dir).unwrap();
        assert_eq!(again.port("frontend").unwrap(), first, "recorded");
        let backend = again.port("backend").unwrap();
        assert_ne!(backend, first, "each component its own");

        let squatter = std::net::TcpListener::bind(("127.0.0.1", first)).unwrap();
        let moved = Ports::load(&dir).unwrap().port("frontend").unwrap();
        assert_ne!(moved, first, "a taken port is replaced");
        drop(squatter);
        assert_eq!(Ports::load(&dir).unwrap().port("frontend").unwrap(), moved);
    }

    #[test]
    fn the_cart_key_is_made_once_long_enough_and_private() {
        use std::os::unix::fs::PermissionsExt;
        let (_root, dir) = scratch();
        let key = cart_signing_key(&dir).unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&key)
            .unwrap();
        assert_eq!(bytes.len(), 64, "what the frontend requires");
        assert_eq!(cart_signing_key(&dir).unwrap(), key, "kept");
        let mode = std::fs::metadata(dir.path().join("cart-signing-key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_ne!(ml_retrain_token(&dir).unwrap(), key, "each secret its own");
    }
}
