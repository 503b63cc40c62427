//! The files in `deploy/` against the gateway they deploy. The container image's, the systemd
//! unit's and the pod's settings start the real binary, which stores an event, answers its
//! probes, reloads and drains as each file says; ports, paths, users and grace periods agree
//! across the files; the alerting rules and the dashboard name only metrics and labels that a
//! running gateway exports.
//!
//! Two checks need tools outside Rust: `promtool` (`HOOKGATE_TEST_PROMTOOL`, which
//! `scripts/install-promtool.sh` provides) runs the rules' own unit tests, and `systemd-analyze`
//! (`HOOKGATE_TEST_SYSTEMD_ANALYZE`) verifies the unit. Without them those two are reported as
//! ignored, not passed, which is why this file has its own harness.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::Value;

use common::fake::{Answer, FakeTarget};
use common::serve::Served;
use common::*;

const PROMTOOL: &str = "HOOKGATE_TEST_PROMTOOL";
const SYSTEMD_ANALYZE: &str = "HOOKGATE_TEST_SYSTEMD_ANALYZE";

fn main() {
    let args = Arguments::from_args();
    let trials = vec![
        async_trial(
            "image_settings_serve_store_and_drain",
            image_settings_serve_store_and_drain,
        ),
        Trial::test("image_build_context_holds_what_the_build_reads", || {
            image_build_context_holds_what_the_build_reads();
            Ok(())
        }),
        async_trial(
            "kubernetes_manifests_agree_with_the_gateway",
            kubernetes_manifests_agree_with_the_gateway,
        ),
        async_trial(
            "systemd_unit_starts_reloads_and_stops_the_gateway",
            systemd_unit_starts_reloads_and_stops_the_gateway,
        ),
        async_trial(
            "rules_and_dashboard_name_exported_metrics_and_labels",
            rules_and_dashboard_name_exported_metrics_and_labels,
        ),
        tool_trial(
            "promtool_checks_and_tests_the_rules",
            PROMTOOL,
            promtool_checks_and_tests_the_rules,
        ),
        tool_trial(
            "systemd_analyze_verifies_the_unit",
            SYSTEMD_ANALYZE,
            systemd_analyze_verifies_the_unit,
        ),
    ];
    libtest_mimic::run(&args, trials).exit();
}

fn async_trial<F, Fut>(name: &str, f: F) -> Trial
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    Trial::test(name, move || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| Failed::from(e.to_string()))?
            .block_on(f());
        Ok(())
    })
}

