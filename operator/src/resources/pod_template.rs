//! `spec.podTemplate`: the user's override of a generated pod template. It
//! is a JSON merge patch (RFC 7386: objects merge key by key, `null`
//! removes a key, any other value replaces) except that the lists of named
//! entries in [`KEYED_LISTS`] merge entry by entry on their key, as a
//! strategic merge patch merges them. The result must still hold what the
//! operator relies on: the node container with its command and its
//! generated `env`, `ports` and `volumeMounts` entries, the generated
//! volumes, and no field a pod template does not have.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde_json::{Map, Value};

use super::INSTANCE_LABEL;

/// Name of the node container.
pub const NODE_CONTAINER: &str = "node";

/// Name of the volume claim template, which becomes a pod volume.
pub const DATA_VOLUME: &str = "data";

/// The name of the data volume claim the StatefulSet makes for `pod`.
pub fn data_claim_name(pod: &str) -> String {
    format!("{DATA_VOLUME}-{pod}")
}

/// Prefix of the label and annotation keys the operator owns.
pub const OPERATOR_KEY_PREFIX: &str = "kv.dynamo.dev/";

/// Label keys outside [`OPERATOR_KEY_PREFIX`] the operator sets on node
/// pods.
pub const MANAGED_LABELS: &[&str] = &[
    "app.kubernetes.io/name",
    INSTANCE_LABEL,
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/component",
];

/// Whether the operator owns this pod label key.
pub fn is_managed_label(key: &str) -> bool {
    key.starts_with(OPERATOR_KEY_PREFIX) || MANAGED_LABELS.contains(&key)
}

/// Whether the operator owns this pod annotation key.
pub fn is_managed_annotation(key: &str) -> bool {
    key.starts_with(OPERATOR_KEY_PREFIX)
}

/// Lists merged entry by entry: their path in a pod template (field names,
/// list entries left out) and the field an entry is identified by.
pub const KEYED_LISTS: &[(&str, &str)] = &[
    ("spec.containers", "name"),
    ("spec.initContainers", "name"),
    ("spec.volumes", "name"),
    ("spec.imagePullSecrets", "name"),
    ("spec.containers.env", "name"),
    ("spec.containers.ports", "containerPort"),
    ("spec.containers.volumeMounts", "mountPath"),
];

/// Why `spec.podTemplate` cannot be applied.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PodTemplateError {
    /// An entry of a keyed list is not an object with its key.
    #[error("spec.podTemplate.{list}[{index}] must be an object with a {key:?} to merge on")]
    MissingKey {
        /// Where the list is.
        list: String,
        /// Position of the entry in the override's list.
        index: usize,
        /// The field entries of that list are merged on.
        key: &'static str,
    },
    /// The override removes the node container.
    #[error("spec.podTemplate removes the container \"node\" from spec.containers")]
    NodeContainerRemoved,
    /// The override changes something the operator generates and relies on.
    #[error(
        "spec.podTemplate changes {0}, which the operator sets and relies on; use the spec's own fields instead"
    )]
    Protected(String),
    /// The override sets a field no pod template has (a typo, or a field
    /// of a newer Kubernetes than the operator knows).
    #[error("spec.podTemplate sets {0}, which is not a field of a pod template")]
    UnknownField(String),
    /// The merged template does not parse as a pod template.
    #[error("spec.podTemplate does not give a valid pod template: {0}")]
    Invalid(String),
}

/// `template` with `patch` (`spec.podTemplate`) merged over it as the
/// module describes, once it passed the checks.
pub fn apply_override(
    template: &PodTemplateSpec,
    patch: &BTreeMap<String, Value>,
) -> Result<PodTemplateSpec, PodTemplateError> {
    if patch.is_empty() {
        return Ok(template.clone());
    }
    let invalid = |error: serde_json::Error| PodTemplateError::Invalid(error.to_string());
    let generated = serde_json::to_value(template).map_err(invalid)?;
    let mut merged = generated.clone();
    let patch = Value::Object(patch.clone().into_iter().collect::<Map<_, _>>());
    merge(&mut merged, &patch, &Path::default())?;
    check_kept(&generated, &merged)?;
    let result: PodTemplateSpec = serde_json::from_value(merged.clone()).map_err(invalid)?;
    let parsed = serde_json::to_value(&result).map_err(invalid)?;
    match unknown_field(&merged, &parsed, "") {
        Some(field) => Err(PodTemplateError::UnknownField(field)),
        None => Ok(result),
    }
}

