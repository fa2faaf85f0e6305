//! The Kubernetes manifests (`deploy/k8s/`), from the same network file and by the same
//! `coldchain compose` as the compose files: a kustomize base and an example overlay.
//!
//! - Every site service is a **StatefulSet** with one replica, a claim template for `/data`
//!   and a headless Service named as its compose container (`inventory-la-vientiane`), so the
//!   network file, the certificates and the endpoints are the compose ones. The gateway is a
//!   Deployment (one replica, `Recreate`: its store is on a claim too) with a ClusterIP Service.
//! - The containers run as compose runs them: the same command, the same `COLDCHAIN_*`
//!   variables, the same secrets at the same paths (`/etc/coldchain/secrets`, each pod seeing
//!   only its own certificate and key), TLS and authentication on, 256 MiB of memory.
//! - Probes are Kubernetes' native gRPC probes. The kubelet speaks plaintext only and the
//!   servers speak TLS only, so each server also answers `grpc.health.v1.Health` alone in
//!   plaintext on [`HEALTH_PORT`] (`COLDCHAIN_HEALTH_PORT`); its service port is the one of the
//!   network file.
//! - NetworkPolicies mirror compose's networks: a site's services accept calls from each other,
//!   from the gateway (and the console, when it exists) and from the site's own clients (pods
//!   or namespaces labelled [`CLIENT_LABEL`]`: <site>`); the gateway accepts calls from anywhere
//!   (it is the network's front door, behind TLS and API keys); nothing else gets in.
//! - Metrics are an optional kustomize Component (`components/metrics`, enabled by the example
//!   overlay): the container port `metrics` and the `prometheus.io/*` scrape annotations on
//!   every workload's pod template (patches selected by kind and label), and a policy that
//!   admits pods or namespaces labelled [`SCRAPER_LABEL`]`: "true"` to [`METRICS_PORT`]. No
//!   ServiceMonitor: it needs the Prometheus Operator's CRDs.
//!
//! The model is `serde_json` values, rendered by [`crate::yaml`]; the tests assert on the model
//! (the component's patches applied to it as kustomize applies them).
//!
//! This file is longer than 600 lines because every kind of object is built here beside the
//! objects whose names it refers to (a StatefulSet, its Service, its policy, its budget):
//! split apart, those names would have to be kept in step across files.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use coldchain_credentials::Keyring;
use coldchain_runtime::network::{NetworkConfig, ServiceKind, SiteConfig};
use serde_json::{Value, json};

use crate::prometheus::METRICS_PORT;
use crate::{
    CONSOLE, CONSOLE_SESSION_KEY, GATEWAY, IMAGE_UID, Kind, Options, caller_credential, yaml,
};

/// The namespace of the base (`coldchain certs --namespace` names hosts in it).
pub const NAMESPACE: &str = "coldchain";
/// The plaintext health port of every pod (`COLDCHAIN_HEALTH_PORT`), for the kubelet's
/// gRPC probes. Every pod has its own network namespace, so one port serves them all.
pub const HEALTH_PORT: u16 = 8086;
/// `COLDCHAIN_SHUTDOWN_GRACE` of every container (as in compose).
pub const SHUTDOWN_GRACE_SECONDS: u32 = 5;
/// `terminationGracePeriodSeconds`: longer than the shutdown grace, so that a server drains
/// its calls and flushes its store before the kubelet's SIGKILL (compose: `stop_grace_period`).
pub const TERMINATION_GRACE_SECONDS: u32 = 15;
/// The label that admits a client to a site: on a pod of the namespace, or on a namespace.
pub const CLIENT_LABEL: &str = "coldchain/client-of";
/// The label (value `"true"`) that admits a scraper to [`METRICS_PORT`] when the optional
/// component `components/metrics` is enabled: on a pod of the namespace, or on a namespace
/// (the monitoring system's).
pub const SCRAPER_LABEL: &str = "coldchain/scraper";
/// The label naming the site of a pod (`hub` for the gateway).
pub const SITE_LABEL: &str = "coldchain/site";
/// Where the ConfigMap's network file is mounted (not over `/etc/coldchain`, which holds the
/// image's own network files).
const NETWORK_DIR: &str = "/etc/coldchain/k8s";
/// The Secret of the certificates (made by the overlay's secretGenerator).
pub const TLS_SECRET: &str = "coldchain-tls";
/// The Secret of the credentials file and the services' keys.
pub const KEYRING_SECRET: &str = "coldchain-keyring";
const NETWORK_CONFIGMAP: &str = "coldchain-network";
const ENV_CONFIGMAP: &str = "coldchain-env";
/// The size of each claim; an overlay patches it.
const VOLUME_SIZE: &str = "1Gi";

/// Whether `text` is a DNS label (RFC 1123), as namespace and object names must be.
pub fn is_dns_label(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 63
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !text.starts_with('-')
        && !text.ends_with('-')
}

/// One generated file under `deploy/k8s/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    /// Relative to `deploy/k8s/`, e.g. `base/site-la-vientiane.yaml`.
    pub path: PathBuf,
    pub text: String,
}

/// What is generated: the files, and the objects of the base and of the metrics component
/// (for the tests).
#[derive(Debug, Clone, PartialEq)]
pub struct Manifests {
    pub files: Vec<File>,
    /// Every object of the base, in file order.
    pub objects: Vec<Value>,
    /// The optional component `components/metrics`.
    pub metrics: Component,
}

/// A kustomize Component: its resources and its patches.
#[derive(Debug, Clone, PartialEq)]
pub struct Component {
    /// The objects it adds (one file each).
    pub resources: Vec<(String, Value)>,
    pub patches: Vec<Patch>,
}

/// A patch of a Component: a strategic merge patch (an object) or a JSON 6902 patch (a list
/// of operations), applied to every object its target selects.
#[derive(Debug, Clone, PartialEq)]
pub struct Patch {
    pub path: String,
    /// kustomize's selector: `kind` (a regular expression) and `labelSelector`.
    pub target: Value,
    pub patch: Value,
}

/// A server of the network as a Kubernetes workload.
type Workload<'a> = crate::Server<'a>;

impl Workload<'_> {
    fn labels(&self) -> Value {
        json!({
            "app.kubernetes.io/name": "coldchain",
            "app.kubernetes.io/instance": self.name,
            "app.kubernetes.io/component": self.kind.as_str(),
            "app.kubernetes.io/part-of": "coldchain",
            SITE_LABEL: self.site_label(),
        })
    }

    fn selector(&self) -> Value {
        json!({
            "app.kubernetes.io/name": "coldchain",
            "app.kubernetes.io/instance": self.name,
        })
    }
}

fn site_workloads(site: &SiteConfig) -> Vec<Workload<'_>> {
    ServiceKind::SITE_SERVICES
        .into_iter()
        .map(|kind| Workload::at_site(site, kind))
        .collect()
}

/// The hub's workloads: the gateway and the console.
fn hub_workloads(network: &NetworkConfig) -> Vec<Workload<'_>> {
    vec![Workload::gateway(network), Workload::console(network)]
}

/// The memory quantity of a compose limit (`256M`: MiB for docker) in Kubernetes' units.
fn quantity(compose: &str) -> String {
    match compose.strip_suffix(['M', 'm']) {
        Some(n) => format!("{n}Mi"),
        None => match compose.strip_suffix(['G', 'g']) {
            Some(n) => format!("{n}Gi"),
            None => compose.to_owned(),
        },
    }
}