/// A check that runs the tool named by `env`; ignored (and said so) when `env` is unset.
fn tool_trial(name: &str, env: &'static str, f: fn(&Path)) -> Trial {
    let tool = std::env::var(env).ok().filter(|v| !v.trim().is_empty());
    let ignored = tool.is_none();
    if ignored {
        eprintln!("deploy: {name} ignored: set {env} to the tool's path to run it");
    }
    Trial::test(name, move || {
        let tool = tool.ok_or_else(|| Failed::from(format!("{env} is not set")))?;
        f(Path::new(&tool));
        Ok(())
    })
    .with_kind(format!("needs {env}"))
    .with_ignored_flag(ignored)
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn deploy(file: &str) -> PathBuf {
    repo().join("deploy").join(file)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn port_of(addr: &str) -> u16 {
    addr.parse::<SocketAddr>()
        .unwrap_or_else(|e| panic!("{addr}: {e}"))
        .port()
}

/// The variables `routes.toml` needs without a default (`${VAR}`, not `${VAR:-...}`).
fn required_variables(toml: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for piece in toml.split("${").skip(1) {
        let name: String = piece
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if piece[name.len()..].starts_with('}') {
            out.insert(name);
        }
    }
    out
}

/// The deployment's routes.toml as the gateway reads it (each required secret given a value).
fn deploy_config() -> hookgate::config::Config {
    let needed = required_variables(&read(&deploy("routes.toml")));
    hookgate::config::load_with(&read(&deploy("routes.toml")), &|k: &str| {
        needed.contains(k).then(|| "value".to_string())
    })
    .unwrap_or_else(|e| panic!("deploy/routes.toml: {e}"))
}

/// The directory of the deployment's SQLite store.
fn store_dir() -> PathBuf {
    let url = deploy_config().store.url;
    let file = url.strip_prefix("sqlite://").expect("an SQLite store");
    Path::new(file).parent().unwrap().to_path_buf()
}

fn seconds(humantime: &str) -> u64 {
    humantime::parse_duration(humantime)
        .unwrap_or_else(|e| panic!("{humantime}: {e}"))
        .as_secs()
}

// ---------------------------------------------------------------------------------------------
// The gateway binary, run as a deployment runs it.

/// `hookgate` started with exactly `env` (nothing inherited), as a deployment starts it.
async fn start_as_deployed(args: &[&str], env: &BTreeMap<String, String>, cwd: &Path) -> Served {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookgate"));
    cmd.args(args)
        .env_clear()
        .envs(env)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    Served::spawn(cmd)
        .await
        .unwrap_or_else(|run| panic!("the gateway did not start: {run:?}"))
}

async fn get_admin(g: &Served, path: &str) -> (u16, String) {
    let r = client().get(g.admin_url(path)).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// A signed Databricks event to `/hooks/databricks`: its answer.
async fn post_databricks(g: &Served, secret: &str, version: u32) -> (u16, Value) {
    let body = format!(
        r#"{{"event":"MODEL_VERSION_CREATED","webhook_id":"w","event_timestamp":1,"model_name":"deployed","version":"{version}"}}"#
    );
    post_databricks_to(&g.url("/hooks/databricks"), secret, &body).await
}

/// SIGTERM: the gateway drains and exits 0.
async fn stop_cleanly(g: Served) {
    let run = g.stop().await;
    assert_eq!(run.code, 0, "{}", run.stderr);
}

/// What every deployment's environment gets in a test: its own store and ephemeral ports on
/// loopback in place of the fixed ones (which the checks below compare with the files), and a
/// value for each secret the deployment's routes.toml requires.
fn test_overrides(env: &mut BTreeMap<String, String>, store_dir: &Path) {
    env.insert("HOOKGATE_SERVER__LISTEN".into(), "127.0.0.1:0".into());
    env.insert("HOOKGATE_SERVER__ADMIN_LISTEN".into(), "127.0.0.1:0".into());
    env.insert(
        "HOOKGATE_STORE__URL".into(),
        format!("sqlite://{}", store_dir.join("hookgate.db").display()),
    );
    for var in required_variables(&read(&deploy("routes.toml"))) {
        env.insert(var.clone(), format!("{}-value", var.to_lowercase()));
    }
}

// ---------------------------------------------------------------------------------------------
// The container image.

struct Stage {
    name: Option<String>,
    from: String,
    /// (instruction, its arguments with continuation lines joined).
    instructions: Vec<(String, String)>,
}

fn dockerfile() -> Vec<Stage> {
    let text = read(&deploy("Dockerfile"));
    let mut logical = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let t = line.trim();
        if current.is_empty() && (t.is_empty() || t.starts_with('#')) {
            continue;
        }
        match t.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(t);
                logical.push(std::mem::take(&mut current));
            }
        }
    }
    let mut stages: Vec<Stage> = Vec::new();
    for l in logical {
        let (ins, rest) = l.split_once(char::is_whitespace).unwrap();
        let (ins, rest) = (ins.to_uppercase(), rest.trim().to_string());
        if ins == "FROM" {
            let words: Vec<&str> = rest.split_whitespace().collect();
            stages.push(Stage {
                from: words[0].to_string(),
                name: (words.len() == 3 && words[1].eq_ignore_ascii_case("as"))
                    .then(|| words[2].to_string()),
                instructions: Vec::new(),
            });
        } else {
            stages
                .last_mut()
                .expect("FROM comes first")
                .instructions
                .push((ins, rest));
        }
    }
    stages
}

impl Stage {
    fn all(&self, ins: &str) -> Vec<&str> {
        self.instructions
            .iter()
            .filter(|(i, _)| i == ins)
            .map(|(_, a)| a.as_str())
            .collect()
    }

    fn one(&self, ins: &str) -> &str {
        let all = self.all(ins);
        assert_eq!(all.len(), 1, "one {ins} in the stage from {}", self.from);
        all[0]
    }

    fn env(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for args in self.all("ENV") {
            for pair in args.split_whitespace() {
                let (k, v) = pair.split_once('=').expect("ENV in key=value form");
                assert!(!v.contains('"'), "unquoted ENV values: {pair}");
                out.insert(k.to_string(), v.to_string());
            }
        }
        out
    }

    /// (flags, sources, destination) of each COPY.
    fn copies(&self) -> Vec<(Vec<&str>, Vec<&str>, &str)> {
        self.all("COPY")
            .into_iter()
            .map(|args| {
                let words: Vec<&str> = args.split_whitespace().collect();
                let (flags, paths): (Vec<&str>, Vec<&str>) =
                    words.iter().partition(|w| w.starts_with("--"));
                let (dest, sources) = paths.split_last().unwrap();
                (flags, sources.to_vec(), *dest)
            })
            .collect()
    }

    fn json_words(&self, ins: &str) -> Vec<String> {
        serde_json::from_str(self.one(ins))
            .unwrap_or_else(|e| panic!("{ins} in exec (JSON) form: {e}"))
    }
}

