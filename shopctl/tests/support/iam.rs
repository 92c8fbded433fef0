//! IAM policy evaluation as AWS documents it
//! (<https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html>),
//! for the properties the emulator cannot check: a request is allowed when a statement
//! allows it and none denies it; `Action`/`NotAction` and `Resource` match with `*` and `?`
//! wildcards; conditions compare request context keys with `StringEquals` or `StringLike`.
//! An operator it does not know fails the test rather than guessing.

use std::collections::BTreeMap;

use serde_json::Value;

/// `*` any run of characters, `?` any one; case-sensitive (resources, context values).
pub fn glob(pattern: &str, text: &str) -> bool {
    fn matches(p: &[char], t: &[char]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some('*'), _) => matches(&p[1..], t) || (!t.is_empty() && matches(p, &t[1..])),
            (Some('?'), Some(_)) => matches(&p[1..], &t[1..]),
            (Some(a), Some(b)) if a == b => matches(&p[1..], &t[1..]),
            _ => false,
        }
    }
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    matches(&p, &t)
}

fn list(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

/// Action names are case-insensitive in IAM.
fn action_matches(patterns: &[String], action: &str) -> bool {
    patterns
        .iter()
        .any(|p| glob(&p.to_lowercase(), &action.to_lowercase()))
}

fn conditions_hold(condition: &Value, context: &BTreeMap<String, String>) -> bool {
    let Some(operators) = condition.as_object() else {
        return true;
    };
    operators.iter().all(|(operator, keys)| {
        keys.as_object().into_iter().flatten().all(|(key, wanted)| {
            let Some(actual) = context.get(key) else {
                return false;
            };
            let wanted = list(wanted);
            match operator.as_str() {
                "StringEquals" => wanted.iter().any(|w| w == actual),
                "StringLike" => wanted.iter().any(|w| glob(w, actual)),
                "Bool" => wanted.iter().any(|w| w.eq_ignore_ascii_case(actual)),
                other => panic!("the IAM evaluator knows no condition operator {other}"),
            }
        })
    })
}

fn statements(policy: &Value) -> Vec<&Value> {
    match &policy["Statement"] {
        Value::Array(items) => items.iter().collect(),
        single @ Value::Object(_) => vec![single],
        _ => Vec::new(),
    }
}

fn applies(
    statement: &Value,
    action: &str,
    resource: &str,
    context: &BTreeMap<String, String>,
) -> bool {
    let action_ok = if statement.get("NotAction").is_some() {
        !action_matches(&list(&statement["NotAction"]), action)
    } else {
        action_matches(&list(&statement["Action"]), action)
    };
    // Trust policies have no Resource: the role itself is the resource.
    let resource_ok = statement.get("Resource").is_none()
        || list(&statement["Resource"])
            .iter()
            .any(|r| glob(r, resource));
    action_ok && resource_ok && conditions_hold(&statement["Condition"], context)
}

/// Whether `policy` allows `action` on `resource` with the request context `context`.
pub fn allows(
    policy: &Value,
    action: &str,
    resource: &str,
    context: &BTreeMap<String, String>,
) -> bool {
    let matching: Vec<&Value> = statements(policy)
        .into_iter()
        .filter(|s| applies(s, action, resource, context))
        .collect();
    matching.iter().any(|s| s["Effect"] == "Allow")
        && !matching.iter().any(|s| s["Effect"] == "Deny")
}

/// Every (statement id, action) the policy's Allow statements name.
pub fn allowed_actions(policy: &Value) -> Vec<(String, String)> {
    statements(policy)
        .into_iter()
        .filter(|s| s["Effect"] == "Allow")
        .flat_map(|s| {
            let sid = s["Sid"].as_str().unwrap_or("").to_string();
            list(&s["Action"])
                .into_iter()
                .map(move |a| (sid.clone(), a))
        })
        .collect()
}

/// The policy without one action in one statement (the statement goes when it was its last).
pub fn without(policy: &Value, sid: &str, action: &str) -> Value {
    let mut policy = policy.clone();
    let kept: Vec<Value> = statements(&policy)
        .into_iter()
        .filter_map(|s| {
            if s["Sid"] != sid {
                return Some(s.clone());
            }
            let actions: Vec<String> = list(&s["Action"])
                .into_iter()
                .filter(|a| a != action)
                .collect();
            (!actions.is_empty()).then(|| {
                let mut s = s.clone();
                s["Action"] = Value::from(actions);
                s
            })
        })
        .collect();
    policy["Statement"] = Value::Array(kept);
    policy
}