/// The variables every container shares (a ConfigMap, `envFrom`): compose's, with the
/// network file of the ConfigMap and the plaintext health port.
fn shared_env(options: &Options) -> Vec<(String, String)> {
    let secrets = Path::new(&options.secrets_in_container);
    let keyring = Keyring::at(secrets.join("keyring"));
    vec![
        ("COLDCHAIN_DATA_DIR".into(), "/data".into()),
        (
            "COLDCHAIN_NETWORK_FILE".into(),
            format!("{NETWORK_DIR}/network.toml"),
        ),
        ("COLDCHAIN_LISTEN_HOST".into(), "0.0.0.0".into()),
        ("COLDCHAIN_LOG_FORMAT".into(), "json".into()),
        ("COLDCHAIN_LOG_LEVEL".into(), "info".into()),
        ("COLDCHAIN_RPC_TIMEOUT".into(), "10s".into()),
        (
            "COLDCHAIN_SHUTDOWN_GRACE".into(),
            format!("{SHUTDOWN_GRACE_SECONDS}s"),
        ),
        (
            "COLDCHAIN_SLED_CACHE_BYTES".into(),
            options.sled_cache.clone(),
        ),
        ("COLDCHAIN_HEALTH_PORT".into(), HEALTH_PORT.to_string()),
        (
            "COLDCHAIN_METRICS_LISTEN".into(),
            format!("0.0.0.0:{METRICS_PORT}"),
        ),
        (
            "COLDCHAIN_AUTH_FILE".into(),
            keyring.credentials_file().display().to_string(),
        ),
        (
            "COLDCHAIN_TLS_CA".into(),
            secrets.join("tls/ca.pem").display().to_string(),
        ),
    ]
}

/// A container's own variables: its certificate and key and, if it calls others, its key.
fn own_env(w: &Workload<'_>, options: &Options) -> Vec<Value> {
    crate::security_env(&w.name, w.kind, options)
        .into_iter()
        .filter(|(name, _)| name != "COLDCHAIN_AUTH_FILE" && name != "COLDCHAIN_TLS_CA")
        .map(|(name, value)| json!({"name": name, "value": value}))
        .collect()
}

/// The secrets volumes: only this container's files, at the paths compose mounts them at
/// (`<secrets>/tls/…`, `<secrets>/keyring/…`). Two `secret` volumes rather than one projected
/// volume: kustomize gives a generated Secret's new name (its content hash) to `secret`
/// volumes but not to projected sources, and the hash is what rolls the pods on rotation.
fn secret_volumes(w: &Workload<'_>) -> [Value; 2] {
    let mut tls = vec![json!({"key": "ca.pem", "path": "ca.pem"})];
    for ext in ["pem", "key"] {
        let file = format!("{}.{ext}", w.name);
        tls.push(json!({"key": file, "path": file}));
    }
    let mut keyring = vec![json!({"key": "credentials.toml", "path": "credentials.toml"})];
    if let Some(id) = caller_credential(w.kind) {
        let file = format!("{id}.key");
        keyring.push(json!({"key": file, "path": format!("keys/{file}")}));
    }
    if w.kind == Kind::Console {
        keyring.push(json!({"key": CONSOLE_SESSION_KEY, "path": CONSOLE_SESSION_KEY}));
    }
    // 0440: readable by the pod's group (fsGroup), as compose's chown makes them readable
    // by the image's user; by nobody else.
    [
        json!({"name": "tls", "secret": {"secretName": TLS_SECRET, "items": tls, "defaultMode": 0o440}}),
        json!({"name": "keyring", "secret": {"secretName": KEYRING_SECRET, "items": keyring, "defaultMode": 0o440}}),
    ]
}

/// A probe of `w`: gRPC health on the plaintext health port for the services; for the
/// console, `GET /healthz` on its own port over HTTPS (the kubelet does not verify the
/// certificate of an HTTPS probe, so no plaintext port is needed).
fn probe(w: &Workload<'_>, period: u32, failures: u32) -> Value {
    let mut probe = json!({
        "periodSeconds": period,
        "timeoutSeconds": 3,
        "failureThreshold": failures,
    });
    match w.kind {
        Kind::Console => {
            probe["httpGet"] =
                json!({"path": "/healthz", "port": CONSOLE_PORT_NAME, "scheme": "HTTPS"});
        }
        Kind::Service(_) => probe["grpc"] = json!({"port": HEALTH_PORT}),
    }
    probe
}

/// The name of the console's container port.
const CONSOLE_PORT_NAME: &str = "https";

/// The container ports of `w`.
fn container_ports(w: &Workload<'_>) -> Value {
    match w.kind {
        Kind::Console => {
            json!([{"name": CONSOLE_PORT_NAME, "containerPort": w.port, "protocol": "TCP"}])
        }
        Kind::Service(_) => json!([
            {"name": "grpc", "containerPort": w.port, "protocol": "TCP"},
            {"name": "health", "containerPort": HEALTH_PORT, "protocol": "TCP"},
        ]),
    }
}

/// The memory of `w`'s container, in Kubernetes' units.
fn memory(w: &Workload<'_>, options: &Options) -> String {
    quantity(match (w.kind, w.site) {
        (Kind::Console, _) => &options.console_memory,
        (Kind::Service(_), Some(_)) => &options.site_memory,
        (Kind::Service(_), None) => &options.gateway_memory,
    })
}

fn pod_template(w: &Workload<'_>, options: &Options, data_volume: Option<Value>) -> Value {
    let memory = memory(w, options);
    let mut volumes = secret_volumes(w).to_vec();
    volumes.push(json!({"name": "network", "configMap": {"name": NETWORK_CONFIGMAP}}));
    volumes.extend(data_volume);
    let mut mounts = Vec::new();
    // The console keeps no store: no claim, no /data.
    if w.kind != Kind::Console {
        mounts.push(json!({"name": "data", "mountPath": "/data"}));
    }
    mounts.extend([
        json!({"name": "tls", "mountPath": format!("{}/tls", options.secrets_in_container), "readOnly": true}),
        json!({"name": "keyring", "mountPath": format!("{}/keyring", options.secrets_in_container), "readOnly": true}),
        json!({"name": "network", "mountPath": NETWORK_DIR, "readOnly": true}),
    ]);
    let uid = IMAGE_UID;
    json!({
        "metadata": {"labels": w.labels()},
        "spec": {
            // The binary rejects unknown COLDCHAIN_* variables: no Service links, which would
            // inject <SERVICE>_PORT variables (a Service named coldchain-… would break pods).
            "enableServiceLinks": false,
            "automountServiceAccountToken": false,
            "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
            "securityContext": {
                "runAsNonRoot": true,
                "runAsUser": uid,
                "runAsGroup": uid,
                "fsGroup": uid,
                "fsGroupChangePolicy": "OnRootMismatch",
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [{
                "name": w.kind.as_str(),
                "image": options.image,
                "imagePullPolicy": "IfNotPresent",
                "args": w.args,
                "envFrom": [{"configMapRef": {"name": ENV_CONFIGMAP}}],
                "env": own_env(w, options),
                "ports": container_ports(w),
                // Up to 60 s to open the store (replaying its log), then checked every 5 s
                // for traffic and every 10 s for life: NOT_SERVING means the store is unusable.
                "startupProbe": probe(w, 2, 30),
                "readinessProbe": probe(w, 5, 3),
                "livenessProbe": probe(w, 10, 3),
                "resources": {
                    "requests": {"cpu": "50m", "memory": memory},
                    "limits": {"memory": memory},
                },
                "securityContext": {
                    "allowPrivilegeEscalation": false,
                    "readOnlyRootFilesystem": true,
                    "runAsNonRoot": true,
                    "capabilities": {"drop": ["ALL"]},
                },
                "volumeMounts": mounts,
            }],
            "volumes": volumes,
        },
    })
}

fn metadata(name: &str, labels: Value) -> Value {
    json!({"name": name, "labels": labels})
}

fn service(w: &Workload<'_>, headless: bool) -> Value {
    let mut spec = json!({
        "selector": w.selector(),
        "ports": [{"name": "grpc", "port": w.port, "targetPort": "grpc", "protocol": "TCP"}],
    });
    if headless {
        spec["clusterIP"] = json!("None");
    } else {
        spec["type"] = json!("ClusterIP");
    }
    json!({"apiVersion": "v1", "kind": "Service", "metadata": metadata(&w.name, w.labels()), "spec": spec})
}

fn stateful_set(w: &Workload<'_>, options: &Options) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": metadata(&w.name, w.labels()),
        "spec": {
            // One, always: sled takes an exclusive lock on its database, so a second replica
            // could not open it; the service is one writer per site by design.
            "replicas": 1,
            "serviceName": w.name,
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": w.selector()},
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
            "template": pod_template(w, options, None),
            "volumeClaimTemplates": [{
                "metadata": {"name": "data", "labels": w.labels()},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": VOLUME_SIZE}},
                },
            }],
        },
    })
}