/// The final stage, what `docker run` runs.
fn image() -> Stage {
    dockerfile().pop().unwrap()
}

/// Where the image's COPY lines put a file of the repository: (path in the image, repo path).
fn copied_from_repo(stage: &Stage) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for (flags, sources, dest) in stage.copies() {
        if flags.iter().any(|f| f.starts_with("--from=")) {
            continue;
        }
        for s in sources {
            out.push((dest.to_string(), repo().join(s)));
        }
    }
    out
}

async fn image_settings_serve_store_and_drain() {
    let image = image();
    let env = image.env();

    // The configuration the image runs is the deployment file, copied where HOOKGATE_CONFIG
    // points.
    let config = &env["HOOKGATE_CONFIG"];
    let copied = copied_from_repo(&image);
    let (_, source) = copied
        .iter()
        .find(|(dest, _)| dest == config)
        .unwrap_or_else(|| panic!("no COPY puts a file at {config}"));
    assert_eq!(source, &deploy("routes.toml"));

    // It runs `hookgate serve`, as the image's unprivileged user, from the binary the build
    // stage made.
    let entry = image.json_words("ENTRYPOINT");
    assert_eq!(image.json_words("CMD"), ["serve"]);
    assert!(
        image.copies().iter().any(|(flags, sources, dest)| {
            flags.contains(&"--from=build") && sources == &["/out/hookgate"] && *dest == entry[0]
        }),
        "the entrypoint {} is the built binary",
        entry[0]
    );
    assert_eq!(image.one("USER"), "65532:65532");

    // Both listeners are reachable from outside the container, on the ports it exposes.
    let listen = &env["HOOKGATE_SERVER__LISTEN"];
    let admin = &env["HOOKGATE_SERVER__ADMIN_LISTEN"];
    assert!(listen.starts_with("0.0.0.0:") && admin.starts_with("0.0.0.0:"));
    let exposed: BTreeSet<u16> = image
        .one("EXPOSE")
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(exposed, BTreeSet::from([port_of(listen), port_of(admin)]));

    // The store is in the volume, which is also the working directory.
    let volume: Vec<String> = image.json_words("VOLUME");
    assert_eq!(volume, [path_str(&store_dir())]);
    assert_eq!(image.one("WORKDIR"), volume[0]);

    // Without its secrets the image refuses to start, and says which variable is missing.
    let dir = tempfile::tempdir().unwrap();
    let mut run_env = env.clone();
    run_env.insert("HOOKGATE_CONFIG".into(), path_str(&source.clone()));
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .args(image.json_words("CMD"))
        .env_clear()
        .envs(&run_env)
        .current_dir(dir.path())
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("DATABRICKS_WEBHOOK_SECRET is not set"),
        "{stderr}"
    );

    // With them, `docker run` of this image: JSON logs, an event stored, probes answered, and
    // SIGTERM (the image's STOPSIGNAL) drains and exits 0.
    assert_eq!(image.one("STOPSIGNAL"), "SIGTERM");
    test_overrides(&mut run_env, dir.path());
    let cmd = image.json_words("CMD");
    let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
    let g = start_as_deployed(&args, &run_env, dir.path()).await;
    let secret = &run_env["DATABRICKS_WEBHOOK_SECRET"];
    let (status, body) = post_databricks(&g, secret, 1).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("accepted")));
    assert_eq!(get_admin(&g, "/readyz").await.0, 200);
    assert!(
        g.stderr()
            .lines()
            .all(|l| serde_json::from_str::<Value>(l).is_ok()),
        "every log line is JSON:\n{}",
        g.stderr()
    );
    stop_cleanly(g).await;
    assert_eq!(
        count_rows(&dir.path().join("hookgate.db"), "events").await,
        1
    );
}

fn path_str(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

/// `deploy/Dockerfile.dockerignore` as the builder applies it: the last pattern that matches a
/// path or one of its parent directories decides.
struct DockerIgnore(Vec<(bool, globset::GlobMatcher)>);

impl DockerIgnore {
    fn load() -> DockerIgnore {
        let patterns = read(&deploy("Dockerfile.dockerignore"))
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| {
                let (keep, p) = match l.strip_prefix('!') {
                    Some(p) => (true, p),
                    None => (false, l),
                };
                let glob = globset::GlobBuilder::new(p.trim_end_matches('/'))
                    .literal_separator(true)
                    .build()
                    .unwrap()
                    .compile_matcher();
                (keep, glob)
            })
            .collect();
        DockerIgnore(patterns)
    }

    fn excludes(&self, rel: &Path) -> bool {
        let mut excluded = false;
        for (keep, glob) in &self.0 {
            if rel
                .ancestors()
                .any(|a| !a.as_os_str().is_empty() && glob.is_match(a))
            {
                excluded = !keep;
            }
        }
        excluded
    }
}

