//! Kubernetes label selector matching (`matchLabels` and `matchExpressions`), as the API
//! server evaluates it: every requirement must hold; an empty selector matches everything.

use std::collections::BTreeMap;

use serde_json::Value;

pub type Labels = BTreeMap<String, String>;

pub fn labels_at(value: &Value, pointer: &str) -> Labels {
    value
        .pointer(pointer)
        .and_then(Value::as_object)
        .map(|map| {
            map.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

pub fn matches(selector: &Value, labels: &Labels) -> bool {
    let match_labels = selector.get("matchLabels").and_then(Value::as_object);
    let labels_ok = match_labels
        .into_iter()
        .flatten()
        .all(|(key, wanted)| labels.get(key).map(String::as_str) == wanted.as_str());
    let expressions = selector.get("matchExpressions").and_then(Value::as_array);
    let expressions_ok = expressions.into_iter().flatten().all(|expression| {
        let key = expression
            .get("key")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let values: Vec<&str> = expression
            .get("values")
            .and_then(Value::as_array)
            .map(|vs| vs.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let actual = labels.get(key).map(String::as_str);
        match expression
            .get("operator")
            .and_then(Value::as_str)
            .unwrap_or_default()
        {
            "In" => actual.is_some_and(|a| values.contains(&a)),
            "NotIn" => actual.is_none_or(|a| !values.contains(&a)),
            "Exists" => actual.is_some(),
            "DoesNotExist" => actual.is_none(),
            _ => false,
        }
    });
    labels_ok && expressions_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    // https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#resources-that-support-set-based-requirements
    #[test]
    fn match_labels_and_expressions_are_anded() {
        let selector = json!({
            "matchLabels": {"app": "backend"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["api", "web"]}]
        });
        assert!(matches(
            &selector,
            &labels(&[("app", "backend"), ("tier", "api")])
        ));
        assert!(!matches(
            &selector,
            &labels(&[("app", "backend"), ("tier", "db")])
        ));
        assert!(!matches(&selector, &labels(&[("tier", "api")])));
    }

    #[test]
    fn empty_selector_matches_everything_and_not_in_matches_absent_keys() {
        assert!(matches(&json!({}), &labels(&[("any", "thing")])));
        let not_in =
            json!({"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["prod"]}]});
        assert!(matches(&not_in, &labels(&[])));
        assert!(!matches(&not_in, &labels(&[("env", "prod")])));
        let exists = json!({"matchExpressions": [{"key": "env", "operator": "DoesNotExist"}]});
        assert!(!matches(&exists, &labels(&[("env", "x")])));
    }
}