fn site_labels(site: &SiteConfig) -> Value {
    json!({"app.kubernetes.io/name": "coldchain", SITE_LABEL: site.id})
}

fn site_policy(site: &SiteConfig) -> Value {
    let ports: Vec<Value> = ServiceKind::SITE_SERVICES
        .into_iter()
        .map(|kind| json!({"port": site.port(kind).unwrap_or_default(), "protocol": "TCP"}))
        .collect();
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(&format!("site-{}", site.id), site_labels(site)),
        "spec": {
            "podSelector": {"matchLabels": site_labels(site)},
            "policyTypes": ["Ingress"],
            "ingress": [{
                "from": [
                    // The site's own services (compose: the network site-<id>).
                    {"podSelector": {"matchLabels": site_labels(site)}},
                    // The hub (compose: the backbone, which only the hub uses to reach sites).
                    {"podSelector": {
                        "matchLabels": {"app.kubernetes.io/name": "coldchain"},
                        "matchExpressions": [{
                            "key": "app.kubernetes.io/component",
                            "operator": "In",
                            "values": ["console", "gateway"],
                        }],
                    }},
                    // The site's clients: pods of this namespace, or whole namespaces, labelled
                    // coldchain/client-of: <site> (its warehouse system, its sensor gateway).
                    {"podSelector": {"matchLabels": {CLIENT_LABEL: site.id}}},
                    {"namespaceSelector": {"matchLabels": {CLIENT_LABEL: site.id}}},
                ],
                "ports": ports,
            }],
        },
    })
}

fn site_budget(site: &SiteConfig) -> Value {
    json!({
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(&format!("site-{}", site.id), site_labels(site)),
        "spec": {
            // A drain takes a site's services one at a time: the site keeps two of three.
            "maxUnavailable": 1,
            "selector": {"matchLabels": site_labels(site)},
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    })
}

fn gateway_objects(w: &Workload<'_>, options: &Options) -> Vec<Value> {
    let claim = format!("{}-data", w.name);
    vec![
        json!({
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": metadata(&claim, w.labels()),
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": VOLUME_SIZE}},
            },
        }),
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": metadata(&w.name, w.labels()),
            "spec": {
                // One, always, and never two at once (Recreate): sled takes an exclusive lock
                // on the gateway's store (the transfers' saga).
                "replicas": 1,
                "strategy": {"type": "Recreate"},
                "selector": {"matchLabels": w.selector()},
                "template": pod_template(
                    w,
                    options,
                    Some(json!({"name": "data", "persistentVolumeClaim": {"claimName": claim}})),
                ),
            },
        }),
        service(w, false),
        json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": metadata(&w.name, w.labels()),
            "spec": {
                "podSelector": {"matchLabels": w.selector()},
                "policyTypes": ["Ingress"],
                // The front door: anyone may connect (TLS, and an API key on every call).
                "ingress": [{"ports": [{"port": w.port, "protocol": "TCP"}]}],
            },
        }),
    ]
}

/// The console: a Deployment of one (its sessions live in its memory: a second replica would
/// not know the first one's logins), a ClusterIP Service of its HTTPS port, and the policy that
/// lets people's browsers reach that port (the pages need a login; the site policies admit the
/// console's calls, the gateway's admits anyone).
fn console_objects(w: &Workload<'_>, options: &Options) -> Vec<Value> {
    vec![
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": metadata(&w.name, w.labels()),
            "spec": {
                "replicas": 1,
                "strategy": {"type": "Recreate"},
                "selector": {"matchLabels": w.selector()},
                "template": pod_template(w, options, None),
            },
        }),
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": metadata(&w.name, w.labels()),
            "spec": {
                "type": "ClusterIP",
                "selector": w.selector(),
                "ports": [{"name": CONSOLE_PORT_NAME, "port": w.port, "targetPort": CONSOLE_PORT_NAME, "protocol": "TCP"}],
            },
        }),
        json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": metadata(&w.name, w.labels()),
            "spec": {
                "podSelector": {"matchLabels": w.selector()},
                "policyTypes": ["Ingress"],
                "ingress": [{"ports": [{"port": w.port, "protocol": "TCP"}]}],
            },
        }),
    ]
}

fn header(options: &Options, about: &str) -> String {
    format!(
        "# Generated by `coldchain compose` from {}: do not edit; edit that file and run\n\
         # `cargo run --release -- compose` (a test fails when this file is stale).\n\
         #\n{about}",
        options.source_name
    )
}

fn render(options: &Options, about: &str, objects: &[Value]) -> String {
    let mut out = header(options, about);
    for object in objects {
        out.push_str("---\n");
        if object["kind"] == "Deployment" && object["metadata"]["name"] == CONSOLE {
            out.push_str(
                "# console: replicas is 1 and must stay 1: its login sessions live in its memory.\n",
            );
        } else if matches!(object["kind"].as_str(), Some("StatefulSet" | "Deployment")) {
            let _ = writeln!(
                out,
                "# {}: replicas is 1 and must stay 1: sled takes an exclusive lock on its database\n\
                 # (one writer per store), so a second pod could not open it.",
                object["metadata"]["name"].as_str().unwrap_or_default()
            );
        }
        out.push_str(&yaml::document(object));
    }
    out
}

fn comment(lines: &str) -> String {
    lines.lines().map(|l| format!("# {l}\n")).collect()
}

