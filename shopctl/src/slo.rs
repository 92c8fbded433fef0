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

    /// The alerts fire at the thresholds these constants hold, so a canary is judged by
    /// the same numbers that page someone.
    #[test]
    fn the_alert_rules_use_these_thresholds() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../templates/observability/rules/alerts.yaml"
        );
        let rules: serde_json::Value =
            serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let expr = |alert: &str| -> String {
            rules["groups"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|g| g["rules"].as_array().unwrap())
                .find(|r| r["alert"] == alert)
                .unwrap_or_else(|| panic!("no alert {alert}"))["expr"]
                .as_str()
                .unwrap()
                .trim()
                .to_owned()
        };
        let budget = format!("{:.3}", 1.0 - AVAILABILITY);
        assert!(
            expr("HighErrorRate").ends_with(&format!("> {ERROR_RATE}")),
            "{}",
            expr("HighErrorRate")
        );
        assert!(
            expr("ProductReadLatencyHigh")
                .ends_with(&format!("> {}", PRODUCT_READ_P95.as_secs_f64())),
            "{}",
            expr("ProductReadLatencyHigh")
        );
        for burn in ["ApiErrorBudgetFastBurn", "ApiErrorBudgetSlowBurn"] {
            assert!(
                expr(burn).contains(&format!(" * {budget})")),
                "{burn} burns a budget other than {budget}: {}",
                expr(burn)
            );
        }
    }
}
