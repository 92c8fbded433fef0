//! The supervisor's view of the platform, shared by its tasks and written to
//! `state.json` after every change, so `status`, `validate` and the next `up` see it.

use std::sync::{Arc, Mutex};

use crate::local::process::ProcessId;
use crate::local::state::{Component, ComponentState, State, StateDir};

#[derive(Clone)]
pub(super) struct Shared {
    dir: StateDir,
    state: Arc<Mutex<State>>,
}

impl Shared {
    pub fn new(dir: StateDir, state: State) -> Self {
        Self {
            dir,
            state: Arc::new(Mutex::new(state)),
        }
    }

    pub fn dir(&self) -> &StateDir {
        &self.dir
    }

    /// Reads the state under the lock.
    pub fn read<R>(&self, look: impl FnOnce(&State) -> R) -> R {
        look(&self.state.lock().unwrap())
    }

    /// Changes the state under the lock and writes it out: the one way it changes. A
    /// failed write is not fatal: the next change writes the whole state again.
    pub fn update<R>(&self, change: impl FnOnce(&mut State) -> R) -> R {
        let mut state = self.state.lock().unwrap();
        let result = change(&mut state);
        let _ = self.dir.write(&state);
        result
    }

    /// Adds `component`, or replaces the record of the same name.
    pub fn record(&self, component: Component) {
        self.update(|state| match state.component_mut(&component.name) {
            Some(existing) => *existing = component,
            None => state.components.push(component),
        });
    }

    /// Moves `name` to `next`; a new process replaces the recorded one, and a paused
    /// component has none.
    pub fn set(&self, name: &str, next: ComponentState, process: Option<ProcessId>) {
        self.update(|state| {
            if let Some(component) = state.component_mut(name) {
                component.state = next;
                if process.is_some() || next == ComponentState::Paused {
                    component.process = process;
                }
            }
        });
    }

    /// Counts a crash of `name`, which is restarting.
    pub fn restarting(&self, name: &str) {
        self.update(|state| {
            if let Some(component) = state.component_mut(name) {
                component.state = ComponentState::Restarting;
                component.restarts += 1;
            }
        });
    }
}