/// Every file of `deploy/k8s/` for `network`.
pub fn generate(network: &NetworkConfig, options: &Options) -> Manifests {
    let mut files = Vec::new();
    let mut objects = Vec::new();
    let mut resources = vec!["namespace.yaml".to_owned(), "policies.yaml".to_owned()];

    let namespace = json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": NAMESPACE,
            // Every pod meets the restricted Pod Security Standard.
            "labels": {
                "pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/enforce-version": "latest",
            },
        },
    });
    files.push(File {
        path: "base/namespace.yaml".into(),
        text: render(
            options,
            &comment("The namespace, held to the restricted Pod Security Standard."),
            std::slice::from_ref(&namespace),
        ),
    });
    objects.push(namespace);

    let deny = json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "default-deny-ingress", "labels": {"app.kubernetes.io/name": "coldchain"}},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
    });
    files.push(File {
        path: "base/policies.yaml".into(),
        text: render(
            options,
            &comment(
                "Nothing reaches a pod of the namespace unless a policy of site-<id>.yaml or hub.yaml\n\
                 admits it. Egress is open (DNS, the calls between services). The kubelet's probes\n\
                 come from the node, which common network plugins (Calico, Cilium) admit regardless\n\
                 of policy; with one that does not, admit the nodes' addresses (an ipBlock) on port 8086.",
            ),
            std::slice::from_ref(&deny),
        ),
    });
    objects.push(deny);

    for site in &network.sites {
        let mut site_objects = Vec::new();
        for w in site_workloads(site) {
            site_objects.push(stateful_set(&w, options));
            site_objects.push(service(&w, true));
        }
        site_objects.push(site_policy(site));
        site_objects.push(site_budget(site));
        let about = format!(
            "{}: {}, {} ({}).\n\
             Its inventory, telemetry and booking: each a StatefulSet of one (sled's exclusive lock)\n\
             with a claim for /data and a headless Service (DNS <service>-{id}:<port>, the names of\n\
             the network file); the policy that admits its own services, the hub and its clients\n\
             (labelled {CLIENT_LABEL}: {id}); a disruption budget of one service at a time.",
            site.id,
            site.name,
            site.location,
            site.reached_by,
            id = site.id,
        )
        .replace(|c: char| c.is_control() && c != '\n', " ");
        let file = format!("site-{}.yaml", site.id);
        files.push(File {
            path: PathBuf::from("base").join(&file),
            text: render(options, &comment(&about), &site_objects),
        });
        resources.push(file);
        objects.extend(site_objects);
    }

    let mut hub_objects = Vec::new();
    for w in hub_workloads(network) {
        match w.kind {
            Kind::Console => hub_objects.extend(console_objects(&w, options)),
            Kind::Service(_) => hub_objects.extend(gateway_objects(&w, options)),
        }
    }
    files.push(File {
        path: "base/hub.yaml".into(),
        text: render(
            options,
            &comment(
                "The hub: the gateway (a Deployment of one with its claim, a ClusterIP Service and the\n\
                 policy that lets anyone reach its port) and the console (a Deployment of one without\n\
                 a claim, a ClusterIP Service of its HTTPS port and the policy that lets browsers\n\
                 reach it). The gateway's exposure outside the cluster is the overlay's\n\
                 (overlays/example: a LoadBalancer); the console's is yours (an Ingress or a port-forward).",
            ),
            &hub_objects,
        ),
    });
    resources.push("hub.yaml".into());
    objects.extend(hub_objects);

    files.push(File {
        path: "base/network.toml".into(),
        text: crate::render_network(
            network,
            &format!(
                "# Generated by `coldchain compose` from {}: do not edit; edit that file and run\n\
                 # `cargo run --release -- compose`.\n\
                 #\n\
                 # The network file of the pods (ConfigMap {NETWORK_CONFIGMAP}, mounted at {NETWORK_DIR}): the same\n\
                 # sites, zones and ports, with every endpoint at its Service (headless for site services).\n",
                options.source_name
            ),
        ),
    });
    files.push(File {
        path: "base/kustomization.yaml".into(),
        text: base_kustomization(options, &resources),
    });
    files.push(File {
        path: "overlays/example/kustomization.yaml".into(),
        text: overlay_kustomization(network, options),
    });
    files.push(File {
        path: "overlays/example/gateway-public.yaml".into(),
        text: gateway_public(network, options),
    });
    let metrics = metrics_component();
    files.extend(component_files(options, &metrics));
    Manifests {
        files,
        objects,
        metrics,
    }
}

/// The optional metrics component: the named container port and the scrape annotations on the
/// pod template of every workload (the StatefulSets and the gateway's Deployment, selected by
/// kind and label), and the policy that admits the scrapers to the metrics port, which the
/// base's policies keep closed.
fn metrics_component() -> Component {
    let target = json!({
        "kind": "StatefulSet|Deployment",
        "labelSelector": "app.kubernetes.io/part-of=coldchain",
    });
    // kustomize gives a strategic merge patch with a target the kind and name of each object
    // it patches; the ones here are placeholders.
    let annotations = json!({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "coldchain-workload"},
        "spec": {"template": {"metadata": {"annotations": {
            "prometheus.io/scrape": "true",
            "prometheus.io/port": METRICS_PORT.to_string(),
            "prometheus.io/path": "/metrics",
        }}}},
    });
    // A JSON patch: a strategic merge patch merges containers by name, which differs per
    // workload; every pod has one container.
    let port = json!([{
        "op": "add",
        "path": "/spec/template/spec/containers/0/ports/-",
        "value": {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
    }]);
    let coldchain = json!({"app.kubernetes.io/name": "coldchain"});
    let policy = json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata("metrics-scrape", coldchain.clone()),
        "spec": {
            "podSelector": {"matchLabels": coldchain},
            "policyTypes": ["Ingress"],
            "ingress": [{
                "from": [
                    {"podSelector": {"matchLabels": {SCRAPER_LABEL: "true"}}},
                    {"namespaceSelector": {"matchLabels": {SCRAPER_LABEL: "true"}}},
                ],
                "ports": [{"port": METRICS_PORT, "protocol": "TCP"}],
            }],
        },
    });
    Component {
        resources: vec![("policy.yaml".into(), policy)],
        patches: vec![
            Patch {
                path: "pod-annotations.yaml".into(),
                target: target.clone(),
                patch: annotations,
            },
            Patch {
                path: "pod-port.yaml".into(),
                target,
                patch: port,
            },
        ],
    }
}

fn component_files(options: &Options, component: &Component) -> Vec<File> {
    let dir = Path::new("components/metrics");
    let about = comment(&format!(
        "The optional metrics component: every container serves Prometheus metrics on port\n\
         {METRICS_PORT} (GET /metrics). It adds the named container port `metrics` and the scrape\n\
         annotations (prometheus.io/scrape, /port, /path) to the pod template of every StatefulSet\n\
         and Deployment, and a NetworkPolicy that admits port {METRICS_PORT} from pods of the\n\
         namespace, or whole namespaces, labelled {SCRAPER_LABEL}: \"true\" (the scraper's);\n\
         without it the base's policies keep the port closed. Enable it in an overlay:\n\
         \x20 components:\n\
         \x20   - ../../components/metrics\n\
         No ServiceMonitor: that needs the Prometheus Operator's CRDs (add one in your overlay if\n\
         you run the operator)."
    ));
    let kustomization = json!({
        "apiVersion": "kustomize.config.k8s.io/v1alpha1",
        "kind": "Component",
        "resources": component.resources.iter().map(|(path, _)| path.as_str()).collect::<Vec<_>>(),
        "patches": component
            .patches
            .iter()
            .map(|p| json!({"path": p.path, "target": p.target}))
            .collect::<Vec<_>>(),
    });
    let mut files = vec![File {
        path: dir.join("kustomization.yaml"),
        text: format!(
            "{}{}",
            header(options, &about),
            yaml::document(&kustomization)
        ),
    }];
    for (path, object) in &component.resources {
        files.push(File {
            path: dir.join(path),
            text: render(
                options,
                &comment(&format!(
                    "Admits the scrapers (pods or namespaces labelled {SCRAPER_LABEL}: \"true\") to the\n\
                     metrics port {METRICS_PORT} of every coldchain pod, and to nothing else."
                )),
                std::slice::from_ref(object),
            ),
        });
    }
    for patch in &component.patches {
        let about = if patch.patch.is_array() {
            "A JSON patch of every workload (the component's target): the container port `metrics`."
        } else {
            "A strategic merge patch of every workload (the component's target): the scrape\n\
             annotations of its pod template."
        };
        files.push(File {
            path: dir.join(&patch.path),
            text: format!(
                "{}{}",
                header(options, &comment(about)),
                yaml::document(&patch.patch)
            ),
        });
    }
    files
}

