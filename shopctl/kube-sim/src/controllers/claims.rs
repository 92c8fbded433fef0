//! PersistentVolumeClaims: bound to a volume as soon as they exist.

use super::*;

impl Controllers {
    /// A dynamic provisioner: a claim naming an existing StorageClass is bound to a volume
    /// of the size it asked for; one naming no existing class stays Pending, as upstream
    /// (no provisioner answers it). A claim once bound (or Lost) keeps its phase.
    pub(super) fn claims(&mut self) {
        let classes = self.all(rt("storage.k8s.io", "StorageClass"));
        // A claim without a class gets the default one, as the DefaultStorageClass
        // admission plugin does.
        let default = classes.iter().find(|c| {
            c["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"
        });
        for claim in self.all(rt("", "PersistentVolumeClaim")) {
            if matches!(claim["status"]["phase"].as_str(), Some("Bound" | "Lost")) {
                continue;
            }
            let class = match claim["spec"]["storageClassName"].as_str() {
                Some(class) => Some(class),
                None => default.map(name_of),
            };
            let status = if classes.iter().any(|c| Some(name_of(c)) == class) {
                json!({
                    "phase": "Bound",
                    "accessModes": claim["spec"]["accessModes"],
                    "capacity": {"storage": claim["spec"]["resources"]["requests"]["storage"]},
                })
            } else {
                json!({"phase": "Pending"})
            };
            if claim["status"] != status {
                self.set_status(rt("", "PersistentVolumeClaim"), &claim, status);
            }
        }
    }
}
