//! Which backups to keep: the newest of each of the last N days that have backups, the
//! newest of each of the last M weeks, the newest overall, and never the newest verified.

use std::collections::BTreeSet;

use chrono::Datelike;

use super::manifest::Manifest;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub keep: Vec<String>,
    pub delete: Vec<String>,
}

pub fn plan(backups: &[Manifest], keep_daily: usize, keep_weekly: usize) -> Plan {
    let mut newest_first: Vec<&Manifest> = backups.iter().collect();
    newest_first.sort_by_key(|b| std::cmp::Reverse(b.created_at));
    let mut keep = BTreeSet::new();
    let mut days = BTreeSet::new();
    let mut weeks = BTreeSet::new();
    for backup in &newest_first {
        let day = backup.created_at.date_naive();
        if days.len() < keep_daily && days.insert(day) {
            keep.insert(backup.id.clone());
        }
        let week = (
            backup.created_at.iso_week().year(),
            backup.created_at.iso_week().week(),
        );
        if weeks.len() < keep_weekly && weeks.insert(week) {
            keep.insert(backup.id.clone());
        }
    }
    if let Some(newest) = newest_first.first() {
        keep.insert(newest.id.clone());
    }
    if let Some(verified) = newest_first
        .iter()
        .find(|b| b.verification.as_ref().is_some_and(|v| v.ok))
    {
        keep.insert(verified.id.clone());
    }
    let (kept, deleted): (Vec<&&Manifest>, Vec<&&Manifest>) =
        newest_first.iter().partition(|b| keep.contains(&b.id));
    Plan {
        keep: kept.into_iter().map(|b| b.id.clone()).collect(),
        delete: deleted.into_iter().map(|b| b.id.clone()).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::Verification;
    use chrono::{TimeZone, Utc};

    fn backup(id: &str, day: u32, hour: u32, verified: bool) -> Manifest {
        Manifest {
            id: id.to_owned(),
            created_at: Utc.with_ymd_and_hms(2026, 11, day, hour, 0, 0).unwrap(),
            source: String::new(),
            server_version: String::new(),
            schema_version: None,
            format: String::new(),
            size_bytes: 0,
            sha256: String::new(),
            tables: Default::default(),
            verification: verified.then(|| Verification {
                at: Utc::now(),
                ok: true,
                restore_millis: 1,
                detail: String::new(),
                scratch_database: String::new(),
            }),
        }
    }

    #[test]
    fn keeps_the_newest_per_day_and_week_and_deletes_the_rest() {
        // Nov 2026: the 9th and 16th are Mondays. Two backups a day on the 24th..26th,
        // one on the 10th and one on the 2nd.
        let backups = vec![
            backup("26-pm", 26, 20, false),
            backup("26-am", 26, 8, false),
            backup("25-pm", 25, 20, false),
            backup("25-am", 25, 8, false),
            backup("24-pm", 24, 20, false),
            backup("10", 10, 8, false),
            backup("02", 2, 8, false),
        ];
        let plan = plan(&backups, 2, 3);
        assert_eq!(plan.keep, vec!["26-pm", "25-pm", "10", "02"]);
        assert_eq!(plan.delete, vec!["26-am", "25-am", "24-pm"]);
    }

    #[test]
    fn never_deletes_the_newest_verified_backup() {
        let backups = vec![
            backup("new", 26, 20, false),
            backup("old-verified", 1, 8, true),
            backup("older", 1, 6, false),
        ];
        let plan = plan(&backups, 1, 0);
        assert_eq!(plan.keep, vec!["new", "old-verified"]);
        assert_eq!(plan.delete, vec!["older"]);
    }

    #[test]
    fn keeps_the_newest_even_with_zero_retention() {
        let plan = plan(&[backup("only", 26, 1, false)], 0, 0);
        assert_eq!(plan.keep, vec!["only"]);
    }
}
