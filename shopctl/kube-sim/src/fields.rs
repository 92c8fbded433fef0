//! Field ownership and server-side apply.
//!
//! Upstream: <https://kubernetes.io/docs/reference/using-api/server-side-apply/>. Every
//! field has managers; an apply sets the fields in the applied configuration, takes
//! ownership of them, removes fields the manager owned before but no longer applies (when
//! nobody else owns them), and fails with a conflict when it would change a value that
//! another manager owns, unless forced. Plain updates take ownership of what they change
//! without conflicts.
//!
//! Simplification, stated honestly: lists are atomic (one field, as upstream treats lists
//! without `x-kubernetes-list-type: map`), so two managers cannot own different entries of
//! one `containers` list here. shopctl always applies whole objects, so it never relies on
//! per-entry ownership.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use crate::resources::ResourceType;

pub type Path = Vec<String>;
pub type FieldSet = BTreeSet<Path>;

/// A field owned by another manager whose value an apply would change.
#[derive(Debug, Clone)]
pub struct Conflict {
    pub manager: String,
    pub field: String,
}

/// One `metadata.managedFields` entry.
#[derive(Debug, Clone)]
pub struct ManagedEntry {
    pub manager: String,
    pub operation: String,
    pub api_version: String,
    pub time: String,
    pub fields: FieldSet,
}

/// Paths that are bookkeeping, not configuration: nobody owns them.
fn is_ignored(path: &[String], rt: &ResourceType) -> bool {
    match path.first().map(String::as_str) {
        Some("apiVersion" | "kind") => true,
        Some("status") => rt.status,
        Some("metadata") => matches!(
            path.get(1).map(String::as_str),
            Some(
                "name"
                    | "namespace"
                    | "uid"
                    | "resourceVersion"
                    | "generation"
                    | "creationTimestamp"
                    | "managedFields"
                    | "deletionTimestamp"
                    | "selfLink"
            )
        ),
        _ => false,
    }
}

/// The leaf fields an object sets: scalars, lists and empty maps.
pub fn leaf_paths(object: &Value, rt: &ResourceType) -> FieldSet {
    let mut out = FieldSet::new();
    collect(object, &mut Vec::new(), &mut out);
    out.retain(|path| !is_ignored(path, rt));
    out
}

fn collect(value: &Value, prefix: &mut Path, out: &mut FieldSet) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, child) in map {
                prefix.push(key.clone());
                collect(child, prefix, out);
                prefix.pop();
            }
        }
        _ if !prefix.is_empty() => {
            out.insert(prefix.clone());
        }
        _ => {}
    }
}

pub fn get_path<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, key| v.get(key))
}

fn set_path(value: &mut Value, path: &[String], new: Value) {
    let mut cursor = value;
    for key in &path[..path.len() - 1] {
        if !cursor.get(key).is_some_and(Value::is_object) {
            cursor[key] = Value::Object(Map::new());
        }
        cursor = &mut cursor[key];
    }
    cursor[&path[path.len() - 1]] = new;
}

/// Removes a field and any map left empty by its removal.
fn remove_path(value: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    if let Some(parent) = parents
        .iter()
        .try_fold(&mut *value, |v, key| v.get_mut(key))
        && let Some(map) = parent.as_object_mut()
    {
        map.remove(last);
        if map.is_empty() && !parents.is_empty() {
            remove_path(value, parents);
        }
    }
}

pub fn dotted(path: &[String]) -> String {
    path.iter().map(|p| format!(".{p}")).collect()
}

fn to_fields_v1(fields: &FieldSet) -> Value {
    let mut root = Value::Object(Map::new());
    for path in fields {
        let mut cursor = &mut root;
        for key in path {
            cursor = cursor
                .as_object_mut()
                .expect("fieldsV1 nodes are maps")
                .entry(format!("f:{key}"))
                .or_insert_with(|| Value::Object(Map::new()));
        }
    }
    root
}

fn from_fields_v1(tree: &Value, prefix: &mut Path, out: &mut FieldSet) {
    let Some(map) = tree.as_object() else { return };
    if map.is_empty() && !prefix.is_empty() {
        out.insert(prefix.clone());
    }
    for (key, child) in map {
        if let Some(name) = key.strip_prefix("f:") {
            prefix.push(name.to_string());
            from_fields_v1(child, prefix, out);
            prefix.pop();
        }
    }
}

pub fn read_managed(object: &Value) -> Vec<ManagedEntry> {
    object["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|entry| {
            let mut fields = FieldSet::new();
            from_fields_v1(&entry["fieldsV1"], &mut Vec::new(), &mut fields);
            ManagedEntry {
                manager: entry["manager"].as_str().unwrap_or_default().to_string(),
                operation: entry["operation"].as_str().unwrap_or("Update").to_string(),
                api_version: entry["apiVersion"].as_str().unwrap_or_default().to_string(),
                time: entry["time"].as_str().unwrap_or_default().to_string(),
                fields,
            }
        })
        .collect()
}

