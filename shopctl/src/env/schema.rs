//! Validates a values tree against the JSON Schema derived from [`super::model`],
//! reporting every problem at once (not one per run) with its path, and a "did you mean"
//! hint for misspelt keys.
//!
//! Supports the subset of JSON Schema that `schemars` emits for our types: `$ref`/`$defs`,
//! `type`, `properties`, `required`, `additionalProperties`, `enum`, `const`, `anyOf`,
//! `oneOf`, integer bounds, string patterns, and array items and lengths.

use std::fmt;

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted path such as `services.backend.replicas`.
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "(top level): {}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

pub struct Schema {
    root: Value,
}

impl Schema {
    pub fn new(root: Value) -> Self {
        Self { root }
    }

    pub fn validate(&self, value: &Value) -> Vec<Problem> {
        let mut problems = Vec::new();
        self.check(&self.root, value, "", &mut problems);
        problems
    }

    /// The schema at a dotted path, or a problem naming the first segment that does not
    /// exist (with a suggestion).
    pub fn at_path(&self, segments: &[&str]) -> Result<&Value, Problem> {
        let mut schema = self.resolve(&self.root);
        let mut walked = String::new();
        for segment in segments {
            schema = self.non_null(schema);
            let next = schema
                .get("properties")
                .and_then(|props| props.get(*segment))
                .or_else(|| {
                    schema
                        .get("additionalProperties")
                        .filter(|extra| extra.is_object())
                });
            match next {
                Some(next) => schema = self.resolve(next),
                None => {
                    let known = property_names(schema);
                    let mut message = if known.is_empty() {
                        format!("`{walked}` has no settings below it")
                    } else {
                        format!("no setting `{segment}`")
                    };
                    if let Some(hint) = did_you_mean(segment, &known) {
                        message.push_str(&format!("; did you mean `{hint}`?"));
                    }
                    return Err(Problem {
                        path: join(&walked, segment),
                        message,
                    });
                }
            }
            walked = join(&walked, segment);
        }
        Ok(self.non_null(schema))
    }

    fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(reference) => {
                let pointer = reference.trim_start_matches('#');
                self.root
                    .pointer(pointer)
                    .map(|s| self.resolve(s))
                    .unwrap_or(schema)
            }
            None => schema,
        }
    }

    /// For `Option<T>` (`anyOf: [T, null]`), the `T` side.
    fn non_null<'a>(&'a self, schema: &'a Value) -> &'a Value {
        let schema = self.resolve(schema);
        match schema.get("anyOf").and_then(Value::as_array) {
            Some(options) => options
                .iter()
                .map(|option| self.resolve(option))
                .find(|option| option.get("type").and_then(Value::as_str) != Some("null"))
                .unwrap_or(schema),
            None => schema,
        }
    }

    fn check(&self, schema: &Value, value: &Value, path: &str, problems: &mut Vec<Problem>) {
        let schema = self.resolve(schema);
        for keyword in ["anyOf", "oneOf"] {
            if let Some(options) = schema.get(keyword).and_then(Value::as_array) {
                self.check_alternatives(options, value, path, problems);
                return;
            }
        }
        if let Some(constant) = schema.get("const") {
            if value != constant {
                problems.push(problem(
                    path,
                    format!("expected {constant}, found {}", describe(value)),
                ));
            }
            return;
        }
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
            if !allowed.contains(value) {
                let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
                problems.push(problem(
                    path,
                    format!(
                        "expected one of {}, found {}",
                        list.join(", "),
                        describe(value)
                    ),
                ));
            }
            return;
        }
        if let Some(expected) = schema.get("type")
            && !type_matches(expected, value)
        {
            problems.push(problem(
                path,
                format!(
                    "expected {}, found {}",
                    type_name(expected),
                    describe(value)
                ),
            ));
            return;
        }
        if let Some(number) = value.as_f64() {
            if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
                && number < min
            {
                problems.push(problem(
                    path,
                    format!("must be at least {min}, found {number}"),
                ));
            }
            if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
                && number > max
            {
                problems.push(problem(
                    path,
                    format!("must be at most {max}, found {number}"),
                ));
            }
        }
        if let (Some(pattern), Some(text)) = (
            schema.get("pattern").and_then(Value::as_str),
            value.as_str(),
        ) && !regex::Regex::new(pattern).is_ok_and(|re| re.is_match(text))
        {
            problems.push(problem(
                path,
                format!("must match {pattern}, found {}", describe(value)),
            ));
        }
        if let Some(items) = value.as_array() {
            if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
                && (items.len() as u64) < min
            {
                problems.push(problem(path, format!("needs at least {min} item(s)")));
            }
            if let Some(item_schema) = schema.get("items") {
                for (index, item) in items.iter().enumerate() {
                    self.check(item_schema, item, &format!("{path}[{index}]"), problems);
                }
            }
        }
        if let Some(object) = value.as_object() {
            self.check_object(schema, object, path, problems);
        }
    }

    fn check_alternatives(
        &self,
        options: &[Value],
        value: &Value,
        path: &str,
        problems: &mut Vec<Problem>,
    ) {
        let mut attempts = Vec::new();
        for option in options {
            let mut found = Vec::new();
            self.check(option, value, path, &mut found);
            if found.is_empty() {
                return;
            }
            attempts.push(found);
        }
        let constants: Vec<String> = options
            .iter()
            .filter_map(|o| self.resolve(o).get("const").map(Value::to_string))
            .collect();
        if constants.len() == options.len() {
            problems.push(problem(
                path,
                format!(
                    "expected one of {}, found {}",
                    constants.join(", "),
                    describe(value)
                ),
            ));
        } else if let Some(closest) = attempts.into_iter().min_by_key(Vec::len) {
            problems.extend(closest);
        }
    }

    fn check_object(
        &self,
        schema: &Value,
        object: &serde_json::Map<String, Value>,
        path: &str,
        problems: &mut Vec<Problem>,
    ) {
        let properties = schema.get("properties").and_then(Value::as_object);
        let extra = schema.get("additionalProperties");
        for (key, child) in object {
            let child_path = join(path, key);
            match (properties.and_then(|p| p.get(key)), extra) {
                (Some(child_schema), _) => self.check(child_schema, child, &child_path, problems),
                (None, Some(Value::Bool(false))) => {
                    let known = property_names(schema);
                    let mut message = "unknown key".to_owned();
                    if let Some(hint) = did_you_mean(key, &known) {
                        message.push_str(&format!("; did you mean `{hint}`?"));
                    }
                    problems.push(problem(&child_path, message));
                }
                (None, Some(extra_schema)) if extra_schema.is_object() => {
                    self.check(extra_schema, child, &child_path, problems)
                }
                (None, _) => {}
            }
        }
        for required in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(name) = required.as_str()
                && !object.contains_key(name)
            {
                problems.push(problem(
                    &join(path, name),
                    "is required but missing".to_owned(),
                ));
            }
        }
    }
}