fn files_under(p: &Path, out: &mut Vec<PathBuf>) {
    if p.is_dir() {
        for e in std::fs::read_dir(p).unwrap() {
            files_under(&e.unwrap().path(), out);
        }
    } else {
        out.push(p.to_path_buf());
    }
}

fn image_build_context_holds_what_the_build_reads() {
    let stages = dockerfile();
    let ignore = DockerIgnore::load();

    // Every file a COPY names from the repository reaches the builder.
    let mut checked = 0;
    for stage in &stages {
        for (_, source) in copied_from_repo(stage) {
            assert!(source.exists(), "{} does not exist", source.display());
            let mut files = Vec::new();
            files_under(&source, &mut files);
            for f in files {
                let rel = f.strip_prefix(repo()).unwrap();
                assert!(!ignore.excludes(rel), "{} is excluded", rel.display());
                checked += 1;
            }
        }
    }
    assert!(checked > 20, "only {checked} files copied");

    // What the manifest needs to build: itself, the lock, build.rs and what it reads, the
    // sources, and every test target the manifest names.
    let build = &stages[0];
    let from_repo: BTreeSet<PathBuf> = copied_from_repo(build)
        .into_iter()
        .map(|(_, s)| s)
        .collect();
    for needed in [
        "Cargo.toml",
        "Cargo.lock",
        "build.rs",
        ".cargo",
        "scripts/symbol-order.txt",
        "src",
        "tests",
    ] {
        assert!(
            from_repo.contains(&repo().join(needed)),
            "{needed} is copied"
        );
    }
    assert!(
        build.one("RUN").contains("cargo build --release --locked"),
        "the image is a locked release build"
    );

    // Nothing heavy or local reaches the builder.
    for excluded in [
        "target/release/hookgate",
        "hookgate.db",
        "bench/run.py",
        ".git/HEAD",
    ] {
        assert!(ignore.excludes(Path::new(excluded)), "{excluded} is sent");
    }

    // The toolchain is at least the manifest's rust-version.
    let needs = read(&repo().join("Cargo.toml"))
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .expect("the manifest names a rust-version")
        .trim_matches('"')
        .to_string();
    let has = build
        .from
        .strip_prefix("rust:")
        .and_then(|t| t.split('-').next())
        .expect("the build stage is an official rust image");
    let version = |v: &str| -> Vec<u32> { v.split('.').map(|n| n.parse().unwrap()).collect() };
    assert!(version(has) >= version(&needs), "rust {has} < {needs}");
    assert_eq!(build.name.as_deref(), Some("build"));
}

// ---------------------------------------------------------------------------------------------
// Kubernetes.

/// Every document of a YAML file, as JSON values.
fn yaml(path: &Path) -> Vec<Value> {
    yaml_rust2::YamlLoader::load_from_str(&read(path))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .iter()
        .map(yaml_to_json)
        .collect()
}

fn yaml_to_json(y: &yaml_rust2::Yaml) -> Value {
    use yaml_rust2::Yaml;
    match y {
        Yaml::Real(s) => Value::from(s.parse::<f64>().unwrap()),
        Yaml::Integer(i) => Value::from(*i),
        Yaml::String(s) => Value::from(s.as_str()),
        Yaml::Boolean(b) => Value::from(*b),
        Yaml::Array(a) => Value::Array(a.iter().map(yaml_to_json).collect()),
        Yaml::Hash(h) => Value::Object(
            h.iter()
                .map(|(k, v)| {
                    (
                        k.as_str().expect("string keys").to_string(),
                        yaml_to_json(v),
                    )
                })
                .collect(),
        ),
        Yaml::Null => Value::Null,
        other => panic!("unexpected YAML node {other:?}"),
    }
}

fn str_of<'a>(v: &'a Value, what: &str) -> &'a str {
    v.as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {v}"))
}

