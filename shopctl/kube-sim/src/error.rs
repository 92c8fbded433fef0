//! API errors as upstream `Status` objects:
//! <https://kubernetes.io/docs/reference/using-api/api-concepts/#response-status-kind>.

use serde_json::{Value, json};

use crate::resources::ResourceType;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Value,
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: String) -> Self {
        Self {
            code,
            reason,
            message,
            details: Value::Null,
        }
    }

    fn with_details(mut self, rt: &ResourceType, name: &str) -> Self {
        self.details = json!({"name": name, "group": rt.group, "kind": rt.plural});
        self
    }

    pub fn not_found(rt: &ResourceType, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", rt.qualified()),
        )
        .with_details(rt, name)
    }

    pub fn namespace_not_found(namespace: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("namespaces \"{namespace}\" not found"),
        )
    }

    pub fn already_exists(rt: &ResourceType, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", rt.qualified()),
        )
        .with_details(rt, name)
    }

    /// Optimistic concurrency: the caller's resourceVersion is stale.
    pub fn stale(rt: &ResourceType, name: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; \
                 please apply your changes to the latest version and try again",
                rt.qualified()
            ),
        )
        .with_details(rt, name)
    }

    pub fn apply_conflicts(
        rt: &ResourceType,
        name: &str,
        conflicts: &[crate::fields::Conflict],
    ) -> Self {
        let described: Vec<String> = conflicts
            .iter()
            .map(|c| {
                format!(
                    "conflict with \"{}\" using {}: {}",
                    c.manager,
                    rt.api_version(),
                    c.field
                )
            })
            .collect();
        let plural = if conflicts.len() == 1 { "" } else { "s" };
        let mut error = Self::new(
            409,
            "Conflict",
            format!(
                "Apply failed with {} conflict{plural}: {}",
                conflicts.len(),
                described.join("\n")
            ),
        )
        .with_details(rt, name);
        error.details["causes"] = conflicts
            .iter()
            .map(|c| {
                json!({
                    "reason": "FieldManagerConflict",
                    "message": format!("conflict with \"{}\" using {}", c.manager, rt.api_version()),
                    "field": c.field,
                })
            })
            .collect();
        error
    }

    /// 422: the object is not valid.
    pub fn invalid(rt: &ResourceType, name: &str, field: &str, problem: &str) -> Self {
        let mut error = Self::new(
            422,
            "Invalid",
            format!("{} \"{name}\" is invalid: {field}: {problem}", rt.kind),
        )
        .with_details(rt, name);
        error.details["causes"] =
            json!([{"reason": "FieldValueInvalid", "message": problem, "field": field}]);
        error
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message.into())
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource".into(),
        )
    }

    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {content_type:?})"
            ),
        )
    }

    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized".into())
    }

    /// 403 for a request the authorizers refused, worded as upstream's `forbiddenMessage`
    /// inside `NewForbidden` (`pods "x" is forbidden: User "u" cannot get resource ...`).
    pub fn refused(request: &crate::rbac::Attributes, user: &str) -> Self {
        let refusal = request.refusal(user);
        if request.path.is_some() {
            return Self::forbidden_message(format!("forbidden: {refusal}"));
        }
        let qualified = if request.api_group.is_empty() {
            request.resource.clone()
        } else {
            format!("{}.{}", request.resource, request.api_group)
        };
        let object = if request.name.is_empty() {
            qualified
        } else {
            format!("{qualified} \"{}\"", request.name)
        };
        let mut error = Self::forbidden_message(format!("{object} is forbidden: {refusal}"));
        error.details =
            json!({"name": request.name, "group": request.api_group, "kind": request.resource});
        error
    }

    pub fn forbidden_message(message: String) -> Self {
        Self::new(403, "Forbidden", message)
    }

    /// 422 for a review whose spec says nothing to review.
    pub fn invalid_review(problem: &str) -> Self {
        Self::new(422, "Invalid", problem.to_string())
    }

    pub fn service_unavailable(message: String) -> Self {
        Self::new(503, "ServiceUnavailable", message)
    }

    pub fn gone(message: String) -> Self {
        Self::new(410, "Expired", message)
    }

    pub fn status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if !self.details.is_null() {
            status["details"] = self.details.clone();
        }
        status
    }
}
