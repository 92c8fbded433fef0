//! Who is shopping: a random session id in a signed cookie, made with the first cart.
//! The idempotency key a checkout form carries is scoped to it before it reaches the
//! backend, so a key someone else has seen (a shared screenshot, a proxy's log) placed
//! from another session is another order, never a replay into this shopper's.

use axum_extra::extract::SignedCookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use sha2::{Digest, Sha256};
use uuid::Uuid;

pub const COOKIE_NAME: &str = "session";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session(Uuid);

impl Session {
    /// The session in the request's signed cookie; none when absent or forged.
    pub fn from_jar(jar: &SignedCookieJar) -> Option<Self> {
        jar.get(COOKIE_NAME)
            .and_then(|cookie| Uuid::try_parse(cookie.value()).ok())
            .map(Self)
    }

    /// The jar with a session in it: the request's own, or a new one.
    pub fn ensure(jar: SignedCookieJar, secure: bool) -> SignedCookieJar {
        if Self::from_jar(&jar).is_some() {
            return jar;
        }
        let cookie = Cookie::build((COOKIE_NAME, Uuid::new_v4().to_string()))
            .path("/")
            .http_only(true)
            .secure(secure)
            .same_site(SameSite::Lax)
            .build();
        jar.add(cookie)
    }

    /// The key the backend sees for a checkout form's key: the same form key from
    /// this session always maps to the same backend key, from any other session never.
    pub fn scoped_key(&self, form_key: &Uuid) -> String {
        let digest = Sha256::digest(format!("{}:{}", self.0, form_key));
        format!("sf-{digest:x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_key_is_scoped_to_its_session() {
        let form_key = Uuid::new_v4();
        let (mine, theirs) = (Session(Uuid::new_v4()), Session(Uuid::new_v4()));
        assert_eq!(mine.scoped_key(&form_key), mine.scoped_key(&form_key));
        assert_ne!(mine.scoped_key(&form_key), theirs.scoped_key(&form_key));
        assert_ne!(mine.scoped_key(&form_key), mine.scoped_key(&Uuid::new_v4()));
        // The backend accepts 1 to 255 visible ASCII characters.
        let key = mine.scoped_key(&form_key);
        assert!(key.len() <= 255 && key.bytes().all(|b| b.is_ascii_graphic()));
    }
}