async fn kubernetes_manifests_agree_with_the_gateway() {
    let kustomization = yaml(&deploy("kustomization.yaml")).remove(0);
    let mut docs = Vec::new();
    for r in kustomization["resources"].as_array().unwrap() {
        docs.extend(yaml(&deploy(str_of(r, "resource"))));
    }
    let by_kind =
        |kind: &str| -> Vec<&Value> { docs.iter().filter(|d| d["kind"] == kind).collect() };
    let generator = &kustomization["configMapGenerator"][0];
    assert_eq!(generator["files"], serde_json::json!(["routes.toml"]));

    let deployment = by_kind("Deployment")[0];
    let pod = &deployment["spec"]["template"];
    let pod_labels = pod["metadata"]["labels"].as_object().unwrap();
    for (k, v) in deployment["spec"]["selector"]["matchLabels"]
        .as_object()
        .unwrap()
    {
        assert_eq!(pod_labels.get(k), Some(v), "the selector selects the pod");
    }
    let container = &pod["spec"]["containers"][0];
    let env: BTreeMap<String, String> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                str_of(&e["name"], "env name").into(),
                str_of(&e["value"], "env value").into(),
            )
        })
        .collect();

    // The pod runs the image's command as the image's user.
    assert_eq!(
        container["args"],
        serde_json::json!(image().json_words("CMD"))
    );
    let uid = image()
        .one("USER")
        .split(':')
        .next()
        .unwrap()
        .parse::<i64>()
        .unwrap();
    assert_eq!(pod["spec"]["securityContext"]["runAsUser"], uid);
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);

    // Its secrets come from the Secret the kustomization's instructions create, and that
    // Secret's instructions name every variable routes.toml requires.
    let secret = str_of(&container["envFrom"][0]["secretRef"]["name"], "secret name");
    let instructions = read(&deploy("kustomization.yaml"));
    assert!(instructions.contains(&format!("create secret generic {secret}")));
    for var in required_variables(&read(&deploy("routes.toml"))) {
        assert!(
            instructions.contains(&format!("--from-literal={var}=")),
            "{var}"
        );
    }

    // Ports: the container's named ports are the listeners' ports; the public Service carries
    // the webhook port only; the admin Service carries the admin port; every targetPort names
    // a container port.
    let ports: BTreeMap<&str, i64> = container["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                str_of(&p["name"], "port name"),
                p["containerPort"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ports["http"],
        port_of(&env["HOOKGATE_SERVER__LISTEN"]) as i64
    );
    assert_eq!(
        ports["admin"],
        port_of(&env["HOOKGATE_SERVER__ADMIN_LISTEN"]) as i64
    );
    let services = by_kind("Service");
    for s in &services {
        for (k, v) in s["spec"]["selector"].as_object().unwrap() {
            assert_eq!(pod_labels.get(k), Some(v), "the Service selects the pod");
        }
    }
    let targets = |name: &str| -> Vec<&str> {
        let s = services
            .iter()
            .find(|s| s["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("a Service {name}"));
        s["spec"]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| str_of(&p["targetPort"], "targetPort"))
            .collect()
    };
    assert_eq!(targets("hookgate"), ["http"]);
    assert_eq!(targets("hookgate-admin"), ["admin"]);

    // The Prometheus Operator's ServiceMonitor selects the admin Service by its own labels
    // (also when applied without kustomize) and scrapes its port.
    let monitor = &yaml(&deploy("kubernetes/servicemonitor.yaml"))[0];
    let admin_service = services
        .iter()
        .find(|s| s["metadata"]["name"] == "hookgate-admin")
        .unwrap();
    let admin_labels = admin_service["metadata"]["labels"].as_object().unwrap();
    for (k, v) in monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .unwrap()
    {
        assert_eq!(
            admin_labels.get(k),
            Some(v),
            "the ServiceMonitor selects hookgate-admin"
        );
    }
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "admin");
    // Its job label is the job the alerting rules watch.
    let job = str_of(
        &admin_labels[str_of(&monitor["spec"]["jobLabel"], "jobLabel")],
        "job",
    );
    let rules = read(&deploy("prometheus/hookgate.rules.yml"));
    assert!(
        rules.contains(&format!("up{{job=\"{job}\"}}")),
        "the rules watch job {job}"
    );
    assert_eq!(monitor["spec"]["endpoints"][0]["path"], "/metrics");
    let annotations = &pod["metadata"]["annotations"];
    assert_eq!(
        annotations["prometheus.io/port"],
        ports["admin"].to_string()
    );

    // Mounts: the generated ConfigMap where HOOKGATE_CONFIG points, the claim where the store
    // is, and a writable /tmp beside the read-only root.
    let config = PathBuf::from(&env["HOOKGATE_CONFIG"]);
    let volumes = pod["spec"]["volumes"].as_array().unwrap();
    let volume = |name: &str| volumes.iter().find(|v| v["name"] == name).unwrap();
    let mounted_at = |path: &Path| -> &Value {
        let m = container["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| Path::new(str_of(&m["mountPath"], "mountPath")) == path)
            .unwrap_or_else(|| panic!("nothing mounted at {}", path.display()));
        volume(str_of(&m["name"], "mount name"))
    };
    assert_eq!(
        mounted_at(config.parent().unwrap())["configMap"]["name"],
        generator["name"]
    );
    assert_eq!(config.file_name().unwrap(), "routes.toml");
    let claim = &mounted_at(&store_dir())["persistentVolumeClaim"]["claimName"];
    assert!(
        by_kind("PersistentVolumeClaim")
            .iter()
            .any(|c| &c["metadata"]["name"] == claim),
        "the claim {claim} is defined"
    );
    assert!(mounted_at(Path::new("/tmp"))["emptyDir"].is_object());
    // One SQLite file, one writer: the old pod stops before the new one starts.
    assert_eq!(deployment["spec"]["replicas"], 1);
    assert_eq!(deployment["spec"]["strategy"]["type"], "Recreate");

    // Stopping: the grace period covers the preStop pause and the gateway's own drain.
    let grace = pod["spec"]["terminationGracePeriodSeconds"]
        .as_u64()
        .unwrap();
    let pause = container["lifecycle"]["preStop"]["sleep"]["seconds"]
        .as_u64()
        .unwrap();
    let drain = deploy_config().server.shutdown_grace.as_secs();
    assert!(grace > pause + drain, "{grace} s <= {pause} + {drain} s");

    // The pod's settings start the gateway, and its probes get 200 where they look.
    let dir = tempfile::tempdir().unwrap();
    let mut run_env = env.clone();
    run_env.insert("HOOKGATE_CONFIG".into(), path_str(&deploy("routes.toml")));
    test_overrides(&mut run_env, dir.path());
    let args: Vec<String> = serde_json::from_value(container["args"].clone()).unwrap();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let g = start_as_deployed(&args, &run_env, dir.path()).await;
    for probe in ["readinessProbe", "livenessProbe"] {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["port"], "admin", "{probe} asks the admin listener");
        let (status, _) = get_admin(&g, str_of(&get["path"], "probe path")).await;
        assert_eq!(status, 200, "{probe}");
    }
    let (status, body) = post_databricks(&g, &run_env["DATABRICKS_WEBHOOK_SECRET"], 1).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("accepted")));
    stop_cleanly(g).await;
}