/// Where a value is in a pod template: `schema` names the fields only (to
/// find [`KEYED_LISTS`]), `shown` names list entries by their key too (for
/// messages).
#[derive(Clone, Debug, Default)]
struct Path {
    schema: String,
    shown: String,
}

impl Path {
    fn field(&self, name: &str) -> Path {
        let join = |base: &str| {
            if base.is_empty() {
                name.to_string()
            } else {
                format!("{base}.{name}")
            }
        };
        Path {
            schema: join(&self.schema),
            shown: join(&self.shown),
        }
    }

    fn entry(&self, key: &str, id: &Value) -> Path {
        Path {
            schema: self.schema.clone(),
            shown: format!("{}[{key}={}]", self.shown, key_text(id)),
        }
    }

    fn merge_key(&self) -> Option<&'static str> {
        KEYED_LISTS
            .iter()
            .find(|(path, _)| *path == self.schema)
            .map(|(_, key)| *key)
    }
}

/// A key value as a user wrote it: strings without quotes.
fn key_text(id: &Value) -> String {
    id.as_str().map_or_else(|| id.to_string(), str::to_string)
}

/// Merges `patch` into `target` at `path`.
fn merge(target: &mut Value, patch: &Value, path: &Path) -> Result<(), PodTemplateError> {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return Ok(());
    };
    let mut fields = match target.take() {
        Value::Object(fields) => fields,
        _ => Map::new(),
    };
    for (name, value) in patch {
        let child = path.field(name);
        match (value, child.merge_key()) {
            (Value::Null, _) => {
                fields.remove(name);
            }
            (Value::Array(entries), Some(key)) => {
                let list = fields.entry(name.clone()).or_insert(Value::Null);
                merge_list(list, entries, key, &child)?;
            }
            _ => merge(
                fields.entry(name.clone()).or_insert(Value::Null),
                value,
                &child,
            )?,
        }
    }
    *target = Value::Object(fields);
    Ok(())
}

/// Merges every entry of `entries` into the entry of `list` with the same
/// `key`, or appends it.
fn merge_list(
    list: &mut Value,
    entries: &[Value],
    key: &'static str,
    path: &Path,
) -> Result<(), PodTemplateError> {
    let mut items = match list.take() {
        Value::Array(items) => items,
        _ => Vec::new(),
    };
    for (index, entry) in entries.iter().enumerate() {
        let id = entry.get(key).filter(|id| !id.is_null()).ok_or_else(|| {
            PodTemplateError::MissingKey {
                list: path.shown.clone(),
                index,
                key,
            }
        })?;
        let entry_path = path.entry(key, id);
        match items.iter_mut().find(|item| item.get(key) == Some(id)) {
            Some(item) => merge(item, entry, &entry_path)?,
            None => {
                let mut item = Value::Null;
                merge(&mut item, entry, &entry_path)?;
                items.push(item);
            }
        }
    }
    *list = Value::Array(items);
    Ok(())
}

/// Refuses a merged template that lost the node container, changed its
/// command or a generated `env`, `ports` or `volumeMounts` entry, changed a
/// generated volume, or has a volume named like the claim template.
fn check_kept(generated: &Value, merged: &Value) -> Result<(), PodTemplateError> {
    let node = |template: &Value| {
        template
            .pointer("/spec/containers")?
            .as_array()?
            .iter()
            .find(|c| c.get("name").and_then(Value::as_str) == Some(NODE_CONTAINER))
            .cloned()
    };
    let merged_node = node(merged).ok_or(PodTemplateError::NodeContainerRemoved)?;
    let generated_node = node(generated).unwrap_or_default();
    let shown = format!("spec.containers[name={NODE_CONTAINER}]");
    if merged_node.get("command") != generated_node.get("command") {
        return Err(PodTemplateError::Protected(format!("{shown}.command")));
    }
    for (list, key) in [
        ("env", "name"),
        ("ports", "containerPort"),
        ("volumeMounts", "mountPath"),
    ] {
        kept_entries(
            generated_node.get(list),
            merged_node.get(list),
            key,
            &format!("{shown}.{list}"),
        )?;
    }
    let volumes = "/spec/volumes";
    kept_entries(
        generated.pointer(volumes),
        merged.pointer(volumes),
        "name",
        "spec.volumes",
    )?;
    let named_data = |v: &Value| v.get("name").and_then(Value::as_str) == Some(DATA_VOLUME);
    if entries(merged.pointer(volumes)).iter().any(named_data) {
        return Err(PodTemplateError::Protected(format!(
            "spec.volumes[name={DATA_VOLUME}] (the name of the volume claim template)"
        )));
    }
    Ok(())
}

