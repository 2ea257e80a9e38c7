//! What can be checked of deploy/ without a cluster: the Kubernetes
//! overlays build (with the harness's model of kustomize) into what a
//! restricted namespace admits and recast needs, the configuration they
//! generate is valid and a changed mapping rolls the pods, every metric
//! the dashboard, alerts and autoscaler query is one `/metrics` really
//! exports, and the image and compose files follow their rules.

use std::path::{Path, PathBuf};

use serde_yaml::Value;

use crate::common::kustomize::{self, Build};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap()
}

fn overlay(name: &str) -> Build {
    kustomize::build(&repo().join("deploy/kubernetes/overlays").join(name))
        .unwrap_or_else(|e| panic!("overlay {name}: {e}"))
}

fn texts(list: &Value) -> Vec<&str> {
    list.as_sequence()
        .unwrap_or_else(|| panic!("not a list: {list:?}"))
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect()
}

/// The restricted Pod Security Standard, the probes, and what the pod
/// mounts: every overlay's workload has them.
fn check_pod(build: &Build, workload: &Value) {
    let pod = &workload["spec"]["template"]["spec"];
    let security = &pod["securityContext"];
    assert_eq!(security["runAsNonRoot"], true);
    assert_eq!(security["seccompProfile"]["type"], "RuntimeDefault");
    assert_eq!(pod["automountServiceAccountToken"], false);
    let user = read("deploy/Dockerfile")
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("USER ").map(str::to_owned))
        .unwrap();
    assert_eq!(
        format!(
            "{}:{}",
            security["runAsUser"].as_u64().unwrap(),
            security["runAsGroup"].as_u64().unwrap()
        ),
        user,
        "the pod runs as the image's numeric user and group"
    );
    let container = &pod["containers"][0];
    let own = &container["securityContext"];
    assert_eq!(own["allowPrivilegeEscalation"], false);
    assert_eq!(own["readOnlyRootFilesystem"], true);
    assert_eq!(texts(&own["capabilities"]["drop"]), ["ALL"]);
    assert!(
        container["image"]
            .as_str()
            .unwrap()
            .rsplit_once(':')
            .is_some_and(|(_, tag)| tag != "latest")
    );
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["ports"][0]["containerPort"], 9464);
    assert!(container["resources"]["requests"]["cpu"].is_string());
    assert!(container["resources"]["limits"]["memory"].is_string());
    assert!(texts(&container["args"]).contains(&"/etc/recast/config/recast.toml"));
    // Every ConfigMap mounted is a generated one, under its hashed name.
    for volume in pod["volumes"].as_sequence().unwrap() {
        if let Some(name) = volume["configMap"]["name"].as_str() {
            assert!(
                build.generated.values().any(|hashed| hashed == name),
                "{name} is not a generated ConfigMap: {:?}",
                build.generated
            );
        }
    }
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
        "/etc/recast/secrets",
    ] {
        assert!(mounts.contains(&path), "{path} not mounted: {mounts:?}");
    }
    // Secrets come from the mounted Secret's files, never as values.
    for env in container["env"].as_sequence().unwrap() {
        let name = env["name"].as_str().unwrap();
        assert!(
            env["valueFrom"]["secretKeyRef"].is_null(),
            "{name} puts a secret in the environment"
        );
        if name.ends_with("_FILE") {
            assert!(
                env["value"]
                    .as_str()
                    .unwrap()
                    .starts_with("/etc/recast/secrets/"),
                "{name}"
            );
        }
    }
}

