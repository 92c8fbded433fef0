//! The platform's PostgreSQL roles, which `templates/postgres/roles.sql` makes: their
//! names, derived from the database's, and their passwords, derived from the environment's
//! database secret (HMAC-SHA256 over the role's name). Nothing new has to be stored, and
//! each workload's Secret holds a password that opens only its own role; whoever has the
//! database secret is the superuser already.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::secrets::{SecretValue, encode_userinfo};

/// Where the setup script lives among the templates.
pub const SETUP_SCRIPT: &str = "postgres/roles.sql";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbRole {
    /// Owns the schema and runs the migrations; restores replace the schema as it.
    Owner,
    /// Reads and writes the shop's tables.
    Backend,
    /// Reads what it trains on.
    Ml,
    /// Reads everything for pg_dump, and makes scratch databases to verify restores.
    Backup,
}

impl DbRole {
    pub const ALL: [DbRole; 4] = [Self::Owner, Self::Backend, Self::Ml, Self::Backup];

    pub fn key(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Backend => "backend",
            Self::Ml => "ml",
            Self::Backup => "backup",
        }
    }

    /// The role's name in `database` (roles are per server; the prefix keeps databases
    /// sharing one apart).
    pub fn name(self, database: &str) -> String {
        format!("{database}_{}", self.key())
    }

    /// The variable the setup script reads the role's password from.
    pub fn password_variable(self) -> String {
        format!("SHOPMICRO_DB_{}_PASSWORD", self.key().to_uppercase())
    }

    pub fn password(self, database: &str, database_secret: &SecretValue) -> SecretValue {
        let mut mac = Hmac::<Sha256>::new_from_slice(database_secret.expose().as_bytes())
            .expect("HMAC takes keys of any length");
        mac.update(b"shopmicro database role ");
        mac.update(self.name(database).as_bytes());
        let digest = mac.finalize().into_bytes();
        SecretValue::new(digest.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// A connection URL for the role: `postgres://<role>:<password>@<host>/<database>`.
    pub fn url(self, host: &str, database: &str, database_secret: &SecretValue) -> SecretValue {
        SecretValue::new(format!(
            "postgres://{}:{}@{host}/{database}",
            encode_userinfo(&self.name(database)),
            self.password(database, database_secret).expose(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_differ_by_role_and_database_and_follow_the_secret() {
        let secret = SecretValue::new("s3cret".into());
        let owner = DbRole::Owner.password("shopmicro", &secret);
        assert_eq!(owner.expose().len(), 64);
        assert_eq!(owner, DbRole::Owner.password("shopmicro", &secret));
        assert_ne!(owner, DbRole::Backend.password("shopmicro", &secret));
        assert_ne!(owner, DbRole::Owner.password("other", &secret));
        assert_ne!(
            owner,
            DbRole::Owner.password("shopmicro", &SecretValue::new("rotated".into()))
        );
        assert!(!owner.expose().contains("s3cret"));
    }

    #[test]
    fn names_urls_and_variables() {
        let secret = SecretValue::new("x".into());
        assert_eq!(DbRole::Ml.name("shopmicro"), "shopmicro_ml");
        assert_eq!(
            DbRole::Backup.password_variable(),
            "SHOPMICRO_DB_BACKUP_PASSWORD"
        );
        let url = DbRole::Backend.url("postgres:5432", "shopmicro", &secret);
        assert!(
            url.expose().starts_with("postgres://shopmicro_backend:")
                && url.expose().ends_with("@postgres:5432/shopmicro"),
            "{url:?}"
        );
    }
}
