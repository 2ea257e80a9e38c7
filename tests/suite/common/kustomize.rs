//! Just enough of kustomize to build `deploy/kubernetes/` as `kubectl apply
//! -k` would, there being no kubectl here: resources (files and
//! directories), components, `configMapGenerator` with a content hash in
//! the name and the references to it rewritten, strategic-merge patches on
//! a target, and `labels`. A kustomization using anything else fails the
//! build, so no manifest can rely on a feature these tests do not model;
//! files from outside a kustomization's directory fail it too, as
//! kustomize's load restrictor makes them.
//!
//! The hash is a content hash like kustomize's, not the same digits.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_yaml::{Mapping, Value};
use sha2::{Digest, Sha256};

/// What a kustomization produced: the resources, and each generated
/// `ConfigMap`'s name as written (before its hash) with the name it got.
#[derive(Debug, Default)]
pub(crate) struct Build {
    pub(crate) resources: Vec<Value>,
    pub(crate) generated: BTreeMap<String, String>,
}

impl Build {
    pub(crate) fn of_kind(&self, kind: &str) -> &Value {
        self.resources
            .iter()
            .find(|r| r["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind} in the build"))
    }

    /// The `ConfigMap` generated under `name`.
    pub(crate) fn config_map(&self, name: &str) -> &Value {
        let hashed = &self.generated[name];
        self.resources
            .iter()
            .find(|r| r["kind"] == "ConfigMap" && r["metadata"]["name"] == hashed.as_str())
            .unwrap_or_else(|| panic!("no ConfigMap {hashed}"))
    }
}

/// Builds the kustomization in `dir`, as `kubectl kustomize dir` would.
pub(crate) fn build(dir: &Path) -> Result<Build, String> {
    let mut build = Build::default();
    accumulate(dir, "Kustomization", &mut build)?;
    for resource in &mut build.resources {
        rename_references(resource, &build.generated);
    }
    Ok(build)
}

const KNOWN_KEYS: &[&str] = &[
    "apiVersion",
    "kind",
    "resources",
    "components",
    "configMapGenerator",
    "patches",
    "labels",
];

/// kustomize's order: resources, generators, components, then this
/// kustomization's own transformers over everything accumulated so far.
fn accumulate(dir: &Path, kind: &str, build: &mut Build) -> Result<(), String> {
    let file = dir.join("kustomization.yaml");
    let text = std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
    let k: Value = serde_yaml::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?;
    if k["kind"] != kind {
        return Err(format!(
            "{}: kind {:?}, not {kind}",
            file.display(),
            k["kind"]
        ));
    }
    for key in k.as_mapping().into_iter().flat_map(Mapping::keys) {
        let key = key.as_str().unwrap_or_default();
        if !KNOWN_KEYS.contains(&key) {
            return Err(format!("{}: `{key}` is not modelled", file.display()));
        }
    }
    for resource in strings(&k["resources"]) {
        let path = dir.join(resource);
        if path.is_dir() {
            accumulate(&path, "Kustomization", build)?;
        } else {
            let text = std::fs::read_to_string(restricted(dir, resource)?)
                .map_err(|e| format!("{resource}: {e}"))?;
            for doc in serde_yaml::Deserializer::from_str(&text) {
                build
                    .resources
                    .push(Value::deserialize(doc).map_err(|e| format!("{resource}: {e}"))?);
            }
        }
    }
    for generator in k["configMapGenerator"].as_sequence().into_iter().flatten() {
        generate(dir, generator, build)?;
    }
    for component in strings(&k["components"]) {
        accumulate(&dir.join(component), "Component", build)?;
    }
    for patch in k["patches"].as_sequence().into_iter().flatten() {
        apply_patch(dir, patch, &mut build.resources)?;
    }
    for labels in k["labels"].as_sequence().into_iter().flatten() {
        add_labels(labels, &mut build.resources);
    }
    Ok(())
}

fn strings(list: &Value) -> impl Iterator<Item = &str> {
    list.as_sequence()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

/// `path` if it is inside `dir`: kustomize's default load restrictor.
fn restricted(dir: &Path, path: &str) -> Result<PathBuf, String> {
    let root = dir
        .canonicalize()
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    let file = dir
        .join(path)
        .canonicalize()
        .map_err(|e| format!("{path}: {e}"))?;
    if file.starts_with(&root) {
        Ok(file)
    } else {
        Err(format!(
            "security; file '{}' is not in or below '{}'",
            file.display(),
            root.display()
        ))
    }
}

fn generate(dir: &Path, generator: &Value, build: &mut Build) -> Result<(), String> {
    let name = generator["name"]
        .as_str()
        .ok_or("a generator without a name")?;
    let mut data = BTreeMap::new();
    for entry in strings(&generator["files"]) {
        let (key, path) = entry.split_once('=').unwrap_or_else(|| {
            (
                entry
                    .rsplit('/')
                    .next()
                    .expect("rsplit yields at least one"),
                entry,
            )
        });
        let text =
            std::fs::read_to_string(restricted(dir, path)?).map_err(|e| format!("{path}: {e}"))?;
        if data.insert(key.to_owned(), text).is_some() {
            return Err(format!("{name}: key {key} twice"));
        }
    }
    let mut hash = Sha256::new();
    for (key, text) in &data {
        hash.update(key.as_bytes());
        hash.update([0]);
        hash.update(text.as_bytes());
        hash.update([0]);
    }
    let hashed = format!("{name}-{}", &hex::encode(hash.finalize())[..10]);
    let doc = serde_yaml::to_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": hashed},
        "data": data,
    }))
    .expect("a ConfigMap is YAML");
    build.resources.push(doc);
    build.generated.insert(name.to_owned(), hashed);
    Ok(())
}

