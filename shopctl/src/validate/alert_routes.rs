//! Who an alert reaches, read from Alertmanager's own configuration (`/api/v2/status`
//! returns it, secrets masked) with Alertmanager's routing semantics: from the root,
//! the first matching child route is followed, and the ones after it too while a
//! matching route says `continue`; a route no child matches delivers to its own
//! receiver. A receiver reaches someone when it has at least one integration.

use regex::Regex;
use serde_json::Value;

/// The receivers an alert with `labels` is delivered to, and whether each reaches
/// anyone (has an integration).
pub fn receivers_for(config: &str, labels: &[(&str, &str)]) -> Result<Vec<(String, bool)>, String> {
    let config: Value = serde_saphyr::from_str(config)
        .map_err(|err| format!("Alertmanager's configuration does not parse: {err}"))?;
    let route = &config["route"];
    if !route.is_object() {
        return Err("Alertmanager's configuration has no route".into());
    }
    let mut names = Vec::new();
    deliver(route, labels, &mut names)?;
    Ok(names
        .into_iter()
        .map(|name| {
            let integrated = config["receivers"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|r| r["name"] == name.as_str())
                .and_then(Value::as_object)
                .is_some_and(|receiver| {
                    receiver.iter().any(|(key, value)| {
                        key.ends_with("_configs")
                            && value.as_array().is_some_and(|list| !list.is_empty())
                    })
                });
            (name, integrated)
        })
        .collect())
}

/// Appends the receivers `route` (already matched) delivers `labels` to; children inherit
/// their parent's receiver.
fn deliver(route: &Value, labels: &[(&str, &str)], out: &mut Vec<String>) -> Result<(), String> {
    let mut matched_any = false;
    for child in route["routes"].as_array().into_iter().flatten() {
        if !matches(child, labels)? {
            continue;
        }
        matched_any = true;
        let mut inherited = child.clone();
        if inherited["receiver"].is_null() {
            inherited["receiver"] = route["receiver"].clone();
        }
        deliver(&inherited, labels, out)?;
        if child["continue"] != true {
            break;
        }
    }
    if !matched_any {
        let receiver = route["receiver"]
            .as_str()
            .ok_or("a route has no receiver")?;
        if !out.iter().any(|r| r == receiver) {
            out.push(receiver.to_owned());
        }
    }
    Ok(())
}

fn matches(route: &Value, labels: &[(&str, &str)]) -> Result<bool, String> {
    let value_of = |name: &str| {
        labels
            .iter()
            .find(|(label, _)| *label == name)
            .map_or("", |(_, value)| *value)
    };
    for matcher in route["matchers"].as_array().into_iter().flatten() {
        let text = matcher.as_str().ok_or("a matcher is not a string")?;
        if !matcher_holds(text, value_of)? {
            return Ok(false);
        }
    }
    // The older forms: `match` (equality) and `match_re` (anchored regex).
    for (name, wanted) in route["match"].as_object().into_iter().flatten() {
        if value_of(name) != wanted.as_str().unwrap_or_default() {
            return Ok(false);
        }
    }
    for (name, pattern) in route["match_re"].as_object().into_iter().flatten() {
        if !anchored(pattern.as_str().unwrap_or_default())?.is_match(value_of(name)) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// One `label<op>"value"` matcher, op one of `=`, `!=`, `=~`, `!~`.
fn matcher_holds<'a>(text: &str, value_of: impl Fn(&str) -> &'a str) -> Result<bool, String> {
    let at = text
        .find(['=', '!'])
        .ok_or_else(|| format!("matcher `{text}` has no operator"))?;
    let name = text[..at].trim();
    let rest = &text[at..];
    let (op, raw) = ["=~", "!~", "!=", "="]
        .iter()
        .find_map(|op| rest.strip_prefix(op).map(|raw| (*op, raw)))
        .ok_or_else(|| format!("matcher `{text}` has no operator"))?;
    let wanted = raw.trim().trim_matches('"');
    let actual = value_of(name);
    Ok(match op {
        "=" => actual == wanted,
        "!=" => actual != wanted,
        "=~" => anchored(wanted)?.is_match(actual),
        _ => !anchored(wanted)?.is_match(actual),
    })
}

fn anchored(pattern: &str) -> Result<Regex, String> {
    Regex::new(&format!("^(?:{pattern})$"))
        .map_err(|err| format!("matcher regex `{pattern}`: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
route:
  receiver: unheard
  routes:
    - receiver: pager
      matchers: ['severity=~"critical"']
      continue: true
    - receiver: chat
      matchers: ['severity=~"critical|warning"']
      continue: true
    - receiver: tickets
      matchers: ['severity="warning"', 'team!="none"']
receivers:
  - name: unheard
  - name: pager
    pagerduty_configs: [{routing_key: <secret>}]
  - name: chat
    slack_configs: [{api_url: <secret>}]
  - name: tickets
    webhook_configs: []
"#;

    fn names(found: &[(String, bool)]) -> Vec<&str> {
        found.iter().map(|(n, _)| n.as_str()).collect()
    }

    #[test]
    fn continue_delivers_to_every_matching_route_and_the_root_takes_the_rest() {
        let critical = receivers_for(CONFIG, &[("severity", "critical")]).unwrap();
        assert_eq!(names(&critical), ["pager", "chat"]);
        assert!(critical.iter().all(|(_, reaches)| *reaches));
        let warning = receivers_for(CONFIG, &[("severity", "warning")]).unwrap();
        assert_eq!(names(&warning), ["chat", "tickets"]);
        assert_eq!(warning[1], ("tickets".into(), false), "no integration");
        let info = receivers_for(CONFIG, &[("severity", "info")]).unwrap();
        assert_eq!(info, [("unheard".to_string(), false)]);
    }

    #[test]
    fn the_first_match_without_continue_stops_the_search_and_old_forms_match() {
        let config = r#"
route:
  receiver: root
  routes:
    - receiver: first
      match: {severity: critical}
    - receiver: second
      match_re: {severity: "crit.*"}
receivers: [{name: root}, {name: first, webhook_configs: [{url: x}]}, {name: second}]
"#;
        let found = receivers_for(config, &[("severity", "critical")]).unwrap();
        assert_eq!(found, [("first".to_string(), true)]);
        assert!(receivers_for("route: 3", &[]).is_err());
        assert!(receivers_for("receivers: []", &[]).is_err());
    }
}