// ---------------------------------------------------------------------------------------------
// systemd.

/// `key=value` lines by section; a key may repeat.
fn unit() -> BTreeMap<String, Vec<(String, String)>> {
    let mut out: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let mut section = String::new();
    for line in read(&deploy("hookgate.service")).lines() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') || t.starts_with(';') {
            continue;
        }
        if let Some(s) = t.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            section = s.to_string();
            continue;
        }
        let (k, v) = t
            .split_once('=')
            .unwrap_or_else(|| panic!("not key=value: {t}"));
        out.entry(section.clone())
            .or_default()
            .push((k.to_string(), v.to_string()));
    }
    out
}

fn unit_value<'a>(unit: &'a BTreeMap<String, Vec<(String, String)>>, key: &str) -> &'a str {
    let found: Vec<&str> = unit["Service"]
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(found.len(), 1, "one {key}=");
    found[0]
}

/// `KEY=value` lines of an environment file.
fn env_file(path: &Path) -> BTreeMap<String, String> {
    read(path)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect()
}

async fn systemd_unit_starts_reloads_and_stops_the_gateway() {
    let unit = unit();
    let exec: Vec<&str> = unit_value(&unit, "ExecStart").split_whitespace().collect();
    let [binary, "serve", "--config", config] = exec[..] else {
        panic!("ExecStart is `hookgate serve --config FILE`: {exec:?}");
    };
    assert_eq!(Path::new(binary).file_name().unwrap(), "hookgate");

    // The configuration and the environment file sit where the unit's comment installs them,
    // and the environment file names every secret the configuration requires (empty, so an
    // install that forgets one fails at start).
    let installs = read(&deploy("hookgate.service"));
    assert!(installs.contains(&format!("deploy/routes.toml {config}")));
    let env_path = unit_value(&unit, "EnvironmentFile");
    assert!(installs.contains(&format!("deploy/hookgate.env {env_path}")));
    let env = env_file(&deploy("hookgate.env"));
    for var in required_variables(&read(&deploy("routes.toml"))) {
        assert_eq!(
            env.get(&var).map(String::as_str),
            Some(""),
            "{var} in hookgate.env"
        );
    }

    // The store is in the unit's state directory, which is also its working directory.
    let state = format!("/var/lib/{}", unit_value(&unit, "StateDirectory"));
    assert_eq!(unit_value(&unit, "WorkingDirectory"), state);
    assert_eq!(store_dir(), Path::new(&state));

    // Stopping: systemd waits longer than the gateway drains.
    let drain = deploy_config().server.shutdown_grace.as_secs();
    let stop = seconds(unit_value(&unit, "TimeoutStopSec"));
    assert!(
        stop > drain,
        "TimeoutStopSec {stop} s <= shutdown_grace {drain} s"
    );

    // The unit's command with the environment file's settings (secrets filled in) runs the
    // gateway; ExecReload, run as systemd runs it, reloads it; the stop drains and exits 0.
    let dir = tempfile::tempdir().unwrap();
    let mut run_env: BTreeMap<String, String> = env.into_iter().collect();
    test_overrides(&mut run_env, dir.path());
    let file = path_str(&deploy("routes.toml"));
    let g = start_as_deployed(&["serve", "--config", &file], &run_env, dir.path()).await;
    let (status, _) = post_databricks(&g, &run_env["DATABRICKS_WEBHOOK_SECRET"], 7).await;
    assert_eq!(status, 200);
    let reload = unit_value(&unit, "ExecReload").replace("$MAINPID", &g.pid().to_string());
    let words: Vec<&str> = reload.split_whitespace().collect();
    let st = tokio::process::Command::new(words[0])
        .args(&words[1..])
        .status()
        .await
        .unwrap();
    assert!(st.success(), "{reload}");
    g.wait_metric("hookgate_config_reloads_total{result=\"ok\"}", 1.0)
        .await;
    stop_cleanly(g).await;
}

