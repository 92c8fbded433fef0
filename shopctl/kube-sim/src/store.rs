//! The object store: what etcd plus the generic registry do upstream. One global
//! resourceVersion counter, a log of every change for watches, metadata bookkeeping,
//! optimistic concurrency, validation, and garbage collection through owner references.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Value, json};
use tokio::sync::{Notify, broadcast};

use crate::error::ApiError;
use crate::fields;
use crate::resources::{self, ResourceType};
use crate::selectors::{FieldSelector, LabelSelector};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    resource: String,
    namespace: String,
    name: String,
}

impl Key {
    fn new(rt: &ResourceType, namespace: &str, name: &str) -> Self {
        Self {
            resource: rt.qualified(),
            namespace: if rt.namespaced {
                namespace.to_string()
            } else {
                String::new()
            },
            name: name.to_string(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct WatchEvent {
    pub revision: u64,
    pub resource: &'static ResourceType,
    pub kind: &'static str,
    pub object: Value,
}

/// What a write may do.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    pub dry_run: bool,
    pub field_manager: String,
    pub force: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Main,
    Status,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    Background,
    Foreground,
    Orphan,
}

#[derive(Debug, Clone, Copy)]
pub enum PatchKind {
    Merge,
    Json,
    /// Treated as a merge patch: shopctl and kubectl's rollout commands only patch maps.
    Strategic,
    Apply,
}

struct Inner {
    objects: BTreeMap<Key, Value>,
    revision: u64,
    /// The revision of the newest change to each resource type (`clusterroles.rbac…`).
    changed_at: BTreeMap<String, u64>,
    log: Vec<WatchEvent>,
    /// Revisions at or below this were compacted away (a watch from them gets 410 Gone).
    compacted: u64,
}

#[derive(Clone)]
pub struct Store {
    inner: Arc<Mutex<Inner>>,
    events: broadcast::Sender<WatchEvent>,
    /// Wakes the controllers after every committed change.
    pub changed: Arc<Notify>,
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn random_suffix(len: usize) -> String {
    // Upstream generateName alphabet: consonants and digits without look-alikes.
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    uuid::Uuid::new_v4()
        .as_bytes()
        .iter()
        .take(len)
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

fn is_dns_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// RBAC objects are named by upstream's `ValidatePathSegmentName`: anything that can
/// be one URL path segment (so `system:basic-user` is fine).
fn is_path_segment_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '%'])
}

/// What the registry does to an object before storing it. Secrets: `stringData` is a
/// write-only convenience merged into `data` (base64), as upstream's Secret strategy does.
fn normalise(object: &mut Value) {
    if object["kind"] == "Secret"
        && let Some(Value::Object(plain)) =
            object.as_object_mut().and_then(|o| o.remove("stringData"))
    {
        use base64::Engine;
        for (key, value) in plain {
            let encoded = base64::engine::general_purpose::STANDARD
                .encode(value.as_str().unwrap_or_default());
            object["data"][key] = json!(encoded);
        }
    }
}

/// Everything but metadata and status: what bumps `metadata.generation`.
fn spec_of(object: &Value) -> Value {
    let mut spec = object.clone();
    if let Some(map) = spec.as_object_mut() {
        map.remove("metadata");
        map.remove("status");
    }
    spec
}

/// An object as compared for "did anything change": managedFields timestamps excluded.
fn comparable(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(entries) = object["metadata"]["managedFields"].as_array_mut() {
        for entry in entries {
            if let Some(map) = entry.as_object_mut() {
                map.remove("time");
            }
        }
    }
    object
}

impl Store {
    pub fn new() -> Self {
        let (events, _) = broadcast::channel(4096);
        Self {
            inner: Arc::new(Mutex::new(Inner {
                objects: BTreeMap::new(),
                revision: 1,
                changed_at: BTreeMap::new(),
                log: Vec::new(),
                compacted: 0,
            })),
            events,
            changed: Arc::new(Notify::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The revision of the newest change to objects of `rt` (0: none yet), so a reader can
    /// tell cheaply whether anything of a kind changed.
    pub fn changed_at(&self, rt: &ResourceType) -> u64 {
        self.lock()
            .changed_at
            .get(&rt.qualified())
            .copied()
            .unwrap_or(0)
    }

    pub fn revision(&self) -> u64 {
        self.lock().revision
    }

    fn commit(
        &self,
        inner: &mut Inner,
        rt: &'static ResourceType,
        kind: &'static str,
        mut object: Value,
    ) -> Value {
        inner.revision += 1;
        let revision = inner.revision;
        object["metadata"]["resourceVersion"] = json!(revision.to_string());
        let key = Key::new(
            rt,
            object["metadata"]["namespace"].as_str().unwrap_or(""),
            object["metadata"]["name"].as_str().unwrap_or(""),
        );
        inner.changed_at.insert(key.resource.clone(), revision);
        if kind == "DELETED" {
            inner.objects.remove(&key);
        } else {
            inner.objects.insert(key, object.clone());
        }
        let event = WatchEvent {
            revision,
            resource: rt,
            kind,
            object: object.clone(),
        };
        inner.log.push(event.clone());
        let _ = self.events.send(event);
        self.changed.notify_one();
        object
    }

    pub fn get(
        &self,
        rt: &'static ResourceType,
        namespace: &str,
        name: &str,
    ) -> Result<Value, ApiError> {
        self.lock()
            .objects
            .get(&Key::new(rt, namespace, name))
            .cloned()
            .ok_or_else(|| ApiError::not_found(rt, name))
    }

    /// Objects of a type, in one namespace or all; the revision the list is consistent at.
    pub fn list(
        &self,
        rt: &'static ResourceType,
        namespace: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
    ) -> (Vec<Value>, u64) {
        let inner = self.lock();
        let resource = rt.qualified();
        // Keys sort by resource, then namespace: one range, not a scan of everything.
        let first = Key {
            resource: resource.clone(),
            namespace: namespace.unwrap_or("").to_string(),
            name: String::new(),
        };
        let items = inner
            .objects
            .range(first..)
            .take_while(|(key, _)| {
                key.resource == resource && namespace.is_none_or(|ns| key.namespace == ns)
            })
            .map(|(_, object)| object)
            .filter(|object| labels.matches(object["metadata"].get("labels")))
            .filter(|object| fields.matches(object))
            .cloned()
            .collect();
        (items, inner.revision)
    }

    /// The changes after `revision` (for a watch) and a receiver for the ones to come,
    /// taken under one lock so nothing falls between them.
    pub fn watch_from(
        &self,
        revision: Option<u64>,
    ) -> Result<(Vec<WatchEvent>, broadcast::Receiver<WatchEvent>), ApiError> {
        let inner = self.lock();
        let receiver = self.events.subscribe();
        let backlog = match revision {
            Some(rv) if rv < inner.compacted => {
                return Err(ApiError::gone(format!(
                    "too old resource version: {rv} ({})",
                    inner.compacted
                )));
            }
            Some(rv) => inner
                .log
                .iter()
                .filter(|e| e.revision > rv)
                .cloned()
                .collect(),
            None => Vec::new(),
        };
        Ok((backlog, receiver))
    }

    /// Forgets the change log, as etcd compaction does: older watches must relist.
    pub fn compact(&self) {
        let mut inner = self.lock();
        inner.compacted = inner.revision;
        inner.log.clear();
    }

    fn validate(
        &self,
        inner: &Inner,
        rt: &'static ResourceType,
        namespace: &str,
        object: &Value,
        live: Option<&Value>,
    ) -> Result<(), ApiError> {
        let name = object["metadata"]["name"].as_str().unwrap_or("");
        if rt.group == "rbac.authorization.k8s.io" {
            if !is_path_segment_name(name) {
                return Err(ApiError::invalid(
                    rt,
                    name,
                    "metadata.name",
                    "may not be '.' or '..' and may not contain '/' or '%'",
                ));
            }
        } else if !is_dns_subdomain(name) {
            return Err(ApiError::invalid(
                rt,
                name,
                "metadata.name",
                "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
            ));
        }
        if rt.namespaced
            && !inner.objects.contains_key(&Key::new(
                resources::lookup("", "Namespace"),
                "",
                namespace,
            ))
        {
            return Err(ApiError::namespace_not_found(namespace));
        }
        if rt.group == "apps" {
            let selector = &object["spec"]["selector"];
            if !selector.is_object() {
                return Err(ApiError::invalid(
                    rt,
                    name,
                    "spec.selector",
                    "Required value",
                ));
            }
            let parsed = LabelSelector::from_object(selector)
                .map_err(|e| ApiError::invalid(rt, name, "spec.selector", &e))?;
            if parsed.is_empty()
                || !parsed.matches(object["spec"]["template"]["metadata"].get("labels"))
            {
                return Err(ApiError::invalid(
                    rt,
                    name,
                    "spec.template.metadata.labels",
                    "Invalid value: `selector` does not match template `labels`",
                ));
            }
            // Upstream: "spec.selector: field is immutable" for apps/v1 workloads.
            if let Some(live) = live
                && live["spec"]["selector"] != *selector
            {
                return Err(ApiError::invalid(
                    rt,
                    name,
                    "spec.selector",
                    "field is immutable",
                ));
            }
        }
        Ok(())
    }

    pub fn create(
        &self,
        rt: &'static ResourceType,
        namespace: &str,
        mut object: Value,
        options: &WriteOptions,
    ) -> Result<Value, ApiError> {
        let mut inner = self.lock();
        if object["apiVersion"].as_str() != Some(&rt.api_version())
            || object["kind"].as_str() != Some(rt.kind)
        {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({}) does not match the expected API version ({})",
                object["apiVersion"],
                rt.api_version()
            )));
        }
        if !object["metadata"].is_object() {
            object["metadata"] = json!({});
        }
        if object["metadata"]["name"].as_str().unwrap_or("").is_empty()
            && let Some(prefix) = object["metadata"]["generateName"].as_str()
        {
            object["metadata"]["name"] = json!(format!("{prefix}{}", random_suffix(5)));
        }
        if rt.namespaced {
            match object["metadata"]["namespace"].as_str() {
                Some(ns) if ns != namespace => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                _ => object["metadata"]["namespace"] = json!(namespace),
            }
        }
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or("")
            .to_string();
        self.validate(&inner, rt, namespace, &object, None)?;
        if inner.objects.contains_key(&Key::new(rt, namespace, &name)) {
            return Err(ApiError::already_exists(rt, &name));
        }
        self.initialise(rt, &mut object);
        normalise(&mut object);
        let now = now();
        fields::record_update(None, &mut object, &options.field_manager, rt, &now);
        if options.dry_run {
            return Ok(object);
        }
        let created = self.commit(&mut inner, rt, "ADDED", object);
        // The garbage collector deletes a dependent whose owners are all gone, however it
        // came to exist: a controller working from a list taken before the owner's delete
        // (upstream or here) creates one, and it must not linger as a live pod.
        if Self::owners_all_gone(&inner, &created) {
            self.commit(&mut inner, rt, "DELETED", created.clone());
        }
        Ok(created)
    }

    /// Whether `object` names owners and none of them exists any more.
    fn owners_all_gone(inner: &Inner, object: &Value) -> bool {
        let owners = owner_uids(object);
        !owners.is_empty()
            && !inner.objects.values().any(|o| {
                o["metadata"]["uid"]
                    .as_str()
                    .is_some_and(|uid| owners.iter().any(|owner| owner == uid))
            })
    }

    fn initialise(&self, rt: &ResourceType, object: &mut Value) {
        let metadata = &mut object["metadata"];
        metadata["uid"] = json!(uuid::Uuid::new_v4().to_string());
        metadata["creationTimestamp"] = json!(now());
        if let Some(map) = metadata.as_object_mut() {
            map.remove("resourceVersion");
            map.remove("managedFields");
        }
        if rt.has_generation() {
            object["metadata"]["generation"] = json!(1);
        }
        if rt.status && object.get("status").is_none() && rt.kind != "Namespace" {
            object["status"] = json!({});
        }
        if rt.kind == "Namespace" {
            object["status"] = json!({"phase": "Active"});
            object["metadata"]["labels"]["kubernetes.io/metadata.name"] =
                object["metadata"]["name"].clone();
        }
    }

    /// PUT: replace the object (or its status), keeping identity and, for kinds with a
    /// status subresource, the part the caller did not address.
    pub fn update(
        &self,
        rt: &'static ResourceType,
        namespace: &str,
        name: &str,
        object: Value,
        part: Part,
        options: &WriteOptions,
    ) -> Result<Value, ApiError> {
        let mut inner = self.lock();
        let live = inner
            .objects
            .get(&Key::new(rt, namespace, name))
            .cloned()
            .ok_or_else(|| ApiError::not_found(rt, name))?;
        if let Some(expected) = object["metadata"]["resourceVersion"].as_str()
            && Some(expected) != live["metadata"]["resourceVersion"].as_str()
        {
            return Err(ApiError::stale(rt, name));
        }
        if object["metadata"]["name"]
            .as_str()
            .is_some_and(|n| n != name)
        {
            return Err(ApiError::bad_request(
                "the name of the object does not match the name on the URL",
            ));
        }
        self.store_update(&mut inner, rt, namespace, live, object, part, options)
    }

    #[allow(clippy::too_many_arguments)] // reason: one private funnel for PUT and PATCH
    fn store_update(
        &self,
        inner: &mut Inner,
        rt: &'static ResourceType,
        namespace: &str,
        live: Value,
        proposed: Value,
        part: Part,
        options: &WriteOptions,
    ) -> Result<Value, ApiError> {
        let name = live["metadata"]["name"].as_str().unwrap_or("").to_string();
        let mut next = match part {
            Part::Status => {
                let mut next = live.clone();
                next["status"] = proposed.get("status").cloned().unwrap_or(json!({}));
                next
            }
            Part::Main => {
                let mut next = proposed;
                if rt.status {
                    next["status"] = live.get("status").cloned().unwrap_or(json!({}));
                }
                next
            }
        };
        next["apiVersion"] = json!(rt.api_version());
        next["kind"] = json!(rt.kind);
        for field in [
            "uid",
            "creationTimestamp",
            "generation",
            "resourceVersion",
            "namespace",
            "name",
            "deletionTimestamp",
        ] {
            match live["metadata"].get(field) {
                Some(value) => next["metadata"][field] = value.clone(),
                None => {
                    if let Some(map) = next["metadata"].as_object_mut() {
                        map.remove(field);
                    }
                }
            }
        }
        if next["metadata"]
            .get("managedFields")
            .is_none_or(|m| m.is_null())
        {
            next["metadata"]["managedFields"] = live["metadata"]["managedFields"].clone();
        }
        normalise(&mut next);
        self.validate(inner, rt, namespace, &next, Some(&live))?;
        if rt.has_generation() && spec_of(&next) != spec_of(&live) {
            let generation = live["metadata"]["generation"].as_i64().unwrap_or(1);
            next["metadata"]["generation"] = json!(generation + 1);
        }
        if let Some(map) = next["metadata"].as_object_mut()
            && map.get("managedFields").is_some_and(Value::is_null)
        {
            map.remove("managedFields");
        }
        if comparable(&next) == comparable(&live) {
            // Upstream does not persist no-op writes: the resourceVersion stays.
            return Ok(live);
        }
        if options.dry_run {
            return Ok(next);
        }
        let _ = name;
        Ok(self.commit(inner, rt, "MODIFIED", next))
    }

    #[allow(clippy::too_many_arguments)] // reason: one argument per part of a PATCH request
    pub fn patch(
        &self,
        rt: &'static ResourceType,
        namespace: &str,
        name: &str,
        kind: PatchKind,
        body: &Value,
        part: Part,
        options: &WriteOptions,
    ) -> Result<Value, ApiError> {
        let mut inner = self.lock();
        let live = inner.objects.get(&Key::new(rt, namespace, name)).cloned();
        let now = now();
        match kind {
            PatchKind::Apply => {
                if options.field_manager.is_empty() {
                    return Err(ApiError::bad_request(
                        "PATCH requests with apply content type must set fieldManager",
                    ));
                }
                if body["metadata"]["name"].as_str() != Some(name) {
                    return Err(ApiError::bad_request(
                        "the name of the object does not match the name on the URL",
                    ));
                }
                if let Some(expected) = body["metadata"]["resourceVersion"].as_str()
                    && live
                        .as_ref()
                        .and_then(|l| l["metadata"]["resourceVersion"].as_str())
                        != Some(expected)
                {
                    return Err(ApiError::stale(rt, name));
                }
                let mut config = body.clone();
                if rt.namespaced {
                    config["metadata"]["namespace"] = json!(namespace);
                }
                let merged = fields::apply(
                    live.as_ref(),
                    &config,
                    &options.field_manager,
                    options.force,
                    rt,
                    &now,
                )
                .map_err(|conflicts| ApiError::apply_conflicts(rt, name, &conflicts))?;
                match live {
                    None => {
                        let mut created = merged;
                        created["metadata"]["name"] = json!(name);
                        if rt.namespaced {
                            created["metadata"]["namespace"] = json!(namespace);
                        }
                        let managed = created["metadata"]["managedFields"].clone();
                        self.validate(&inner, rt, namespace, &created, None)?;
                        if inner.objects.contains_key(&Key::new(rt, namespace, name)) {
                            return Err(ApiError::already_exists(rt, name));
                        }
                        self.initialise(rt, &mut created);
                        normalise(&mut created);
                        created["metadata"]["managedFields"] = managed;
                        if options.dry_run {
                            return Ok(created);
                        }
                        Ok(self.commit(&mut inner, rt, "ADDED", created))
                    }
                    Some(live) => {
                        self.store_update(&mut inner, rt, namespace, live, merged, part, options)
                    }
                }
            }
            _ => {
                let live = live.ok_or_else(|| ApiError::not_found(rt, name))?;
                let mut next = live.clone();
                match kind {
                    PatchKind::Json => {
                        let patch: json_patch::Patch = serde_json::from_value(body.clone())
                            .map_err(|e| {
                                ApiError::bad_request(format!("invalid JSON patch: {e}"))
                            })?;
                        json_patch::patch(&mut next, &patch)
                            .map_err(|e| ApiError::invalid(rt, name, "patch", &e.to_string()))?;
                    }
                    _ => json_patch::merge(&mut next, body),
                }
                if let Some(expected) = body["metadata"]["resourceVersion"].as_str()
                    && live["metadata"]["resourceVersion"].as_str() != Some(expected)
                {
                    return Err(ApiError::stale(rt, name));
                }
                fields::record_update(Some(&live), &mut next, &options.field_manager, rt, &now);
                self.store_update(&mut inner, rt, namespace, live, next, part, options)
            }
        }
    }

    pub fn delete(
        &self,
        rt: &'static ResourceType,
        namespace: &str,
        name: &str,
        propagation: Propagation,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let mut inner = self.lock();
        let live = inner
            .objects
            .get(&Key::new(rt, namespace, name))
            .cloned()
            .ok_or_else(|| ApiError::not_found(rt, name))?;
        if dry_run {
            return Ok(live);
        }
        let uid = live["metadata"]["uid"].as_str().unwrap_or("").to_string();
        if propagation == Propagation::Orphan {
            self.orphan_dependents(&mut inner, &uid);
        }
        let deleted = self.commit(&mut inner, rt, "DELETED", live);
        if rt.kind == "Namespace" {
            // The namespace controller deletes everything inside.
            let inside: Vec<(Key, Value)> = inner
                .objects
                .iter()
                .filter(|(k, _)| k.namespace == name)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            for (key, object) in inside {
                let rt = resources::RESOURCES
                    .iter()
                    .find(|r| r.qualified() == key.resource)
                    .expect("stored kinds are served");
                self.commit(&mut inner, rt, "DELETED", object);
            }
        }
        if propagation != Propagation::Orphan {
            self.collect_garbage(&mut inner);
        }
        Ok(deleted)
    }

    fn orphan_dependents(&self, inner: &mut Inner, uid: &str) {
        let dependents: Vec<(Key, Value)> = inner
            .objects
            .iter()
            .filter(|(_, o)| owner_uids(o).iter().any(|u| u == uid))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (key, mut object) in dependents {
            if let Some(refs) = object["metadata"]["ownerReferences"].as_array_mut() {
                refs.retain(|r| r["uid"].as_str() != Some(uid));
            }
            let rt = resources::RESOURCES
                .iter()
                .find(|r| r.qualified() == key.resource)
                .expect("stored kinds are served");
            self.commit(inner, rt, "MODIFIED", object);
        }
    }

    /// The garbage collector: an object whose owners are all gone is deleted, repeatedly,
    /// so deletion cascades through ReplicaSets to Pods.
    fn collect_garbage(&self, inner: &mut Inner) {
        loop {
            let uids: std::collections::HashSet<String> = inner
                .objects
                .values()
                .filter_map(|o| o["metadata"]["uid"].as_str().map(str::to_string))
                .collect();
            let orphans: Vec<(Key, Value)> = inner
                .objects
                .iter()
                .filter(|(_, o)| {
                    let owners = owner_uids(o);
                    !owners.is_empty() && owners.iter().all(|u| !uids.contains(u))
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if orphans.is_empty() {
                return;
            }
            for (key, object) in orphans {
                let rt = resources::RESOURCES
                    .iter()
                    .find(|r| r.qualified() == key.resource)
                    .expect("stored kinds are served");
                self.commit(inner, rt, "DELETED", object);
            }
        }
    }
}

pub fn owner_uids(object: &Value) -> Vec<String> {
    object["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["uid"].as_str().map(str::to_string))
        .collect()
}
