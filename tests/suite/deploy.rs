//! What can be checked of deploy/ without a cluster: the Kubernetes
//! manifests parse and hold what a Deployment of recast needs, the config
//! they carry is valid, and every metric the dashboard and alerts query is
//! one `/metrics` really exports.

use std::path::Path;

use serde::Deserialize;
use serde_yaml::Value;

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn manifests() -> Vec<Value> {
    serde_yaml::Deserializer::from_str(&read("deploy/kubernetes/recast-cart.yaml"))
        .map(|doc| Value::deserialize(doc).expect("valid YAML"))
        .collect()
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind}"))
}

#[test]
fn the_deployment_has_what_recast_needs() {
    let docs = manifests();
    let deployment = of_kind(&docs, "Deployment");
    let spec = &deployment["spec"];
    assert!(
        spec["replicas"].as_u64().unwrap() >= 2,
        "replicas share the group"
    );
    assert_eq!(
        spec["selector"]["matchLabels"],
        spec["template"]["metadata"]["labels"]
    );
    let container = &spec["template"]["spec"]["containers"][0];
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["ports"][0]["containerPort"], 9464);
    assert!(container["resources"]["requests"]["cpu"].is_string());
    let mounts: Vec<&str> = container["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|m| m["mountPath"].as_str().unwrap())
        .collect();
    for path in [
        "/etc/recast/config",
        "/etc/recast/transforms",
        "/etc/recast/schemas",
    ] {
        assert!(mounts.contains(&path), "{path} not mounted: {mounts:?}");
    }
    let args: Vec<&str> = container["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(args.contains(&"/etc/recast/config/recast.toml"), "{args:?}");
    // The restricted Pod Security Standard.
    let pod = &spec["template"]["spec"]["securityContext"];
    assert_eq!(pod["runAsNonRoot"], true);
    assert!(pod["runAsUser"].as_u64().unwrap() > 0);
    assert_eq!(pod["seccompProfile"]["type"], "RuntimeDefault");
    let own = &container["securityContext"];
    assert_eq!(own["allowPrivilegeEscalation"], false);
    assert_eq!(own["readOnlyRootFilesystem"], true);
    assert_eq!(own["capabilities"]["drop"][0], "ALL");
    assert_eq!(
        pod["runAsUser"].as_u64().unwrap().to_string(),
        read("deploy/Dockerfile")
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("USER "))
            .and_then(|u| u.split(':').next())
            .unwrap(),
        "the pod runs as the image's user"
    );
    let pdb = of_kind(&docs, "PodDisruptionBudget");
    assert_eq!(
        pdb["spec"]["selector"]["matchLabels"],
        spec["selector"]["matchLabels"]
    );
}

/// The config map's configuration, laid out as the pod mounts it next to
/// the repository's transforms and schemas, loads: keys valid, transform
/// and schema paths right.
#[test]
fn the_configmap_carries_a_valid_configuration() {
    let docs = manifests();
    let text = of_kind(&docs, "ConfigMap")["data"]["recast.toml"]
        .as_str()
        .unwrap();
    let etc = tempfile::tempdir().unwrap();
    let (config_dir, transforms_dir) = (etc.path().join("config"), etc.path().join("transforms"));
    std::fs::create_dir_all(&config_dir).unwrap();
    std::fs::create_dir_all(&transforms_dir).unwrap();
    std::fs::write(config_dir.join("recast.toml"), text).unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("transforms");
    for entry in std::fs::read_dir(&shipped).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml" || e == "rhai") {
            std::fs::copy(&path, transforms_dir.join(path.file_name().unwrap())).unwrap();
        }
    }
    let schemas_dir = etc.path().join("schemas");
    std::fs::create_dir_all(&schemas_dir).unwrap();
    let schemas = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
    for dir in [schemas.clone(), schemas.join("cart")] {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "avsc") {
                std::fs::copy(&path, schemas_dir.join(path.file_name().unwrap())).unwrap();
            }
        }
    }
    let env = [
        ("RECAST_KAFKA__INSTANCE_ID", "recast-cart-0"),
        ("RECAST_MAPPING__HASH_KEY", "a-secret-of-at-least-16-bytes"),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()));
    recast::Config::load(Some(&config_dir.join("recast.toml")), env)
        .expect("the ConfigMap's recast.toml is valid");
}

/// Every `recast_…` metric an expression names, without histogram suffixes.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("recast_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(&name);
        names.push(base.to_owned());
    }
    names
}

#[test]
fn the_dashboard_and_alerts_query_exported_metrics() {
    let dashboard: serde_json::Value =
        serde_json::from_str(&read("deploy/grafana/recast-dashboard.json")).unwrap();
    let mut exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().iter())
        .map(|t| t["expr"].as_str().unwrap().to_owned())
        .collect();
    let alerts: Value =
        serde_yaml::from_str(&read("deploy/prometheus/recast-alerts.yaml")).unwrap();
    for rule in alerts["groups"][0]["rules"].as_sequence().unwrap() {
        exprs.push(rule["expr"].as_str().unwrap().to_owned());
    }
    assert!(exprs.len() >= 10);
    for expr in &exprs {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "{expr}");
        for name in names {
            assert!(
                recast::METRIC_NAMES.contains(&name.as_str()),
                "{name} (in `{expr}`) is not exported"
            );
        }
    }
}

/// The Dockerfile, checked the way a linter would (no Docker engine here
/// to build it): pinned bases, a numeric non-root user, a dependency
/// layer, OCI labels, and a build context without the build's own output.
#[test]
fn the_dockerfile_follows_the_image_rules() {
    let dockerfile = read("deploy/Dockerfile");
    let instructions: Vec<&str> = dockerfile
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let bases: Vec<&str> = instructions
        .iter()
        .filter_map(|l| l.strip_prefix("FROM "))
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert!(!bases.is_empty());
    for base in &bases {
        let (_, tag) = base
            .split_once(':')
            .unwrap_or_else(|| panic!("{base}: no tag"));
        assert!(
            tag != "latest" && tag.chars().any(|c| c.is_ascii_digit()),
            "{base}: not pinned"
        );
    }
    let last_user = instructions
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER");
    let ids: Vec<u32> = last_user
        .split(':')
        .map(|id| {
            id.parse()
                .unwrap_or_else(|_| panic!("USER {last_user}: not numeric"))
        })
        .collect();
    assert!(ids.iter().all(|id| *id != 0), "USER {last_user}: root");
    let position = |needle: &str| {
        instructions
            .iter()
            .position(|l| l.starts_with(needle))
            .unwrap_or_else(|| panic!("no `{needle}`"))
    };
    assert!(
        position("COPY Cargo.toml Cargo.lock") < position("COPY . ."),
        "dependencies are not built in a layer of their own"
    );
    for label in [
        "org.opencontainers.image.source",
        "org.opencontainers.image.revision",
    ] {
        assert!(dockerfile.contains(label), "no {label} label");
    }
    let ignored = read(".dockerignore");
    for path in ["target/", ".git/"] {
        assert!(
            ignored.lines().any(|l| l.trim() == path),
            ".dockerignore lacks {path}"
        );
    }
}

#[test]
fn the_version_names_the_revision() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_recast"))
        .arg("--version")
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let revision = text
        .trim()
        .strip_prefix(concat!("recast ", env!("CARGO_PKG_VERSION"), " ("))
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        revision == "unknown" || revision.chars().all(|c| c.is_ascii_hexdigit()),
        "{text}"
    );
}
