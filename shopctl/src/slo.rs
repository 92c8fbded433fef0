//! The platform's service-level objectives, in one place: `validate`'s SLO checks, `load`'s
//! verdict and a canary's analysis read them here, and a test holds them equal to the table in
//! `templates/observability/SLOS.md` (which the alert rules and runbooks follow).

use std::time::Duration;

/// API availability: the share of backend API requests that do not answer 5xx.
pub const AVAILABILITY: f64 = 0.999;

/// Product reads (listings and product pages): p95 latency under this.
pub const PRODUCT_READ_P95: Duration = Duration::from_millis(300);

/// A service's share of 5xx answers above which the `HighErrorRate` alert fires.
pub const ERROR_RATE: f64 = 0.05;

#[cfg(test)]
mod tests {
    use super::*;

    /// The objectives column of SLOS.md's table says what the constants say.
    #[test]
    fn the_objectives_are_the_ones_slos_md_declares() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../templates/observability/SLOS.md"
        );
        let text = std::fs::read_to_string(path).unwrap();
        let objective = |sli: &str| -> String {
            let row = text
                .lines()
                .find(|line| line.starts_with(&format!("| {sli} |")))
                .unwrap_or_else(|| panic!("SLOS.md has no row for {sli}"));
            row.split('|').map(str::trim).nth(3).unwrap().to_owned()
        };
        assert_eq!(
            objective("API availability"),
            format!("{:.1}%", AVAILABILITY * 100.0)
        );
        assert_eq!(
            objective("Product-read latency"),
            format!("p95 < {} ms", PRODUCT_READ_P95.as_millis())
        );
        assert_eq!(
            objective("Error rate"),
            format!("< {:.0}%", ERROR_RATE * 100.0)
        );
    }
}