/// The entries of a list, none for anything else.
fn entries(list: Option<&Value>) -> &[Value] {
    list.and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

/// Refuses `merged` unless it has every entry of `generated` (identified
/// by `key`) unchanged.
fn kept_entries(
    generated: Option<&Value>,
    merged: Option<&Value>,
    key: &str,
    shown: &str,
) -> Result<(), PodTemplateError> {
    let merged = entries(merged);
    for entry in entries(generated) {
        let id = entry.get(key).unwrap_or(&Value::Null);
        if merged.iter().find(|m| m.get(key) == Some(id)) != Some(entry) {
            return Err(PodTemplateError::Protected(format!(
                "{shown}[{key}={}]",
                key_text(id)
            )));
        }
    }
    Ok(())
}

/// The first field of `given` that `parsed` (the same value parsed as a
/// pod template and written again) lacks: one the pod template types do
/// not know.
fn unknown_field(given: &Value, parsed: &Value, path: &str) -> Option<String> {
    match (given, parsed) {
        (Value::Object(given), Value::Object(parsed)) => given.iter().find_map(|(name, value)| {
            let child = if path.is_empty() {
                name.clone()
            } else {
                format!("{path}.{name}")
            };
            match parsed.get(name) {
                Some(kept) => unknown_field(value, kept, &child),
                None => Some(child),
            }
        }),
        (Value::Array(given), Value::Array(parsed)) => given
            .iter()
            .zip(parsed)
            .enumerate()
            .find_map(|(index, (value, kept))| {
                let entry = match value.get("name").and_then(Value::as_str) {
                    Some(name) => format!("name={name}"),
                    None => index.to_string(),
                };
                unknown_field(value, kept, &format!("{path}[{entry}]"))
            }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A pod template like the generated ones: the node container with an
    /// env var, the client port and a mount, the config volume and a
    /// toleration.
    fn template() -> PodTemplateSpec {
        serde_json::from_value(json!({
            "metadata": {"labels": {"app.kubernetes.io/instance": "demo"}},
            "spec": {
                "containers": [{
                    "name": "node",
                    "image": "dynamo:1",
                    "command": ["dynamo-node", "serve"],
                    "env": [{"name": "DYNAMO_ZONE", "value": "a"}],
                    "ports": [{"name": "http", "containerPort": 7000}],
                    "volumeMounts": [{"name": "config", "mountPath": "/etc/dynamo"}],
                    "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}}
                }],
                "volumes": [{"name": "config", "configMap": {"name": "demo-config"}}],
                "tolerations": [{"key": "storage", "operator": "Exists"}],
                "terminationGracePeriodSeconds": 60
            }
        }))
        .expect("template")
    }

    fn patch(value: Value) -> BTreeMap<String, Value> {
        serde_json::from_value(value).expect("patch object")
    }

    fn applied(value: Value) -> Result<Value, PodTemplateError> {
        let result = apply_override(&template(), &patch(value))?;
        Ok(serde_json::to_value(result).expect("json"))
    }

    #[test]
    fn an_empty_override_keeps_the_template() {
        assert_eq!(
            apply_override(&template(), &BTreeMap::new()),
            Ok(template())
        );
    }

    #[test]
    fn named_entries_merge_on_their_key_and_other_lists_are_replaced() {
        let result = applied(json!({
            "metadata": {"labels": {"team": "storage"}},
            "spec": {
                "containers": [
                    {
                        "name": "node",
                        "env": [{"name": "RUST_LOG", "value": "debug"}],
                        "ports": [{"name": "metrics", "containerPort": 9100}],
                        "resources": {"limits": {"memory": "2Gi"}}
                    },
                    {"name": "exporter", "image": "exporter:1"}
                ],
                "volumes": [{"name": "scratch", "emptyDir": {}}],
                "tolerations": [{"key": "dedicated", "operator": "Exists"}]
            }
        }))
        .expect("applies");
        let containers = result["spec"]["containers"].as_array().expect("containers");
        let names: Vec<&str> = containers
            .iter()
            .filter_map(|c| c["name"].as_str())
            .collect();
        assert_eq!(names, ["node", "exporter"], "a sidecar is appended");
        let node = &containers[0];
        assert_eq!(
            node["env"],
            json!([
                {"name": "DYNAMO_ZONE", "value": "a"},
                {"name": "RUST_LOG", "value": "debug"}
            ])
        );
        assert_eq!(node["ports"].as_array().map(Vec::len), Some(2));
        assert_eq!(node["resources"]["limits"]["memory"], "2Gi");
        assert_eq!(node["command"], json!(["dynamo-node", "serve"]));
        let volumes: Vec<&str> = result["spec"]["volumes"]
            .as_array()
            .expect("volumes")
            .iter()
            .filter_map(|v| v["name"].as_str())
            .collect();
        assert_eq!(volumes, ["config", "scratch"]);
        assert_eq!(
            result["spec"]["tolerations"],
            json!([{"key": "dedicated", "operator": "Exists"}]),
            "lists without a merge key are replaced"
        );
        assert_eq!(
            result["metadata"]["labels"],
            json!({"app.kubernetes.io/instance": "demo", "team": "storage"})
        );
    }

    #[test]
    fn null_removes_a_field_and_scalars_replace() {
        let result = applied(json!({
            "spec": {
                "terminationGracePeriodSeconds": 120,
                "containers": [{"name": "node", "livenessProbe": null, "args": ["--verbose"]}]
            }
        }))
        .expect("applies");
        assert_eq!(result["spec"]["terminationGracePeriodSeconds"], 120);
        let node = &result["spec"]["containers"][0];
        assert!(node.get("livenessProbe").is_none(), "{node}");
        assert_eq!(node["args"], json!(["--verbose"]));
    }

    #[test]
    fn an_entry_without_its_key_is_refused() {
        assert_eq!(
            applied(json!({"spec": {"containers": [{"image": "other:1"}]}})),
            Err(PodTemplateError::MissingKey {
                list: "spec.containers".into(),
                index: 0,
                key: "name",
            })
        );
        let error = applied(json!({
            "spec": {"containers": [{"name": "node", "env": [{"name": "A"}, {"value": "x"}]}]}
        }))
        .expect_err("refused");
        assert_eq!(
            error.to_string(),
            "spec.podTemplate.spec.containers[name=node].env[1] must be an object with a \"name\" to merge on"
        );
    }

    #[test]
    fn changes_to_what_the_operator_relies_on_are_refused() {
        let protected = |what: &str| Err(PodTemplateError::Protected(what.into()));
        let cases = [
            (
                json!({"spec": {"containers": null}}),
                Err(PodTemplateError::NodeContainerRemoved),
            ),
            (
                json!({"spec": {"containers": {"name": "node"}}}),
                Err(PodTemplateError::NodeContainerRemoved),
            ),
            (
                json!({"spec": {"containers": [{"name": "node", "command": ["sh"]}]}}),
                protected("spec.containers[name=node].command"),
            ),
            (
                json!({"spec": {"containers": [{"name": "node", "env": [{"name": "DYNAMO_ZONE", "value": "b"}]}]}}),
                protected("spec.containers[name=node].env[name=DYNAMO_ZONE]"),
            ),
            (
                json!({"spec": {"containers": [{"name": "node", "env": []}]}}),
                Ok(()),
            ),
            (
                json!({"spec": {"containers": [{"name": "node", "ports": [{"containerPort": 7000, "name": "web"}]}]}}),
                protected("spec.containers[name=node].ports[containerPort=7000]"),
            ),
            (
                json!({"spec": {"containers": [{"name": "node", "volumeMounts": [{"mountPath": "/etc/dynamo", "readOnly": false}]}]}}),
                protected("spec.containers[name=node].volumeMounts[mountPath=/etc/dynamo]"),
            ),
            (
                json!({"spec": {"volumes": [{"name": "config", "configMap": {"name": "other"}}]}}),
                protected("spec.volumes[name=config]"),
            ),
            (
                json!({"spec": {"volumes": [{"name": "data", "emptyDir": {}}]}}),
                protected("spec.volumes[name=data] (the name of the volume claim template)"),
            ),
        ];
        for (patch, expected) in cases {
            assert_eq!(applied(patch.clone()).map(|_| ()), expected, "{patch}");
        }
    }

    #[test]
    fn a_field_no_pod_template_has_is_refused() {
        assert_eq!(
            applied(json!({"spec": {"containers": [{"name": "node", "resource": {}}]}})),
            Err(PodTemplateError::UnknownField(
                "spec.containers[name=node].resource".into()
            ))
        );
        assert_eq!(
            applied(json!({"sepc": {}})),
            Err(PodTemplateError::UnknownField("sepc".into()))
        );
    }

    #[test]
    fn a_value_of_the_wrong_type_is_refused() {
        let error = applied(json!({"spec": {"terminationGracePeriodSeconds": "long"}}))
            .expect_err("refused");
        assert!(
            matches!(&error, PodTemplateError::Invalid(m) if m.contains("invalid type")),
            "{error}"
        );
    }
}