/// Every resource has the recommended labels, and every selector selects
/// the workload's pods.
fn check_labels(build: &Build, workload: &Value) {
    let pod_labels = &workload["spec"]["template"]["metadata"]["labels"];
    for resource in &build.resources {
        let labels = &resource["metadata"]["labels"];
        for key in [
            "name",
            "instance",
            "version",
            "component",
            "part-of",
            "managed-by",
        ] {
            assert!(
                labels[format!("app.kubernetes.io/{key}").as_str()].is_string(),
                "{} {} lacks app.kubernetes.io/{key}",
                resource["kind"].as_str().unwrap(),
                resource["metadata"]["name"].as_str().unwrap()
            );
        }
    }
    let selects = |selector: &Value, what: &str| {
        let selector = selector
            .as_mapping()
            .unwrap_or_else(|| panic!("{what}: no selector"));
        assert!(!selector.is_empty());
        for (k, v) in selector {
            assert_eq!(
                &pod_labels[k], v,
                "{what} selects {k:?}={v:?}, which the pods lack"
            );
        }
    };
    selects(&workload["spec"]["selector"]["matchLabels"], "the workload");
    selects(&build.of_kind("Service")["spec"]["selector"], "the Service");
    selects(
        &build.of_kind("PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
        "the PDB",
    );
    selects(
        &build.of_kind("PodMonitor")["spec"]["selector"]["matchLabels"],
        "the PodMonitor",
    );
    let spread = &workload["spec"]["template"]["spec"]["topologySpreadConstraints"][0];
    assert_eq!(spread["topologyKey"], "kubernetes.io/hostname");
    selects(
        &spread["labelSelector"]["matchLabels"],
        "the topology spread",
    );
    let monitor = &build.of_kind("PodMonitor")["spec"]["podMetricsEndpoints"][0];
    assert_eq!(monitor["path"], "/metrics");
    assert_eq!(
        monitor["port"],
        workload["spec"]["template"]["spec"]["containers"][0]["ports"][0]["name"]
    );
}

fn env_of(workload: &Value) -> Vec<(String, Value)> {
    workload["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap().to_owned(), e["value"].clone()))
        .collect()
}

#[test]
fn the_statefulset_overlay_has_stable_instances_and_a_restricted_pod() {
    let build = overlay("statefulset");
    let set = build.of_kind("StatefulSet");
    check_pod(&build, set);
    check_labels(&build, set);
    let spec = &set["spec"];
    assert!(
        spec["replicas"].as_u64().unwrap() >= 2,
        "replicas share the group"
    );
    assert_eq!(spec["podManagementPolicy"], "Parallel");
    let service = build.of_kind("Service");
    assert_eq!(spec["serviceName"], service["metadata"]["name"]);
    assert_eq!(
        service["spec"]["clusterIP"], "None",
        "a StatefulSet's service is headless"
    );
    let env = env_of(set);
    assert!(env.contains(&(
        "RECAST_KAFKA__STATIC_MEMBERSHIP".to_owned(),
        Value::from("true")
    )));
    // The instance id is the pod's name: stable in a StatefulSet.
    let id = set["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "RECAST_KAFKA__INSTANCE_ID")
        .expect("an instance id");
    assert_eq!(id["valueFrom"]["fieldRef"]["fieldPath"], "metadata.name");
}

#[test]
fn the_deployment_overlay_has_the_same_pod_without_static_membership() {
    let build = overlay("deployment");
    let deployment = build.of_kind("Deployment");
    check_pod(&build, deployment);
    check_labels(&build, deployment);
    assert!(
        !env_of(deployment)
            .iter()
            .any(|(name, _)| name == "RECAST_KAFKA__STATIC_MEMBERSHIP"),
        "a Deployment's pod names change: static membership would hold partitions for a gone pod"
    );
    let stateful = overlay("statefulset");
    assert_eq!(
        deployment["spec"]["template"]["spec"]["securityContext"],
        stateful.of_kind("StatefulSet")["spec"]["template"]["spec"]["securityContext"]
    );
}

/// Lays the generated `ConfigMap`s and a stand-in Secret out as the pod
/// mounts them, under a temporary /etc/recast, and loads the configuration
/// with the pod's environment: keys valid, transform and schema paths
/// right, secrets read from their files.
#[test]
fn the_generated_configuration_loads_as_the_pod_mounts_it() {
    let build = overlay("statefulset");
    let etc = tempfile::tempdir().unwrap();
    let set = build.of_kind("StatefulSet");
    let pod = &set["spec"]["template"]["spec"];
    let mounts = pod["containers"][0]["volumeMounts"].as_sequence().unwrap();
    let volumes = pod["volumes"].as_sequence().unwrap();
    let mounted = |path: &str| -> PathBuf {
        etc.path().join(
            path.strip_prefix("/etc/recast/")
                .unwrap_or_else(|| panic!("{path}")),
        )
    };
    for mount in mounts {
        let dir = mounted(mount["mountPath"].as_str().unwrap());
        std::fs::create_dir_all(&dir).unwrap();
        let volume = volumes.iter().find(|v| v["name"] == mount["name"]).unwrap();
        if let Some(name) = volume["configMap"]["name"].as_str() {
            let map = build
                .resources
                .iter()
                .find(|r| r["kind"] == "ConfigMap" && r["metadata"]["name"] == name)
                .unwrap();
            for (key, text) in map["data"].as_mapping().unwrap() {
                std::fs::write(dir.join(key.as_str().unwrap()), text.as_str().unwrap()).unwrap();
            }
        }
    }
    let mut env = vec![(
        "RECAST_KAFKA__INSTANCE_ID".to_owned(),
        "recast-cart-0".to_owned(),
    )];
    for (name, value) in env_of(set) {
        let Some(value) = value.as_str() else {
            continue;
        };
        if name.ends_with("_FILE") {
            let file = mounted(value);
            std::fs::write(&file, "a-secret-of-at-least-16-bytes\n").unwrap();
            env.push((name, file.display().to_string()));
        } else {
            env.push((name, value.to_owned()));
        }
    }
    let config = recast::Config::load(Some(&mounted("/etc/recast/config/recast.toml")), env)
        .expect("the generated recast.toml is valid with the pod's files and environment");
    let text = config.effective();
    assert!(text.contains("static_membership = true"), "{text}");
    assert!(
        !text.contains("a-secret-of-at-least-16-bytes"),
        "a secret shown: {text}"
    );
}

/// A changed transform is a new `ConfigMap` name in the pod template, which
/// makes Kubernetes roll the pods; the other maps keep theirs.
#[test]
fn a_changed_mapping_rolls_the_pods() {
    let copy = copy_of_deploy();
    let build = |root: &Path| {
        kustomize::build(&root.join("deploy/kubernetes/overlays/statefulset")).unwrap()
    };
    let before = build(copy.path());
    let cart = copy.path().join("transforms/cart.toml");
    let mut text = std::fs::read_to_string(&cart).unwrap();
    text.push_str("\n# a changed mapping\n");
    std::fs::write(&cart, text).unwrap();
    let after = build(copy.path());
    let template = |b: &Build| b.of_kind("StatefulSet")["spec"]["template"].clone();
    assert_ne!(
        template(&before),
        template(&after),
        "the pod template did not change"
    );
    assert_ne!(
        before.generated["recast-cart-transforms"],
        after.generated["recast-cart-transforms"]
    );
    assert_eq!(
        before.generated["recast-cart-schemas"],
        after.generated["recast-cart-schemas"]
    );
    assert_eq!(
        before.generated["recast-cart-config"],
        after.generated["recast-cart-config"]
    );
}

/// deploy/kubernetes and what it generates `ConfigMap`s from, copied.
fn copy_of_deploy() -> tempfile::TempDir {
    let copy = tempfile::tempdir().unwrap();
    for dir in ["deploy/kubernetes", "transforms", "schemas"] {
        copy_tree(&repo().join(dir), &copy.path().join(dir));
    }
    copy
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_tree(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

/// schemas/kustomization.yaml lists the files one by one (kustomize has no
/// globs): a schema added to cart/ and not there would be missing in the
/// pod.
#[test]
fn every_cart_schema_is_in_the_generated_map() {
    let build = overlay("statefulset");
    let map = build.config_map("recast-cart-schemas");
    let mut wanted = vec!["header.avsc".to_owned()];
    for entry in std::fs::read_dir(repo().join("schemas/cart")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "avsc") {
            wanted.push(path.file_name().unwrap().to_str().unwrap().to_owned());
        }
    }
    for name in wanted {
        assert!(
            map["data"][name.as_str()].is_string(),
            "{name} is not in recast-cart-schemas"
        );
    }
}

/// With KEDA, the `StatefulSet` scales on recast's own lag metric (measured
/// against the last stable offset), and the replica count is left to it.
#[test]
fn the_autoscaling_component_scales_the_statefulset_on_recast_lag() {
    // Added to the overlay as its comment says.
    let copy = copy_of_deploy();
    let overlay = copy.path().join("deploy/kubernetes/overlays/statefulset");
    let kustomization = std::fs::read_to_string(overlay.join("kustomization.yaml")).unwrap();
    let monitoring = "  - ../../components/monitoring\n";
    assert!(kustomization.contains(monitoring));
    std::fs::write(
        overlay.join("kustomization.yaml"),
        kustomization.replace(
            monitoring,
            &format!("{monitoring}  - ../../components/autoscaling\n"),
        ),
    )
    .unwrap();
    let build = kustomize::build(&overlay).unwrap();
    let scaled = build.of_kind("ScaledObject");
    let set = build.of_kind("StatefulSet");
    check_labels(&build, set);
    let target = &scaled["spec"]["scaleTargetRef"];
    assert_eq!(target["kind"], "StatefulSet");
    assert_eq!(target["name"], set["metadata"]["name"]);
    assert!(
        set["spec"]["replicas"].is_null(),
        "a re-apply would reset KEDA's replica count"
    );
    assert!(
        scaled["spec"]["minReplicaCount"].as_u64().unwrap() >= 1,
        "nothing measures lag at zero replicas"
    );
    let trigger = &scaled["spec"]["triggers"][0];
    assert_eq!(trigger["type"], "prometheus");
    let query = trigger["metadata"]["query"].as_str().unwrap();
    assert_eq!(metric_names(query), ["recast_consumer_lag"]);
    let config: toml::Table = build.config_map("recast-cart-config")["data"]["recast.toml"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        query.contains(&format!(
            "topic=\"{}\"",
            config["topics"]["legacy"].as_str().unwrap()
        )),
        "{query} is not this instance's legacy topic"
    );
}

/// The model of kustomize refuses what kustomize refuses, so the builds
/// above mean something: files from outside a kustomization's directory,
/// and fields it does not model.
#[test]
fn the_kustomize_model_refuses_what_it_does_not_know() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base");
    std::fs::create_dir_all(&base).unwrap();
    std::fs::write(dir.path().join("outside.toml"), "").unwrap();
    let write = |text: &str| std::fs::write(base.join("kustomization.yaml"), text).unwrap();
    write("kind: Kustomization\nconfigMapGenerator: [{name: c, files: [../outside.toml]}]\n");
    let refused = kustomize::build(&base).unwrap_err();
    assert!(refused.contains("is not in or below"), "{refused}");
    write("kind: Kustomization\nnamePrefix: cart-\n");
    let refused = kustomize::build(&base).unwrap_err();
    assert!(
        refused.contains("`namePrefix` is not modelled"),
        "{refused}"
    );
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
    let alerts: Value = serde_yaml::from_str(&read(
        "deploy/kubernetes/components/monitoring/prometheusrule.yaml",
    ))
    .unwrap();
    for rule in alerts["spec"]["groups"][0]["rules"].as_sequence().unwrap() {
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
    // The image speaks every mechanism docs/security.md describes.
    let builds: Vec<&&str> = instructions
        .iter()
        .filter(|l| l.contains("cargo build"))
        .collect();
    assert!(!builds.is_empty());
    for build in builds {
        assert!(build.contains("--features oidc,kerberos"), "{build}");
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

/// deploy/compose, which cannot run here (no Docker engine): pinned images,
/// dependencies on services that exist and can report health, a single
/// Kafka node whose transaction log fits on it, and recast's configuration
/// valid with the files laid out as the volumes mount them.
#[test]
fn the_compose_file_is_consistent_and_its_configuration_loads() {
    let compose: Value = serde_yaml::from_str(&read("deploy/compose/compose.yaml")).unwrap();
    let services = compose["services"].as_mapping().unwrap();
    // Images built here need no pinning; pulled ones do.
    let built: Vec<&Value> = services
        .values()
        .filter(|s| s["build"].is_mapping())
        .map(|s| &s["image"])
        .collect();
    for (name, service) in services {
        let name = name.as_str().unwrap();
        let image = service["image"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: no image"));
        let (_, tag) = image
            .rsplit_once(':')
            .unwrap_or_else(|| panic!("{image}: no tag"));
        assert!(
            built.contains(&&service["image"])
                || (tag != "latest" && tag.chars().any(|c| c.is_ascii_digit())),
            "{image}: not pinned"
        );
        for (needed, condition) in service["depends_on"].as_mapping().into_iter().flatten() {
            let needed = &compose["services"][needed.as_str().unwrap()];
            assert!(
                needed.is_mapping(),
                "{name} depends on a service that is not there"
            );
            if condition["condition"] == "service_healthy" {
                assert!(
                    needed["healthcheck"].is_mapping(),
                    "{name} waits for health never reported"
                );
            }
        }
    }
    let kafka = &compose["services"]["kafka"]["environment"];
    assert_eq!(
        kafka["KAFKA_PROCESS_ROLES"], "broker,controller",
        "KRaft, one node"
    );
    for key in [
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
    ] {
        assert_eq!(
            kafka[key], "1",
            "{key}: transactions need it on a single node"
        );
    }
    let recast = &compose["services"]["recast"];
    assert_eq!(
        recast["image"], compose["services"]["setup"]["image"],
        "recast runs the image setup builds"
    );
    let etc = tempfile::tempdir().unwrap();
    for volume in recast["volumes"].as_sequence().unwrap() {
        let (host, rest) = volume.as_str().unwrap().split_once(':').unwrap();
        let inside = rest
            .trim_end_matches(":ro")
            .strip_prefix("/etc/recast/")
            .unwrap();
        let host = repo().join("deploy/compose").join(host);
        let target = etc.path().join(inside);
        if host.is_dir() {
            copy_tree(&host, &target);
        } else {
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            std::fs::copy(&host, &target).unwrap();
        }
    }
    let args = texts(&recast["command"]);
    let config = args[args.iter().position(|a| *a == "--config").unwrap() + 1];
    let env = recast["environment"]
        .as_mapping()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().unwrap().to_owned(),
                v.as_str().unwrap().to_owned(),
            )
        });
    let loaded = recast::Config::load(
        Some(
            &etc.path()
                .join(config.strip_prefix("/etc/recast/").unwrap()),
        ),
        env,
    )
    .expect("compose's recast.toml is valid as mounted");
    assert_eq!(loaded.raw.kafka.brokers, "kafka:9092");
    assert!(
        loaded
            .raw
            .registry
            .as_ref()
            .unwrap()
            .url
            .contains("schema-registry:8081"),
        "recast uses the compose registry"
    );
}