fn systemd_analyze_verifies_the_unit(tool: &Path) {
    // The unit as installed, with ExecStart at the binary under test (verify checks that the
    // program exists and is executable).
    let dir = tempfile::tempdir().unwrap();
    let text = read(&deploy("hookgate.service")).replace(
        "ExecStart=/usr/local/bin/hookgate",
        &format!("ExecStart={}", env!("CARGO_BIN_EXE_hookgate")),
    );
    let path = dir.path().join("hookgate.service");
    std::fs::write(&path, text).unwrap();
    let out = std::process::Command::new(tool)
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // Unknown keys and unparsable values are only warnings: any output is a mistake.
    assert_eq!(stderr.trim(), "", "systemd-analyze verify complains");
}

// ---------------------------------------------------------------------------------------------
// Prometheus rules and the dashboard.

/// Metric families a gateway exports and the labels of each, from a scrape.
fn families(scrape: &str) -> HashMap<String, BTreeSet<String>> {
    let mut out: HashMap<String, BTreeSet<String>> = HashMap::new();
    let mut histograms = BTreeSet::new();
    for line in scrape.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            out.entry(name.to_string()).or_default();
            if kind == "histogram" {
                histograms.insert(name.to_string());
            }
        }
    }
    for line in scrape.lines().filter(|l| !l.starts_with('#')) {
        let name_end = line.find(['{', ' ']).unwrap();
        let name = &line[..name_end];
        let labels: BTreeSet<String> = line[name_end..]
            .strip_prefix('{')
            .map(|l| {
                l.split("\",")
                    .filter_map(|kv| kv.split_once('=').map(|(k, _)| k.trim().to_string()))
                    .collect()
            })
            .unwrap_or_default();
        out.entry(name.to_string()).or_default().extend(labels);
    }
    // A histogram's series are `_bucket` (with `le`), `_sum` and `_count`.
    for h in histograms {
        out.entry(format!("{h}_bucket"))
            .or_default()
            .insert("le".into());
        out.entry(format!("{h}_sum")).or_default();
        out.entry(format!("{h}_count")).or_default();
    }
    out
}

/// Each `hookgate_*` metric an expression names, with the labels its matchers use.
fn used_metrics(expr: &str) -> Vec<(String, BTreeSet<String>)> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("hookgate_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = tail[..end].to_string();
        let mut labels = BTreeSet::new();
        if tail[end..].starts_with('{') {
            let close = tail[end..].find('}').unwrap();
            for m in tail[end + 1..end + close].split(',') {
                if let Some(k) = m.split(['=', '!']).next().map(str::trim)
                    && !k.is_empty()
                {
                    labels.insert(k.to_string());
                }
            }
        }
        out.push((name, labels));
        rest = &tail[end..];
    }
    out
}

/// The label names of `by (...)` clauses and `{{label}}` / `$labels.label` references.
fn grouping_labels(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for part in text.split("by (").skip(1) {
        for l in part.split(')').next().unwrap().split(',') {
            out.insert(l.trim().to_string());
        }
    }
    for part in text.split("{{").skip(1) {
        let inner = part.split("}}").next().unwrap().trim();
        let name = inner.strip_prefix("$labels.").unwrap_or(inner);
        if !name.starts_with('$') {
            out.insert(name.to_string());
        }
    }
    out
}

