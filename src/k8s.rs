//! `gauntlet k8s job`: the Kubernetes manifest of a sharded run — a ConfigMap with the
//! scenario files, an Indexed Job of N pods each running `gauntlet run --shards N` (its index
//! from `JOB_COMPLETION_INDEX`), every pod starting at one instant. Pure: plain data in, YAML
//! out; nothing here reads a file or talks to a cluster.

use serde_json::{Value, json};

/// The exit code of a bad scenario or bad usage (`app::Exit::Usage`): no retry can fix it,
/// so the Job fails at once.
pub const CONFIG_ERROR_EXIT: u8 = 2;
/// The exit code of a run that could not start (`app::Exit::Runtime`), e.g. a shard retried
/// after the common start instant: that index fails without more retries.
pub const CANNOT_START_EXIT: u8 = 3;
/// Where the scenario files are mounted in a pod.
pub const MOUNT: &str = "/gauntlet/scenario";

/// One file of the scenario: its ConfigMap key, its path under [`MOUNT`], its text.
#[derive(Debug, Clone)]
pub struct File {
    /// ConfigMap key.
    pub key: String,
    /// Path under the mount (relative).
    pub path: String,
    /// Contents.
    pub text: String,
}

/// A file the scenario reads that goes into the Secret (certificates, keys): its key, its path
/// under [`MOUNT`], and where it is on this machine (for the `kubectl create secret` line).
#[derive(Debug, Clone)]
pub struct SecretFile {
    /// Secret key.
    pub key: String,
    /// Path under the mount (relative).
    pub path: String,
    /// Path on this machine.
    pub local: String,
}

/// What the manifest is made from.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The Job's name (a DNS label).
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// Container image.
    pub image: String,
    /// Shards (completions = parallelism).
    pub shards: u32,
    /// The run id every shard shares.
    pub run_id: String,
    /// When every shard starts (RFC 3339).
    pub start_at: String,
    /// The scenario file's path under the mount.
    pub scenario: String,
    /// The scenario and what it includes (in the ConfigMap).
    pub files: Vec<File>,
    /// Other files it reads (certificates, keys): a Secret the user creates holds them.
    pub secret_files: Vec<SecretFile>,
}

/// A DNS-1123 label from `s`: lowercase letters, digits and `-`, at most `max`.
pub fn label(s: &str, max: usize) -> String {
    let mut o: String =
        s.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    o.truncate(max);
    let o = o.trim_matches('-').to_string();
    if o.is_empty() { "gauntlet".into() } else { o }
}

/// The ConfigMap and the Job as YAML documents.
pub fn manifest(sp: &Spec) -> String {
    let labels = json!({ "app.kubernetes.io/name": "gauntlet", "gauntlet.dev/run": sp.run_id });
    let config = format!("{}-scenario", sp.name);
    let secret = format!("{}-files", sp.name);
    let data: serde_json::Map<String, Value> =
        sp.files.iter().map(|f| (f.key.clone(), Value::String(f.text.clone()))).collect();
    let config_map = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": { "name": config, "namespace": sp.namespace, "labels": labels },
        "data": data,
    });
    let item = |key: &str, path: &str| json!({ "key": key, "path": path });
    let config_items: Vec<Value> = sp.files.iter().map(|f| item(&f.key, &f.path)).collect();
    let mut sources = vec![json!({ "configMap": { "name": config, "items": config_items } })];
    if !sp.secret_files.is_empty() {
        let secret_items: Vec<Value> = sp.secret_files.iter().map(|f| item(&f.key, &f.path)).collect();
        sources.push(json!({ "secret": { "name": secret, "items": secret_items } }));
    }
    let args: Vec<String> = [
        "run",
        &format!("{MOUNT}/{}", sp.scenario),
        "--shards",
        &sp.shards.to_string(),
        "--start-at",
        &sp.start_at,
        "--run-id",
        &sp.run_id,
        "--headless",
        "--result-line",
        "--out",
        &format!("/results/{}", sp.run_id),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let job = json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": { "name": sp.name, "namespace": sp.namespace, "labels": labels },
        "spec": {
            "completionMode": "Indexed",
            "completions": sp.shards,
            "parallelism": sp.shards,
            // A shard evicted before the start instant is tried again; one evicted later
            // cannot start on time any more and fails its index (merge then says `partial`).
            "backoffLimitPerIndex": 1,
            "podFailurePolicy": { "rules": [
                { "action": "FailJob",
                  "onExitCodes": { "containerName": "gauntlet", "operator": "In", "values": [CONFIG_ERROR_EXIT] } },
                { "action": "FailIndex",
                  "onExitCodes": { "containerName": "gauntlet", "operator": "In", "values": [CANNOT_START_EXIT] } },
            ] },
            "template": {
                "metadata": { "labels": labels },
                "spec": {
                    "restartPolicy": "Never",
                    "terminationGracePeriodSeconds": 30,
                    "containers": [{
                        "name": "gauntlet",
                        "image": sp.image,
                        "args": args,
                        "volumeMounts": [
                            { "name": "scenario", "mountPath": MOUNT, "readOnly": true },
                            { "name": "results", "mountPath": "/results" },
                        ],
                    }],
                    "volumes": [
                        { "name": "scenario", "projected": { "sources": sources } },
                        { "name": "results", "emptyDir": {} },
                    ],
                },
            },
        },
    });
    let mut out = String::new();
    out.push_str(&format!(
        "# gauntlet k8s job: run {} of `{}` as {} shards, every shard starting at {}.\n",
        sp.run_id, sp.scenario, sp.shards, sp.start_at
    ));
    if !sp.secret_files.is_empty() {
        out.push_str("# The scenario reads certificates and keys; put them in a Secret first (never in this file):\n");
        out.push_str(&format!("#   kubectl -n {} create secret generic {secret}", sp.namespace));
        for f in &sp.secret_files {
            out.push_str(&format!(" \\\n#     --from-file={}={}", f.key, f.local));
        }
        out.push('\n');
    }
    out.push_str(&format!(
        "# Each shard prints its result as one line; when the Job is done, merge them:\n\
         #   kubectl -n {ns} wait --for=condition=complete --timeout=1h job/{name} &\n\
         #   kubectl -n {ns} wait --for=condition=failed --timeout=1h job/{name} & wait -n; kill %1 %2\n\
         # (a failed index fails the Job: its merge is a partial, failing result naming it)\n\
         #   kubectl -n {ns} logs -l job-name={name} --tail=-1 --max-log-requests={shards} \\\n\
         #     | gauntlet merge - --scenario SCENARIO --out results/{run}\n\
         # With an oracle upstream of the gateway, run `gauntlet oracle --run-id {run} --out DIR` there and add\n\
         # `--oracle DIR/oracle.json`. A ReadWriteMany volume at /results instead of the emptyDir keeps every\n\
         # shard's folder: `gauntlet merge /results/{run} …`.\n",
        ns = sp.namespace,
        name = sp.name,
        shards = sp.shards.max(1),
        run = sp.run_id,
    ));
    for doc in [config_map, job] {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&doc).unwrap_or_default());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_dns_safe() {
        assert_eq!(label("ZT Suite_v2!", 63), "zt-suite-v2");
        assert_eq!(label("---", 63), "gauntlet");
        assert!(label(&"a".repeat(100), 40).len() <= 40);
    }
}
