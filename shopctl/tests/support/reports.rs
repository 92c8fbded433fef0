//! Every JSON report a test makes shopctl print is checked against the schema shopctl
//! publishes for it (`shopctl schema <report>`). The check is stricter than the published
//! schema: a field the schema does not describe fails the test, so the schema documents
//! every field while consumers may still tolerate additions.

use std::collections::BTreeMap;
use std::sync::{LazyLock, Mutex};

use clap::ValueEnum;
use serde_json::Value;
use shopctl::reports::ReportKind;

/// Checks `stdout` when `args` asked a reporting command for JSON; anything else (a
/// refusal with empty output, a table) is the calling test's business.
pub fn check(args: &[&str], stdout: &str) {
    let Some(kind) = ReportKind::of_command(args) else {
        return;
    };
    let Ok(report) = serde_json::from_str::<Value>(stdout) else {
        return;
    };
    let name = kind.to_possible_value().expect("no report is hidden");
    if let Err(err) = conforms(name.get_name(), &report) {
        panic!("shopctl {args:?} printed a report its schema rejects: {err}\n{report:#}");
    }
}

/// Whether `report` satisfies the strict form of `shopctl schema <name>`.
pub fn conforms(name: &str, report: &Value) -> Result<(), String> {
    let schema = strict(published(name));
    let url = format!("urn:shopctl:schema:{name}");
    let mut schemas = boon::Schemas::new();
    let mut compiler = boon::Compiler::new();
    compiler
        .add_resource(&url, schema)
        .map_err(|e| e.to_string())?;
    let index = compiler
        .compile(&url, &mut schemas)
        .map_err(|e| format!("the schema does not compile: {e}"))?;
    schemas
        .validate(report, index)
        .map_err(|e| format!("{e:#}"))
}

/// What the binary prints for `shopctl schema <name>`, once per test process.
pub fn published(name: &str) -> Value {
    static SCHEMAS: LazyLock<Mutex<BTreeMap<String, Value>>> = LazyLock::new(Default::default);
    let mut schemas = SCHEMAS.lock().unwrap();
    schemas
        .entry(name.to_owned())
        .or_insert_with(|| {
            let output = super::Shopctl::new(&["schema", name])
                .command()
                .output()
                .expect("shopctl runs");
            assert!(output.status.success(), "shopctl schema {name} failed");
            serde_json::from_slice(&output.stdout).expect("shopctl schema prints JSON")
        })
        .clone()
}

/// Every object that lists its properties allows no others.
fn strict(mut schema: Value) -> Value {
    fn visit(node: &mut Value) {
        match node {
            Value::Object(map) => {
                if map.contains_key("properties") && !map.contains_key("additionalProperties") {
                    map.insert("additionalProperties".into(), Value::Bool(false));
                }
                map.values_mut().for_each(visit);
            }
            Value::Array(items) => items.iter_mut().for_each(visit),
            _ => {}
        }
    }
    visit(&mut schema);
    schema
}