async fn rules_and_dashboard_name_exported_metrics_and_labels() {
    // A gateway that has done everything the rules and the dashboard watch: HTTPS, events
    // routed, unrouted and refused, deliveries delivered, retried and dead. (A labelled metric
    // has no series, and so no line in a scrape, before its first event.)
    let ok = FakeTarget::start().await;
    let refused = FakeTarget::start().await;
    refused.default_answer(Answer::status(400));
    let cert = tls_fixture("server.pem");
    let key = tls_fixture("server.key");
    let extra = format!(
        r#"{tls}
[retry]
timeout = "3s"
initial = "50ms"
max_delay = "100ms"
max_attempts = 2

[targets.ok]
kind = "http"
url = "{ok}"

[targets.refused]
kind = "http"
url = "{refused}"

[[routes]]
name = "created"
events = ["MODEL_VERSION_CREATED"]
to = ["ok", "refused"]
"#,
        tls = tls_section(&cert, &key),
        ok = ok.url("/"),
        refused = refused.url("/"),
    );
    ok.script([Answer::status(503)]);
    let g = Gateway::start(&extra).await;
    let (status, _) = g
        .post_databricks(r#"{"event":"MODEL_VERSION_CREATED","model_name":"m","version":"1"}"#)
        .await;
    assert_eq!(status, 200);
    let (status, body) = g
        .post_databricks(r#"{"event":"COMMENT_CREATED","model_name":"m"}"#)
        .await;
    assert_eq!(
        (status, body["targets"].as_array().unwrap().len()),
        (200, 0)
    );
    let (status, _) = g.post_databricks_signed("wrong", r#"{"event":"X"}"#).await;
    assert_eq!(status, 401);
    g.wait_metric(
        "hookgate_deliveries_total{outcome=\"delivered\",target=\"ok\"}",
        1.0,
    )
    .await;
    g.wait_metric(
        "hookgate_deliveries_total{outcome=\"dead\",target=\"refused\"}",
        1.0,
    )
    .await;
    let exported = families(&g.metrics().await);
    g.stop().await;

    // Labels Prometheus adds at scrape time.
    let scrape_labels = ["instance", "job"];
    let check = |origin: &str, expr: &str, legend: &str| {
        let used = used_metrics(expr);
        assert!(
            !used.is_empty() || expr.contains("up{"),
            "{origin}: no metric in {expr}"
        );
        let mut available: BTreeSet<String> = scrape_labels.iter().map(|s| s.to_string()).collect();
        for (name, labels) in &used {
            let have = exported
                .get(name)
                .unwrap_or_else(|| panic!("{origin}: {name} is not exported"));
            for l in labels {
                assert!(
                    have.contains(l) || scrape_labels.contains(&l.as_str()),
                    "{origin}: {name} has no label {l}"
                );
            }
            available.extend(have.iter().cloned());
        }
        for l in grouping_labels(expr).union(&grouping_labels(legend)) {
            assert!(
                available.contains(l),
                "{origin}: no metric of {expr} has label {l}"
            );
        }
    };

    let rules = &yaml(&deploy("prometheus/hookgate.rules.yml"))[0];
    let mut alerts = 0;
    for group in rules["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            let name = str_of(&rule["alert"], "alert");
            let annotations = serde_json::to_string(&rule["annotations"]).unwrap();
            check(name, str_of(&rule["expr"], "expr"), &annotations);
            alerts += 1;
        }
    }
    assert!(alerts >= 8, "{alerts} alerts");

    let dashboard: Value = serde_json::from_str(&read(&deploy("grafana/hookgate.json"))).unwrap();
    let mut queries = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        let title = str_of(&panel["title"], "title");
        for t in panel["targets"].as_array().into_iter().flatten() {
            let legend = t["legendFormat"].as_str().unwrap_or("");
            check(title, str_of(&t["expr"], "expr"), legend);
            queries += 1;
        }
    }
    assert!(queries >= 15, "{queries} queries");
    // Every metric the gateway exports is on the dashboard, except the build's version.
    let shown = serde_json::to_string(&dashboard["panels"]).unwrap();
    for name in exported.keys() {
        let base = name
            .strip_suffix("_bucket")
            .or_else(|| name.strip_suffix("_sum"))
            .or_else(|| name.strip_suffix("_count"))
            .unwrap_or(name);
        if base != "hookgate_build_info" && name.starts_with("hookgate_") {
            assert!(shown.contains(base), "{base} is not on the dashboard");
        }
    }
}

fn promtool_checks_and_tests_the_rules(promtool: &Path) {
    let dir = deploy("prometheus");
    for args in [
        ["check", "rules", "hookgate.rules.yml"],
        ["test", "rules", "hookgate.rules.test.yml"],
    ] {
        let out = std::process::Command::new(promtool)
            .args(args)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {}:\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