fn apply_patch(dir: &Path, patch: &Value, resources: &mut [Value]) -> Result<(), String> {
    let text = match (patch["path"].as_str(), patch["patch"].as_str()) {
        (Some(file), None) => {
            std::fs::read_to_string(restricted(dir, file)?).map_err(|e| format!("{file}: {e}"))?
        }
        (None, Some(inline)) => inline.to_owned(),
        _ => return Err("a patch needs one of `path` and `patch`".to_owned()),
    };
    let body: Value = serde_yaml::from_str(&text).map_err(|e| e.to_string())?;
    let target = &patch["target"];
    let kinds = regex::Regex::new(&format!(
        "^(?:{})$",
        target["kind"].as_str().unwrap_or(".*")
    ))
    .map_err(|e| e.to_string())?;
    let mut matched = 0;
    for resource in resources.iter_mut() {
        let group = resource["apiVersion"]
            .as_str()
            .and_then(|v| v.rsplit_once('/'))
            .map_or("", |(group, _)| group);
        let wanted = target["group"].as_str().is_none_or(|g| g == group)
            && kinds.is_match(resource["kind"].as_str().unwrap_or_default())
            && target["name"]
                .as_str()
                .is_none_or(|n| resource["metadata"]["name"] == n);
        if wanted {
            // The target names what is patched; the body's own kind and name
            // are ignored, as kustomize does.
            let mut spec = body.clone();
            if let Some(map) = spec.as_mapping_mut() {
                for key in ["apiVersion", "kind", "metadata"] {
                    map.remove(key);
                }
            }
            merge(resource, &spec, "");
            matched += 1;
        }
    }
    if matched == 0 {
        return Err(format!("patch target {target:?} matches nothing"));
    }
    Ok(())
}

/// The key items of a Kubernetes list merge on, in a strategic merge; lists
/// without one are replaced whole.
fn merge_key(field: &str) -> Option<&'static str> {
    match field {
        "containers" | "initContainers" | "env" | "volumes" => Some("name"),
        "volumeMounts" => Some("mountPath"),
        "ports" => Some("containerPort"),
        "topologySpreadConstraints" => Some("topologyKey"),
        _ => None,
    }
}

/// A strategic merge of `patch` into `target`: maps merge key by key (a
/// null deletes), lists with a merge key merge item by item.
fn merge(target: &mut Value, patch: &Value, field: &str) {
    match (target, patch) {
        (Value::Mapping(target), Value::Mapping(patch)) => {
            for (key, value) in patch {
                if value.is_null() {
                    target.remove(key);
                } else if let Some(existing) = target.get_mut(key) {
                    merge(existing, value, key.as_str().unwrap_or_default());
                } else {
                    target.insert(key.clone(), value.clone());
                }
            }
        }
        (Value::Sequence(target), Value::Sequence(patch)) if merge_key(field).is_some() => {
            let key = merge_key(field).expect("checked");
            for item in patch {
                match target.iter_mut().find(|t| t[key] == item[key]) {
                    Some(existing) => merge(existing, item, ""),
                    None => target.push(item.clone()),
                }
            }
        }
        (target, patch) => *target = patch.clone(),
    }
}

fn add_labels(labels: &Value, resources: &mut [Value]) {
    let pairs = labels["pairs"].as_mapping().cloned().unwrap_or_default();
    let templates = labels["includeTemplates"] == true;
    for resource in resources {
        let mut places = vec![vec!["metadata", "labels"]];
        if templates && resource["spec"]["template"].is_mapping() {
            places.push(vec!["spec", "template", "metadata", "labels"]);
        }
        for place in places {
            let mut at = &mut *resource;
            for step in place {
                let map = at.as_mapping_mut().expect("a resource is a map");
                at = map
                    .entry(Value::from(step))
                    .or_insert_with(|| Value::Mapping(Mapping::new()));
            }
            let map = at.as_mapping_mut().expect("labels are a map");
            for (k, v) in &pairs {
                map.insert(k.clone(), v.clone());
            }
        }
    }
}

/// Points a pod's references to generated `ConfigMap`s at the hashed names.
fn rename_references(resource: &mut Value, generated: &BTreeMap<String, String>) {
    let rename = |name: Option<&mut Value>| {
        if let Some(name) = name
            && let Some(hashed) = name.as_str().and_then(|n| generated.get(n))
        {
            *name = Value::from(hashed.as_str());
        }
    };
    let Some(pod) = at(resource, &["spec", "template", "spec"]) else {
        return;
    };
    for volume in list(pod, "volumes") {
        rename(at(volume, &["configMap", "name"]));
    }
    for container in list(pod, "containers") {
        for env in list(container, "env") {
            rename(at(env, &["valueFrom", "configMapKeyRef", "name"]));
        }
        for from in list(container, "envFrom") {
            rename(at(from, &["configMapRef", "name"]));
        }
    }
}

/// The value at `path`, if there is one (indexing a `Value` mutably would
/// insert what is missing).
fn at<'a>(value: &'a mut Value, path: &[&str]) -> Option<&'a mut Value> {
    path.iter().try_fold(value, |v, step| v.get_mut(*step))
}

fn list<'a>(value: &'a mut Value, field: &str) -> impl Iterator<Item = &'a mut Value> {
    at(value, &[field])
        .and_then(Value::as_sequence_mut)
        .into_iter()
        .flatten()
}