fn base_kustomization(options: &Options, resources: &[String]) -> String {
    let mut out = header(
        options,
        "# The base: every object of the network, without its secrets (the overlay makes them).\n\
         #   kubectl kustomize deploy/k8s/base\n",
    );
    out.push_str("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n");
    let _ = writeln!(out, "namespace: {NAMESPACE}");
    out.push_str("resources:\n");
    for r in resources {
        let _ = writeln!(out, "  - {r}");
    }
    out.push_str(
        "# The network file and the shared COLDCHAIN_* variables; their names get a hash of their\n\
         # content, so a change rolls the pods.\n",
    );
    out.push_str("configMapGenerator:\n");
    let _ = writeln!(
        out,
        "  - name: {NETWORK_CONFIGMAP}\n    files:\n      - network.toml"
    );
    let _ = writeln!(out, "  - name: {ENV_CONFIGMAP}\n    literals:");
    for (name, value) in shared_env(options) {
        let _ = writeln!(out, "      - {}", crate::q(&format!("{name}={value}")));
    }
    out
}

/// The files of the overlay's Secrets: exactly what the pods mount, never `ca.key`.
fn secret_files(network: &NetworkConfig) -> (Vec<String>, Vec<String>) {
    let mut tls = vec!["secrets/tls/ca.pem".to_owned()];
    for host in crate::container_names(network) {
        tls.push(format!("secrets/tls/{host}.pem"));
        tls.push(format!("secrets/tls/{host}.key"));
    }
    let mut keyring = vec![
        "secrets/keyring/credentials.toml".to_owned(),
        format!("secrets/keyring/{CONSOLE_SESSION_KEY}"),
    ];
    for kind in [
        ServiceKind::Gateway,
        ServiceKind::Inventory,
        ServiceKind::Telemetry,
    ] {
        if let Some(id) = caller_credential(Kind::Service(kind)) {
            keyring.push(format!("secrets/keyring/keys/{id}.key"));
        }
    }
    (tls, keyring)
}

fn overlay_kustomization(network: &NetworkConfig, options: &Options) -> String {
    let mut out = header(
        options,
        &format!(
            "# An example overlay: the base, its secrets, the image, the gateway's exposure, the metrics.\n\
             #   coldchain certs --out deploy/k8s/overlays/example/secrets/tls          # or copy deploy/secrets:\n\
             #   coldchain credentials keyring --out deploy/k8s/overlays/example/secrets/keyring\n\
             #   kubectl apply -k deploy/k8s/overlays/example\n\
             # kustomize reads files below this directory only (symbolic links included), so compose's\n\
             # deploy/secrets is copied here (cp -a deploy/secrets/. deploy/k8s/overlays/example/secrets/);\n\
             # secrets/ is in .gitignore. Only what the pods mount goes into the cluster: the CA certificate\n\
             # (not its key), each server's certificate and key, the credentials file and the services' keys.\n\
             # The certificates name the Services in namespace {NAMESPACE} (coldchain certs --namespace).\n"
        ),
    );
    out.push_str("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n");
    // The namespace of the Secrets and the LoadBalancer too: kustomize gives a generated
    // Secret's hashed name only to references in the same namespace.
    let _ = writeln!(out, "namespace: {NAMESPACE}");
    out.push_str("resources:\n  - ../../base\n  - gateway-public.yaml\n");
    let _ = writeln!(
        out,
        "# Optional: the scrape annotations, the port `metrics` and the policy that admits pods or\n\
         # namespaces labelled {SCRAPER_LABEL}: \"true\" to it (remove it to keep port {METRICS_PORT} closed).\n\
         components:\n  - ../../components/metrics"
    );
    out.push_str("# Your registry and tag (the image is built by deploy/Dockerfile).\nimages:\n");
    let (name, tag) = options
        .image
        .split_once(':')
        .unwrap_or((options.image.as_str(), "latest"));
    let _ = writeln!(
        out,
        "  - name: {name}\n    newName: {name}\n    newTag: {}",
        crate::q(tag)
    );
    let (tls, keyring) = secret_files(network);
    out.push_str("secretGenerator:\n");
    for (secret, files) in [(TLS_SECRET, tls), (KEYRING_SECRET, keyring)] {
        let _ = writeln!(out, "  - name: {secret}\n    files:");
        for file in files {
            let _ = writeln!(out, "      - {file}");
        }
    }
    out
}