fn problem(path: &str, message: String) -> Problem {
    Problem {
        path: path.to_owned(),
        message,
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn property_names(schema: &Value) -> Vec<String> {
    schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|props| props.keys().cloned().collect())
        .unwrap_or_default()
}

/// The closest known name, if it is close enough to be a plausible typo.
pub fn did_you_mean(input: &str, known: &[String]) -> Option<String> {
    known
        .iter()
        .map(|candidate| (strsim::jaro_winkler(input, candidate), candidate))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, candidate)| candidate.clone())
}

fn type_matches(expected: &Value, value: &Value) -> bool {
    let matches_one = |name: &str| match name {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        _ => true,
    };
    match expected {
        Value::String(name) => matches_one(name),
        Value::Array(names) => names.iter().filter_map(Value::as_str).any(matches_one),
        _ => true,
    }
}

fn type_name(expected: &Value) -> String {
    let name = |n: &str| match n {
        "object" => "a mapping",
        "array" => "a list",
        "string" => "a string",
        "boolean" => "true or false",
        "integer" => "a whole number",
        "number" => "a number",
        "null" => "nothing",
        _ => "a value",
    };
    match expected {
        Value::String(n) => name(n).to_owned(),
        Value::Array(names) => names
            .iter()
            .filter_map(Value::as_str)
            .filter(|n| *n != "null")
            .map(name)
            .collect::<Vec<_>>()
            .join(" or "),
        _ => "a value".to_owned(),
    }
}

fn describe(value: &Value) -> String {
    let kind = match value {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a decimal number",
        Value::Number(_) => "a whole number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    };
    match value {
        Value::Array(_) | Value::Object(_) | Value::Null => kind.to_owned(),
        other => {
            let mut shown = other.to_string();
            if shown.len() > 40 {
                shown.truncate(37);
                shown.push_str("...");
            }
            format!("{kind} ({shown})")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn did_you_mean_suggests_close_names_only() {
        let known = vec![
            "replicas".to_owned(),
            "resources".to_owned(),
            "image".to_owned(),
        ];
        assert_eq!(did_you_mean("replica", &known).as_deref(), Some("replicas"));
        assert_eq!(did_you_mean("imgae", &known).as_deref(), Some("image"));
        assert_eq!(did_you_mean("zzz", &known), None);
    }

    #[test]
    fn list_items_are_checked_with_their_index() {
        let schema = crate::env::schema();
        let receivers = |value: Value| {
            let mut problems = Vec::new();
            let receivers =
                schema.resolve(&schema.root["$defs"]["Alerting"])["properties"]["receivers"]
                    .clone();
            schema.check(&receivers, &value, "receivers", &mut problems);
            problems
                .into_iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
        };
        assert!(
            receivers(json!([{"name": "pager", "kind": "pagerduty", "severities": ["critical"]}]))
                .is_empty()
        );
        let problems = receivers(json!([
            {"name": "pager", "kind": "pagerduty", "severities": ["critical"]},
            {"name": "Team Chat", "kind": "email", "severities": []}
        ]));
        let joined = problems.join("\n");
        for expected in [
            "receivers[1].name",
            "receivers[1].kind",
            "receivers[1].severities",
        ] {
            assert!(joined.contains(expected), "{joined}");
        }
        assert!(!joined.contains("receivers[0]"), "{joined}");
    }

    #[test]
    fn describes_values_without_dumping_them() {
        assert_eq!(describe(&json!("three")), "a string (\"three\")");
        assert_eq!(describe(&json!({"a": 1})), "a mapping");
        assert!(describe(&json!("x".repeat(100))).ends_with("...)"));
    }
}