pub fn write_managed(object: &mut Value, entries: &[ManagedEntry]) {
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": to_fields_v1(&e.fields),
            })
        })
        .collect();
    object["metadata"]["managedFields"] = Value::Array(list);
}

/// Server-side apply of `config` by `manager` onto `live` (None: the object is new).
/// Returns the merged object with its managed fields, or the conflicts.
pub fn apply(
    live: Option<&Value>,
    config: &Value,
    manager: &str,
    force: bool,
    rt: &ResourceType,
    now: &str,
) -> Result<Value, Vec<Conflict>> {
    let applied = leaf_paths(config, rt);
    let mut entries = live.map(read_managed).unwrap_or_default();
    let mut merged = live.cloned().unwrap_or_else(
        || json!({"apiVersion": config["apiVersion"], "kind": config["kind"], "metadata": {}}),
    );

    let mut conflicts = Vec::new();
    for entry in entries.iter_mut().filter(|e| e.manager != manager) {
        let contested: Vec<Path> = entry
            .fields
            .iter()
            .filter(|path| applied.contains(*path))
            .filter(|path| get_path(&merged, path) != get_path(config, path))
            .cloned()
            .collect();
        if force {
            // Forcing moves the contested fields to the applier.
            for path in &contested {
                entry.fields.remove(path);
            }
        } else {
            conflicts.extend(contested.iter().map(|path| Conflict {
                manager: entry.manager.clone(),
                field: dotted(path),
            }));
        }
    }
    if !conflicts.is_empty() {
        return Err(conflicts);
    }

    let previously: FieldSet = entries
        .iter()
        .filter(|e| e.manager == manager && e.operation == "Apply")
        .flat_map(|e| e.fields.iter().cloned())
        .collect();
    for path in previously.difference(&applied) {
        let owned_elsewhere = entries
            .iter()
            .any(|e| e.manager != manager && e.fields.contains(path));
        if !owned_elsewhere {
            remove_path(&mut merged, path);
        }
    }
    for path in &applied {
        let value = get_path(config, path).cloned().unwrap_or(Value::Null);
        // Maps merge: applying `{}` claims the map, it does not empty it.
        let empty_map = value.as_object().is_some_and(Map::is_empty);
        if !(empty_map && get_path(&merged, path).is_some_and(Value::is_object)) {
            set_path(&mut merged, path, value);
        }
    }

    let entry = ManagedEntry {
        manager: manager.to_string(),
        operation: "Apply".into(),
        api_version: rt.api_version(),
        time: now.to_string(),
        fields: applied,
    };
    // Replaced in place: a no-op apply must leave managedFields exactly as they were.
    match entries
        .iter_mut()
        .find(|e| e.manager == manager && e.operation == "Apply")
    {
        Some(existing) => *existing = entry,
        None => entries.push(entry),
    }
    write_managed(&mut merged, &entries);
    Ok(merged)
}

/// Ownership after a plain update (PUT or a non-apply patch): the updater owns every field
/// whose value it changed, taking it from whoever owned it before.
pub fn record_update(
    before: Option<&Value>,
    after: &mut Value,
    manager: &str,
    rt: &ResourceType,
    now: &str,
) {
    let mut entries = before.map(read_managed).unwrap_or_default();
    let after_fields = leaf_paths(after, rt);
    let changed: FieldSet = match before {
        None => after_fields.clone(),
        Some(before) => {
            let before_fields = leaf_paths(before, rt);
            after_fields
                .iter()
                .filter(|p| get_path(before, p) != get_path(after, p))
                .cloned()
                .chain(before_fields.difference(&after_fields).cloned())
                .collect()
        }
    };
    for entry in entries.iter_mut() {
        entry
            .fields
            .retain(|p| !changed.contains(p) && after_fields.contains(p));
    }
    let gained: FieldSet = changed.intersection(&after_fields).cloned().collect();
    if !gained.is_empty() {
        match entries
            .iter_mut()
            .find(|e| e.manager == manager && e.operation == "Update")
        {
            Some(entry) => {
                entry.fields.extend(gained);
                entry.time = now.to_string();
            }
            None => entries.push(ManagedEntry {
                manager: manager.to_string(),
                operation: "Update".into(),
                api_version: rt.api_version(),
                time: now.to_string(),
                fields: gained,
            }),
        }
    }
    write_managed(after, &entries);
}

/// Managers and the fields they own, for tests and diagnostics.
pub fn owners(object: &Value) -> BTreeMap<String, Vec<String>> {
    read_managed(object)
        .into_iter()
        .map(|e| (e.manager, e.fields.iter().map(|p| dotted(p)).collect()))
        .collect()
}
