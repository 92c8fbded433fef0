//! Moving the running platform to another release (`up` with a change, `rollback`)
//! without a failed request: the release's migrations first (expand before contract, as a
//! cluster's init container runs them before the new pods), then each service handed over
//! to the release's binary and settings, in dependency order. A service that does not take
//! over stops the switch, and those already switched are handed back: the platform ends
//! on one release, never a mix.

use std::collections::BTreeSet;

use super::handover;
use super::lifecycle::Running;
use super::services::Services;
use super::shared::Shared;
use crate::local::binaries::SERVICES;
use crate::local::release::ReleaseStore;

/// Hands every service in `running` over to release `revision`.
pub(super) async fn switch(
    shared: &Shared,
    services: &Services,
    running: &mut Running,
    paused: &BTreeSet<&'static str>,
    revision: u32,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        paused.is_empty(),
        "{} paused (a restore is under way): switch releases after it",
        paused.iter().copied().collect::<Vec<_>>().join(", ")
    );
    let old_revision = shared.read(|state| state.revision);
    let store = ReleaseStore::new(shared.dir().path());
    let release = store.get(revision)?;
    let binaries = store.binaries(revision);
    services.migrate(&binaries).await?;

    let mut switched = Vec::new();
    for name in SERVICES {
        let Some((spec, child)) = running.iter_mut().find(|(spec, _)| spec.name == name) else {
            continue;
        };
        let next = services.spec(name, &binaries, &release.contents.config);
        if let Err(err) = handover::replace(shared, &next, child).await {
            hand_back(shared, running, &switched).await;
            let old = old_revision.map_or("the old release".into(), |r| format!("revision {r}"));
            return Err(err.context(format!(
                "{name} of release {revision} did not take over; {old} keeps serving"
            )));
        }
        switched.push((name, std::mem::replace(spec, next)));
    }
    shared.update(|state| state.revision = Some(revision));
    Ok(())
}

/// Hands the services in `switched` back to the specs they had, last switched first.
async fn hand_back(shared: &Shared, running: &mut Running, switched: &[(&str, super::spec::Spec)]) {
    for (name, old) in switched.iter().rev() {
        let Some((spec, child)) = running.iter_mut().find(|(spec, _)| spec.name == *name) else {
            continue;
        };
        match handover::replace(shared, old, child).await {
            Ok(()) => *spec = old.clone(),
            Err(err) => eprintln!("handing {name} back failed: {err:#}; it runs the new release"),
        }
    }
}
