//! Label and field selectors with upstream syntax and semantics.
//!
//! Label selectors: <https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors>
//! (equality `=`, `==`, `!=`; set-based `in`, `notin`, `key`, `!key`; comma means AND).
//! Field selectors: <https://kubernetes.io/docs/concepts/overview/working-with-objects/field-selectors/>
//! (only the fields upstream supports for a kind; anything else is a 400).

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSelector(Vec<Requirement>);

impl LabelSelector {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut requirements = Vec::new();
        for term in split_top_level(raw) {
            let term = term.trim();
            if term.is_empty() {
                continue;
            }
            requirements.push(parse_requirement(term)?);
        }
        Ok(Self(requirements))
    }

    /// The structured form used in specs (`matchLabels` and `matchExpressions`).
    pub fn from_object(selector: &Value) -> Result<Self, String> {
        let mut requirements = Vec::new();
        if let Some(labels) = selector.get("matchLabels").and_then(Value::as_object) {
            for (key, value) in labels {
                let value = value.as_str().ok_or("matchLabels values must be strings")?;
                requirements.push(Requirement::Equals(key.clone(), value.to_string()));
            }
        }
        for expression in selector
            .get("matchExpressions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let key = expression["key"]
                .as_str()
                .ok_or("matchExpressions need a key")?;
            let values: Vec<String> = expression["values"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect();
            requirements.push(match expression["operator"].as_str() {
                Some("In") => Requirement::In(key.into(), values),
                Some("NotIn") => Requirement::NotIn(key.into(), values),
                Some("Exists") => Requirement::Exists(key.into()),
                Some("DoesNotExist") => Requirement::DoesNotExist(key.into()),
                other => return Err(format!("unknown selector operator {other:?}")),
            });
        }
        Ok(Self(requirements))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn matches(&self, labels: Option<&Value>) -> bool {
        let get = |key: &str| labels.and_then(|l| l.get(key)).and_then(Value::as_str);
        self.0.iter().all(|requirement| match requirement {
            Requirement::Equals(k, v) => get(k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => get(k) != Some(v.as_str()),
            Requirement::In(k, vs) => get(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            Requirement::NotIn(k, vs) => get(k).is_none_or(|l| !vs.iter().any(|v| v == l)),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::DoesNotExist(k) => get(k).is_none(),
        })
    }

    /// The string form, as a Scale's `status.selector` reports it.
    pub fn to_query(&self) -> String {
        self.0
            .iter()
            .map(|requirement| match requirement {
                Requirement::Equals(k, v) => format!("{k}={v}"),
                Requirement::NotEquals(k, v) => format!("{k}!={v}"),
                Requirement::In(k, vs) => format!("{k} in ({})", vs.join(",")),
                Requirement::NotIn(k, vs) => format!("{k} notin ({})", vs.join(",")),
                Requirement::Exists(k) => k.clone(),
                Requirement::DoesNotExist(k) => format!("!{k}"),
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Splits on commas outside parentheses (`a in (x,y),b` is two terms).
fn split_top_level(raw: &str) -> Vec<&str> {
    let mut terms = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in raw.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                terms.push(&raw[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&raw[start..]);
    terms
}

fn parse_requirement(term: &str) -> Result<Requirement, String> {
    let set = |rest: &str| -> Result<Vec<String>, String> {
        let rest = rest.trim();
        let inner = rest
            .strip_prefix('(')
            .and_then(|r| r.strip_suffix(')'))
            .ok_or_else(|| format!("unable to parse requirement: {term:?}: expected (values)"))?;
        Ok(inner.split(',').map(|v| v.trim().to_string()).collect())
    };
    if let Some((key, rest)) = term.split_once(" notin ") {
        return Ok(Requirement::NotIn(key.trim().into(), set(rest)?));
    }
    if let Some((key, rest)) = term.split_once(" in ") {
        return Ok(Requirement::In(key.trim().into(), set(rest)?));
    }
    if let Some((key, value)) = term.split_once("!=") {
        return Ok(Requirement::NotEquals(
            key.trim().into(),
            value.trim().into(),
        ));
    }
    if let Some((key, value)) = term.split_once("==").or_else(|| term.split_once('=')) {
        return Ok(Requirement::Equals(key.trim().into(), value.trim().into()));
    }
    if let Some(key) = term.strip_prefix('!') {
        return Ok(Requirement::DoesNotExist(key.trim().into()));
    }
    if term
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
    {
        return Ok(Requirement::Exists(term.into()));
    }
    Err(format!("unable to parse requirement: {term:?}"))
}

/// A field selector, checked against the fields upstream supports for the kind.
#[derive(Debug, Clone, Default)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    pub fn parse(raw: &str, kind: &str) -> Result<Self, String> {
        let mut terms = Vec::new();
        for term in raw.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (field, equal, value) = if let Some((f, v)) = term.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                (f, true, v)
            } else {
                return Err(format!("invalid field selector: {term:?}"));
            };
            if !supported_field(kind, field) {
                return Err(format!("field label not supported: {field}"));
            }
            terms.push((field.to_string(), equal, value.to_string()));
        }
        Ok(Self(terms))
    }

    pub fn matches(&self, object: &Value) -> bool {
        self.0.iter().all(|(field, equal, value)| {
            let actual = field
                .split('.')
                .try_fold(object, |v, segment| v.get(segment))
                .and_then(Value::as_str)
                .unwrap_or("");
            (actual == value) == *equal
        })
    }
}

fn supported_field(kind: &str, field: &str) -> bool {
    if matches!(field, "metadata.name" | "metadata.namespace") {
        return true;
    }
    match kind {
        "Event" => matches!(
            field,
            "involvedObject.kind"
                | "involvedObject.name"
                | "involvedObject.namespace"
                | "involvedObject.uid"
                | "reason"
                | "type"
        ),
        "Pod" => matches!(field, "status.phase" | "spec.nodeName"),
        "Secret" => field == "type",
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Upstream: "comma separator acts as a logical AND (&&) operator" and set-based
    /// `in`/`notin`/exists (labels.md, "Label selectors").
    #[test]
    fn label_selectors_combine_equality_and_set_based_requirements() {
        let labels = json!({"app": "backend", "tier": "api"});
        let yes = [
            "app=backend",
            "app==backend,tier",
            "app in (web,backend)",
            "!canary",
            "tier notin (db)",
        ];
        let no = [
            "app=web",
            "app!=backend",
            "app in (web)",
            "canary",
            "app=backend,!tier",
        ];
        for raw in yes {
            assert!(
                LabelSelector::parse(raw).unwrap().matches(Some(&labels)),
                "{raw}"
            );
        }
        for raw in no {
            assert!(
                !LabelSelector::parse(raw).unwrap().matches(Some(&labels)),
                "{raw}"
            );
        }
    }

    /// Upstream: `notin` and `!=` also match objects that do not have the label at all.
    #[test]
    fn negative_requirements_match_objects_without_the_label() {
        let selector = LabelSelector::parse("env!=prod,tier notin (db)").unwrap();
        assert!(selector.matches(None));
    }

    /// Upstream: "Supported field selectors vary by Kubernetes resource type" and an
    /// unsupported one is an error, not an empty result.
    #[test]
    fn field_selectors_reject_fields_the_kind_does_not_support() {
        assert!(FieldSelector::parse("metadata.name=web", "Deployment").is_ok());
        assert!(FieldSelector::parse("type=Warning", "Event").is_ok());
        let err = FieldSelector::parse("spec.replicas=2", "Deployment").unwrap_err();
        assert!(err.contains("field label not supported"), "{err}");
    }
}