fn gateway_public(network: &NetworkConfig, options: &Options) -> String {
    let port = network.gateway.port();
    let object = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "gateway-public", "labels": {"app.kubernetes.io/name": "coldchain"}},
        "spec": {
            "type": "LoadBalancer",
            "selector": {"app.kubernetes.io/name": "coldchain", "app.kubernetes.io/instance": GATEWAY},
            "ports": [{"name": "grpc", "port": port, "targetPort": "grpc", "protocol": "TCP"}],
        },
    });
    render(
        options,
        &comment(&format!(
            "The gateway outside the cluster: a TCP load balancer on port {port}. TLS passes through\n\
             to the gateway, so clients must reach it by a name its certificate carries: issue it\n\
             from your CA with the load balancer's name, or use an Ingress controller that speaks\n\
             gRPC to a TLS backend (ingress-nginx: backend-protocol GRPCS) instead of this Service."
        )),
        &[object],
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::service_name;

    fn shipped() -> (NetworkConfig, Manifests) {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/network.toml");
        let network = NetworkConfig::load(file).unwrap();
        let manifests = generate(&network, &Options::default());
        (network, manifests)
    }

    fn of_kind<'a>(manifests: &'a Manifests, kind: &str) -> Vec<&'a Value> {
        manifests
            .objects
            .iter()
            .filter(|o| o["kind"] == kind)
            .collect()
    }

    fn named<'a>(manifests: &'a Manifests, kind: &str, name: &str) -> &'a Value {
        of_kind(manifests, kind)
            .into_iter()
            .find(|o| o["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind}/{name}"))
    }

    fn file<'a>(manifests: &'a Manifests, path: &str) -> &'a str {
        &manifests
            .files
            .iter()
            .find(|f| f.path == Path::new(path))
            .unwrap_or_else(|| panic!("no file {path}"))
            .text
    }

    /// The shared variables of the env ConfigMap, from the base's kustomization.
    fn shared(manifests: &Manifests) -> Vec<(String, String)> {
        file(manifests, "base/kustomization.yaml")
            .lines()
            .filter_map(|l| l.trim().strip_prefix("- \"COLDCHAIN_"))
            .map(|l| {
                let (name, value) = l.trim_end_matches('"').split_once('=').unwrap();
                (format!("COLDCHAIN_{name}"), value.to_owned())
            })
            .collect()
    }

    /// Checks one pod template: the port of the network file, the plaintext health port
    /// probed natively (startup, readiness, liveness), the security context, the memory of
    /// compose, a grace period longer than the server's, and every file its environment
    /// names provided by a volume.
    fn check_pod(manifests: &Manifests, name: &str, template: &Value, port: u64) {
        let pod = &template["spec"];
        let containers = pod["containers"].as_array().unwrap();
        assert_eq!(containers.len(), 1, "{name}");
        let c = &containers[0];
        assert_eq!(c["ports"][0]["name"], "grpc", "{name}");
        assert_eq!(c["ports"][0]["containerPort"], port, "{name}");
        assert_eq!(c["ports"][1]["containerPort"], HEALTH_PORT, "{name}");
        for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
            assert_eq!(c[probe]["grpc"]["port"], HEALTH_PORT, "{name} {probe}");
            assert!(c[probe].get("exec").is_none(), "{name} {probe}");
        }
        let sc = &c["securityContext"];
        assert_eq!(sc["readOnlyRootFilesystem"], true, "{name}");
        assert_eq!(sc["allowPrivilegeEscalation"], false, "{name}");
        assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]), "{name}");
        let psc = &pod["securityContext"];
        assert_eq!(psc["runAsNonRoot"], true, "{name}");
        assert_eq!(psc["runAsUser"], IMAGE_UID, "{name}");
        assert_eq!(psc["fsGroup"], IMAGE_UID, "{name}");
        assert_eq!(c["resources"]["limits"]["memory"], "256Mi", "{name}");
        assert_eq!(c["resources"]["requests"]["memory"], "256Mi", "{name}");
        assert_eq!(pod["enableServiceLinks"], false, "{name}");
        let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
        assert!(grace > u64::from(SHUTDOWN_GRACE_SECONDS), "{name}");

        // Every file named by the environment is mounted, from a Secret or the ConfigMap.
        let mut provided = BTreeSet::new();
        for mount in c["volumeMounts"].as_array().unwrap() {
            let at = mount["mountPath"].as_str().unwrap();
            let volume = pod["volumes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|v| v["name"] == mount["name"]);
            match volume {
                Some(v) if v.get("secret").is_some() => {
                    for item in v["secret"]["items"].as_array().unwrap() {
                        provided.insert(format!("{at}/{}", item["path"].as_str().unwrap()));
                    }
                }
                Some(v) if v.get("configMap").is_some() => {
                    provided.insert(format!("{at}/network.toml"));
                }
                _ => assert_eq!(mount["name"], "data", "{name}: a volume of its own"),
            }
        }
        let own: Vec<(String, String)> = c["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                let value = e["value"].as_str().unwrap().to_owned();
                (e["name"].as_str().unwrap().to_owned(), value)
            })
            .collect();
        let mut files = 0;
        for (var, value) in shared(manifests).into_iter().chain(own) {
            if var.ends_with("_FILE") || var.starts_with("COLDCHAIN_TLS_") {
                assert!(
                    provided.contains(&value),
                    "{name}: {var}={value} is not mounted"
                );
                files += 1;
            }
        }
        assert!(
            files >= 5,
            "{name}: network, credentials, CA, certificate, key"
        );
    }

    #[test]
    fn every_site_service_is_a_stateful_set_with_grpc_probes_and_a_claim() {
        let (network, manifests) = shipped();
        let sets = of_kind(&manifests, "StatefulSet");
        assert_eq!(sets.len(), 24);
        assert_eq!(sets.len(), network.sites.len() * 3);
        for site in &network.sites {
            for kind in ServiceKind::SITE_SERVICES {
                let name = service_name(site, kind);
                let port = u64::from(site.port(kind).unwrap());
                let set = named(&manifests, "StatefulSet", &name);
                assert_eq!(set["spec"]["replicas"], 1, "{name}");
                assert_eq!(set["spec"]["serviceName"], name.as_str());
                let claims = set["spec"]["volumeClaimTemplates"].as_array().unwrap();
                assert_eq!(claims.len(), 1, "{name}");
                assert_eq!(claims[0]["metadata"]["name"], "data");
                assert_eq!(claims[0]["spec"]["accessModes"], json!(["ReadWriteOnce"]));
                let template = &set["spec"]["template"];
                assert_eq!(template["metadata"]["labels"][SITE_LABEL], site.id.as_str());
                check_pod(&manifests, &name, template, port);
                let c = &template["spec"]["containers"][0];
                assert_eq!(
                    c["args"],
                    json!(["serve", kind.as_str(), "--site", site.id])
                );
                assert!(
                    c["volumeMounts"]
                        .as_array()
                        .unwrap()
                        .contains(&json!({"name": "data", "mountPath": "/data"}))
                );
                let service = named(&manifests, "Service", &name);
                assert_eq!(service["spec"]["clusterIP"], "None", "{name}: headless");
                assert_eq!(service["spec"]["ports"][0]["port"], port);
                assert_eq!(
                    service["spec"]["selector"],
                    set["spec"]["selector"]["matchLabels"]
                );
            }
        }
        let file = file(&manifests, "base/site-la-vientiane.yaml");
        assert_eq!(
            file.matches("replicas is 1 and must stay 1: sled takes an exclusive lock")
                .count(),
            3
        );
        assert!(file.starts_with(
            "# Generated by `coldchain compose` from deploy/network.toml: do not edit"
        ));
    }

    #[test]
    fn the_gateway_is_a_deployment_behind_a_cluster_ip_service() {
        let (network, manifests) = shipped();
        let deployments = of_kind(&manifests, "Deployment");
        assert_eq!(deployments.len(), 2, "the gateway and the console");
        let gateway = named(&manifests, "Deployment", GATEWAY);
        assert_eq!(gateway["spec"]["replicas"], 1);
        assert_eq!(gateway["spec"]["strategy"]["type"], "Recreate");
        let port = u64::from(network.gateway.port());
        check_pod(&manifests, GATEWAY, &gateway["spec"]["template"], port);
        let service = named(&manifests, "Service", GATEWAY);
        assert_eq!(service["spec"]["type"], "ClusterIP");
        assert_eq!(service["spec"]["ports"][0]["port"], port);
        named(&manifests, "PersistentVolumeClaim", "gateway-data");
        // Exposed by the overlay only.
        let public = file(&manifests, "overlays/example/gateway-public.yaml");
        assert!(public.contains("  type: \"LoadBalancer\"\n"));
        assert!(
            !of_kind(&manifests, "Service")
                .iter()
                .any(|s| s["spec"]["type"] == "LoadBalancer")
        );
    }

    /// The console: a Deployment of one without a claim, probed over HTTPS on its own port
    /// (from the network file), its session key and certificate mounted where its
    /// environment says, the memory of compose, a ClusterIP Service, and a policy that opens
    /// its port alone; the site policies admit its calls.
    #[test]
    fn the_console_is_a_deployment_probed_over_https() {
        let (network, manifests) = shipped();
        let console = named(&manifests, "Deployment", CONSOLE);
        assert_eq!(console["spec"]["replicas"], 1);
        assert_eq!(console["spec"]["strategy"]["type"], "Recreate");
        let template = &console["spec"]["template"];
        assert_eq!(template["metadata"]["labels"][SITE_LABEL], "hub");
        assert_eq!(
            template["metadata"]["labels"]["app.kubernetes.io/component"],
            "console"
        );
        let pod = &template["spec"];
        let c = &pod["containers"][0];
        let port = u64::from(network.console.port());
        assert_eq!(port, 8080);
        assert_eq!(c["args"], json!(["serve", "console"]));
        assert_eq!(
            c["ports"],
            json!([{"name": "https", "containerPort": port, "protocol": "TCP"}])
        );
        for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
            assert_eq!(
                c[probe]["httpGet"],
                json!({"path": "/healthz", "port": "https", "scheme": "HTTPS"}),
                "{probe}"
            );
            assert!(c[probe].get("grpc").is_none(), "{probe}");
        }
        assert_eq!(c["resources"]["limits"]["memory"], "128Mi");
        assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
        let mounts = c["volumeMounts"].as_array().unwrap();
        assert!(!mounts.iter().any(|m| m["name"] == "data"), "no store");
        assert!(
            !pod["volumes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|v| v["name"] == "data")
        );
        let env: Vec<(&str, &str)> = c["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["name"].as_str().unwrap(), e["value"].as_str().unwrap()))
            .collect();
        assert_eq!(
            env,
            [
                (
                    "COLDCHAIN_TLS_CERT",
                    "/etc/coldchain/secrets/tls/console.pem"
                ),
                (
                    "COLDCHAIN_TLS_KEY",
                    "/etc/coldchain/secrets/tls/console.key"
                ),
                (
                    "COLDCHAIN_CONSOLE_SESSION_KEY_FILE",
                    "/etc/coldchain/secrets/keyring/console-session.key"
                ),
            ],
            "no service key: it calls as the person logged in"
        );
        let keyring = pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "keyring")
            .unwrap();
        assert_eq!(
            keyring["secret"]["items"],
            json!([
                {"key": "credentials.toml", "path": "credentials.toml"},
                {"key": "console-session.key", "path": "console-session.key"},
            ])
        );
        let service = named(&manifests, "Service", CONSOLE);
        assert_eq!(service["spec"]["type"], "ClusterIP");
        assert_eq!(service["spec"]["ports"][0]["port"], port);
        assert_eq!(service["spec"]["ports"][0]["targetPort"], "https");
        let policy = named(&manifests, "NetworkPolicy", CONSOLE);
        assert_eq!(
            policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/instance"],
            CONSOLE
        );
        assert_eq!(
            policy["spec"]["ingress"],
            json!([{"ports": [{"port": port, "protocol": "TCP"}]}])
        );
        let hub = file(&manifests, "base/hub.yaml");
        assert!(hub.contains("# console: replicas is 1 and must stay 1: its login sessions"));
    }

    #[test]
    fn one_network_policy_and_one_disruption_budget_per_site() {
        let (network, manifests) = shipped();
        let policies = of_kind(&manifests, "NetworkPolicy");
        // Per site, the gateway's, the console's, and the default deny.
        assert_eq!(policies.len(), network.sites.len() + 3);
        let deny = named(&manifests, "NetworkPolicy", "default-deny-ingress");
        assert_eq!(deny["spec"]["podSelector"], json!({}));
        assert!(deny["spec"].get("ingress").is_none());
        for site in &network.sites {
            let policy = named(&manifests, "NetworkPolicy", &format!("site-{}", site.id));
            let selected = &policy["spec"]["podSelector"]["matchLabels"];
            assert_eq!(selected[SITE_LABEL], site.id.as_str());
            let rules = policy["spec"]["ingress"].as_array().unwrap();
            assert_eq!(rules.len(), 1);
            let ports: Vec<u64> = rules[0]["ports"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["port"].as_u64().unwrap())
                .collect();
            let expected: Vec<u64> = ServiceKind::SITE_SERVICES
                .into_iter()
                .map(|k| u64::from(site.port(k).unwrap()))
                .collect();
            assert_eq!(ports, expected);
            let from = rules[0]["from"].as_array().unwrap();
            assert_eq!(
                from[0]["podSelector"]["matchLabels"], *selected,
                "its own services"
            );
            assert_eq!(
                from[1]["podSelector"]["matchExpressions"][0]["values"],
                json!(["console", "gateway"])
            );
            assert_eq!(
                from[2]["podSelector"]["matchLabels"][CLIENT_LABEL],
                site.id.as_str()
            );
            assert_eq!(
                from[3]["namespaceSelector"]["matchLabels"][CLIENT_LABEL],
                site.id.as_str()
            );
            assert_eq!(from.len(), 4, "nothing else");
            let budget = named(
                &manifests,
                "PodDisruptionBudget",
                &format!("site-{}", site.id),
            );
            assert_eq!(budget["spec"]["maxUnavailable"], 1);
            assert_eq!(budget["spec"]["selector"]["matchLabels"], *selected);
        }
        // Every site's pods are selected by their site's policy.
        for set in of_kind(&manifests, "StatefulSet") {
            let labels = &set["spec"]["template"]["metadata"]["labels"];
            let policy = named(
                &manifests,
                "NetworkPolicy",
                &format!("site-{}", labels[SITE_LABEL].as_str().unwrap()),
            );
            for (k, v) in policy["spec"]["podSelector"]["matchLabels"]
                .as_object()
                .unwrap()
            {
                assert_eq!(&labels[k], v);
            }
        }
    }

    #[test]
    fn the_config_map_network_file_points_at_the_services() {
        let (network, manifests) = shipped();
        let inside = NetworkConfig::parse(file(&manifests, "base/network.toml")).unwrap();
        assert_eq!(inside.gateway_endpoint(), "http://gateway:50051");
        for (a, b) in network.sites.iter().zip(&inside.sites) {
            assert_eq!((&a.id, &a.ports, &a.zones), (&b.id, &b.ports, &b.zones));
            for kind in ServiceKind::SITE_SERVICES {
                let service = named(&manifests, "Service", &service_name(a, kind));
                let endpoint = format!(
                    "http://{}:{}",
                    service["metadata"]["name"].as_str().unwrap(),
                    service["spec"]["ports"][0]["port"]
                );
                assert_eq!(b.endpoint(kind).unwrap(), endpoint);
            }
        }
        let env = shared(&manifests);
        assert!(env.contains(&("COLDCHAIN_HEALTH_PORT".into(), HEALTH_PORT.to_string())));
        assert!(env.contains(&("COLDCHAIN_SHUTDOWN_GRACE".into(), "5s".into())));
        assert!(env.contains(&(
            "COLDCHAIN_NETWORK_FILE".into(),
            "/etc/coldchain/k8s/network.toml".into()
        )));
        assert!(!env.iter().any(|(k, _)| k == "COLDCHAIN_INSECURE_NO_AUTH"));
    }

    /// The overlay's Secrets hold every file a pod mounts, and never the CA's key.
    #[test]
    fn the_overlay_secrets_hold_what_the_pods_mount() {
        let (_, manifests) = shipped();
        let overlay = file(&manifests, "overlays/example/kustomization.yaml");
        assert!(!overlay.contains("ca.key"));
        assert!(overlay.contains("\nnamespace: coldchain\n"));
        let listed: BTreeSet<&str> = overlay
            .lines()
            .filter_map(|l| l.trim().strip_prefix("- secrets/"))
            .map(|p| p.rsplit('/').next().unwrap())
            .collect();
        let mut mounted = BTreeSet::new();
        for object in &manifests.objects {
            let Some(volumes) = object["spec"]["template"]["spec"]["volumes"].as_array() else {
                continue;
            };
            for v in volumes.iter().filter(|v| v.get("secret").is_some()) {
                for item in v["secret"]["items"].as_array().unwrap() {
                    mounted.insert(item["key"].as_str().unwrap());
                }
            }
        }
        assert_eq!(listed, mounted);
        // The CA, 26 certificates and keys, the credentials, the session key, 3 service keys.
        assert_eq!(mounted.len(), 1 + 26 * 2 + 1 + 1 + 3);
    }

    /// Whether kustomize's `target` selects `object`: its kind (an alternation) and its labels.
    fn selects(target: &Value, object: &Value) -> bool {
        let kind = object["kind"].as_str().unwrap();
        let kinds = target["kind"].as_str().unwrap();
        let labels = target["labelSelector"].as_str().unwrap();
        kinds.split('|').any(|k| k == kind)
            && labels.split(',').all(|pair| {
                let (k, v) = pair.split_once('=').unwrap();
                object["metadata"]["labels"][k] == v
            })
    }

    /// A strategic merge of maps (what the component's object patch needs: no lists).
    fn merge(into: &mut Value, patch: &Value) {
        match (into, patch) {
            (Value::Object(into), Value::Object(patch)) => {
                for (k, v) in patch {
                    merge(into.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
            (into, patch) => *into = patch.clone(),
        }
    }

    /// The base's objects with the metrics component applied, as kustomize applies it
    /// (scripts/k8s_check.sh checks kustomize's own rendering).
    fn with_metrics(manifests: &Manifests) -> Vec<Value> {
        let mut objects = manifests.objects.clone();
        for patch in &manifests.metrics.patches {
            for object in objects.iter_mut().filter(|o| selects(&patch.target, o)) {
                match &patch.patch {
                    Value::Array(ops) => {
                        for op in ops {
                            assert_eq!(op["op"], "add");
                            let path = op["path"].as_str().unwrap();
                            let list = path.strip_suffix("/-").expect("an append");
                            object
                                .pointer_mut(list)
                                .and_then(Value::as_array_mut)
                                .unwrap_or_else(|| panic!("no list at {list}"))
                                .push(op["value"].clone());
                        }
                    }
                    Value::Object(_) => merge(&mut object["spec"], &patch.patch["spec"]),
                    other => panic!("not a patch: {other}"),
                }
            }
        }
        objects.extend(manifests.metrics.resources.iter().map(|(_, o)| o.clone()));
        objects
    }

    #[test]
    fn the_metrics_component_annotates_every_workload_and_admits_only_scrapers() {
        let (_, manifests) = shipped();
        let env = shared(&manifests);
        assert!(env.contains(&(
            "COLDCHAIN_METRICS_LISTEN".into(),
            format!("0.0.0.0:{METRICS_PORT}")
        )));

        // Without it, no policy of the base admits the metrics port.
        for policy in of_kind(&manifests, "NetworkPolicy") {
            for rule in policy["spec"]["ingress"].as_array().into_iter().flatten() {
                let ports = rule["ports"]
                    .as_array()
                    .expect("every rule names its ports");
                assert!(
                    !ports.iter().any(|p| p["port"] == METRICS_PORT),
                    "{}",
                    policy["metadata"]["name"]
                );
            }
        }

        let objects = with_metrics(&manifests);
        let scrape = json!({
            "prometheus.io/scrape": "true",
            "prometheus.io/port": "9464",
            "prometheus.io/path": "/metrics",
        });
        let mut patched = BTreeSet::new();
        for object in &objects {
            let kind = object["kind"].as_str().unwrap();
            if kind != "StatefulSet" && kind != "Deployment" {
                continue;
            }
            let name = object["metadata"]["name"].as_str().unwrap();
            let template = &object["spec"]["template"];
            assert_eq!(template["metadata"]["annotations"], scrape, "{name}");
            // The labels are the base's still.
            assert_eq!(
                template["metadata"]["labels"]["app.kubernetes.io/instance"],
                name
            );
            let ports = template["spec"]["containers"][0]["ports"]
                .as_array()
                .unwrap();
            let own = if name == CONSOLE { 1 } else { 2 };
            assert_eq!(
                ports.len(),
                own + 1,
                "{name}: grpc and health, or https; metrics"
            );
            assert_eq!(
                ports[own],
                json!({"name": "metrics", "containerPort": 9464, "protocol": "TCP"})
            );
            patched.insert((kind, name.to_owned()));
        }
        assert_eq!(
            patched.iter().filter(|(k, _)| *k == "StatefulSet").count(),
            24
        );
        assert!(patched.contains(&("Deployment", GATEWAY.to_owned())));
        assert!(patched.contains(&("Deployment", CONSOLE.to_owned())));
        assert_eq!(patched.len(), 26);

        // The policy: port 9464 of every coldchain pod, from scrapers only.
        let [(_, policy)] = manifests.metrics.resources.as_slice() else {
            panic!("one resource: the policy");
        };
        assert_eq!(policy["kind"], "NetworkPolicy");
        assert_eq!(
            policy["spec"]["podSelector"],
            json!({"matchLabels": {"app.kubernetes.io/name": "coldchain"}})
        );
        for object in objects
            .iter()
            .filter(|o| o["spec"].get("template").is_some())
        {
            assert_eq!(
                object["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"],
                "coldchain"
            );
        }
        let rules = policy["spec"]["ingress"].as_array().unwrap();
        assert_eq!(rules.len(), 1);
        assert_eq!(
            rules[0]["ports"],
            json!([{"port": METRICS_PORT, "protocol": "TCP"}])
        );
        assert_eq!(
            rules[0]["from"],
            json!([
                {"podSelector": {"matchLabels": {SCRAPER_LABEL: "true"}}},
                {"namespaceSelector": {"matchLabels": {SCRAPER_LABEL: "true"}}},
            ])
        );

        // The files: a Component naming every file it has, enabled by the example overlay.
        let component = file(&manifests, "components/metrics/kustomization.yaml");
        assert!(component.contains("\nkind: \"Component\"\n"));
        assert!(component.contains("\napiVersion: \"kustomize.config.k8s.io/v1alpha1\"\n"));
        assert!(component.contains("No ServiceMonitor"));
        assert!(component.contains("resources:\n  - \"policy.yaml\"\n"));
        for name in ["pod-annotations.yaml", "pod-port.yaml"] {
            assert!(
                component.contains(&format!("  - path: \"{name}\"\n")),
                "{name}"
            );
        }
        for name in ["policy.yaml", "pod-annotations.yaml", "pod-port.yaml"] {
            file(&manifests, &format!("components/metrics/{name}"));
        }
        let overlay = file(&manifests, "overlays/example/kustomization.yaml");
        assert!(overlay.contains("\ncomponents:\n  - ../../components/metrics\n"));
    }

    #[test]
    fn names_are_dns_labels() {
        assert!(is_dns_label("coldchain"));
        assert!(is_dns_label("inventory-la-vientiane"));
        assert!(!is_dns_label("Coldchain"));
        assert!(!is_dns_label("-a"));
        assert!(!is_dns_label(""));
        assert!(!is_dns_label(&"a".repeat(64)));
        assert_eq!(quantity("256M"), "256Mi");
        assert_eq!(quantity("1G"), "1Gi");
    }
}
