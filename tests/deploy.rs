//! The deployment files and examples agree with camsync and with each other: every YAML and
//! JSON file parses, every camsync.yaml passes camsync's own config parser (and `camsync check`
//! where its inventory is at hand), and the ports, probe paths, mounts and secrets of the
//! compose stack, the Kubernetes manifests, the systemd unit and the Dockerfile are the ones the
//! configs they carry expect.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use camsync::camera::ValidationContext;
use camsync::config::{self, Config, SourceConfig};
use camsync::source::{Inventory, file, validate_records};
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn is_yaml(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    )
}

fn yaml_docs(text: &str, what: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(text).unwrap_or_else(|e| panic!("{what}: {e}"))
}

fn yaml(path: &Path) -> Value {
    let mut docs = yaml_docs(&read(path), &path.display().to_string());
    assert_eq!(docs.len(), 1, "{}: one document expected", path.display());
    docs.remove(0)
}

/// `KEY=value` lines (an env file or systemd's `Environment=` values).
fn env_file(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

fn port_of(address: &str) -> u16 {
    let port = address.rsplit(':').next().unwrap_or_default();
    port.parse()
        .unwrap_or_else(|_| panic!("{address:?} has no port"))
}

fn url_port(url: &Option<url::Url>) -> u16 {
    url.as_ref()
        .and_then(url::Url::port_or_known_default)
        .unwrap()
}

fn str_of<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string at {pointer} in {v}"))
}

/// The variables camsync reads for its own overrides: a deployment's environment sets them on
/// purpose; the "anything is set" environment of a bare example must not.
const OVERRIDES: [&str; 5] = [
    "CAMSYNC_CONFIG",
    "CAMSYNC_SOURCE_FILE",
    "CAMSYNC_STATE",
    "CAMSYNC_RESYNC",
    "CAMSYNC_ALLOW_MASS_DELETE",
];

enum Env {
    /// A deployment's environment: exactly these variables.
    Exactly(BTreeMap<String, String>),
    /// A bare example: every secret it names is assumed set.
    Anything,
}

impl Env {
    fn get(&self, name: &str) -> Option<String> {
        match self {
            Env::Exactly(vars) => vars.get(name).cloned(),
            Env::Anything if OVERRIDES.contains(&name) => None,
            // A database URL must look like one; it is never connected to here.
            Env::Anything if name.ends_with("DATABASE_URL") => {
                Some("postgresql://camsync@db.example/cameras".into())
            }
            Env::Anything => Some("example-value-1".into()),
        }
    }
}

/// Parses a camsync.yaml as if it were at `path`, with `env`.
fn parse_config(text: &str, path: &Path, env: &Env) -> Config {
    let env_fn = |name: &str| env.get(name);
    config::parse(text, path, &env_fn).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Loads a file source's inventory from `host_file` with `env`, as the deployment would.
fn inventory(config: &Config, host_file: &Path, env: &Env) -> Inventory {
    let targets = config.target_kinds();
    let env_fn = |name: &str| env.get(name);
    let ctx = ValidationContext::new(
        host_file.parent().unwrap(),
        &targets,
        &config.profiles,
        &env_fn,
    );
    let records = file::load(host_file, &mut Default::default()).unwrap_or_else(|e| panic!("{e}"));
    validate_records(records, &ctx)
}

fn assert_no_rejection(inventory: &Inventory, what: &str) {
    assert!(
        inventory.rejected.is_empty(),
        "{what}: rejected cameras: {:?}",
        inventory.rejected
    );
    assert!(!inventory.cameras.is_empty(), "{what}: no cameras");
}

#[test]
fn every_yaml_and_json_file_parses() {
    let mut count = 0;
    let mut files = files_under(&root().join("deploy"));
    files.extend(files_under(&root().join("examples")));
    files.extend([root().join("go2rtc.yaml"), root().join("mediamtx.yml")]);
    for path in files {
        let text = read(&path);
        let docs = if is_yaml(&path) {
            yaml_docs(&text, &path.display().to_string())
        } else if path.extension().is_some_and(|e| e == "json") {
            vec![serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))]
        } else {
            continue;
        };
        count += 1;
        // Files carried inside ConfigMaps parse too.
        for doc in docs {
            let Some(data) = doc.get("data").and_then(Value::as_object) else {
                continue;
            };
            for (key, value) in data {
                if key.ends_with(".yaml") || key.ends_with(".yml") {
                    yaml_docs(
                        value.as_str().unwrap(),
                        &format!("{}: {key}", path.display()),
                    );
                }
            }
        }
    }
    assert!(count >= 15, "only {count} files found");
}

/// Every camsync.yaml under examples/ (sqlite/ and postgres/ included when present): camsync's
/// parser accepts it, and `camsync check` passes where the inventory is a file.
#[test]
fn every_example_config_passes_camsync_check() {
    let configs: Vec<PathBuf> = files_under(&root().join("examples"))
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n == "camsync.yaml"))
        .collect();
    assert!(configs.len() >= 5, "{configs:?}");
    let mut kinds = BTreeSet::new();
    for path in configs {
        let config = parse_config(&read(&path), &path, &Env::Anything);
        kinds.insert(
            config
                .targets
                .iter()
                .map(|t| format!("{:?}", t.kind))
                .collect::<Vec<_>>(),
        );
        // The database sources' examples are run by their own tests (tests/source_*.rs).
        if !matches!(config.source, SourceConfig::File(_)) {
            continue;
        }
        let out = assert_cmd::Command::cargo_bin("camsync")
            .unwrap()
            .args(["check", "--config"])
            .arg(&path)
            .env_remove("CAMSYNC_CONFIG")
            .env("FRONT_DOOR_PASSWORD", "example-value-1")
            .env("CAMSYNC_WEBHOOK_SECRET", "example-value-2")
            .env("GO2RTC_API_PASSWORD", "example-value-3")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.starts_with("ok:"),
            "camsync check {}:\n{stdout}{}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // go2rtc API, MediaMTX API, both, and each file kind.
    for combo in [
        vec!["Go2rtc"],
        vec!["Mediamtx"],
        vec!["Go2rtc", "Mediamtx"],
        vec!["Go2rtcFile"],
        vec!["MediamtxFile"],
    ] {
        let combo: Vec<String> = combo.into_iter().map(String::from).collect();
        assert!(
            kinds.contains(&combo),
            "no example for {combo:?}: {kinds:?}"
        );
    }
}

/// The Dockerfile's facts the other files depend on.
struct Image {
    env: BTreeMap<String, String>,
    volumes: Vec<String>,
    expose: Vec<u16>,
    health_url: String,
}

fn image() -> Image {
    let text = read(&root().join("deploy/Dockerfile"));
    // Join continued lines.
    let joined = text.replace("\\\n", " ");
    let lines: Vec<&str> = joined
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .collect();
    let with = |instruction: &str| -> Vec<&str> {
        lines
            .iter()
            .filter_map(|l| l.strip_prefix(instruction))
            .filter_map(|rest| rest.strip_prefix(' '))
            .collect()
    };
    assert!(with("FROM").len() >= 2, "a multi-stage build");
    let user = with("USER").pop().expect("a USER");
    let uid = user.split(':').next().unwrap();
    assert!(
        uid != "0" && uid != "root",
        "the final image runs as {user}"
    );
    assert_eq!(with("ENTRYPOINT"), ["[\"camsync\"]"]);
    assert_eq!(
        with("CMD"),
        ["[\"run\"]"],
        "`docker run` runs `camsync run`"
    );
    let env = with("ENV")
        .iter()
        .flat_map(|l| l.split_whitespace())
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let volumes = with("VOLUME")
        .iter()
        .flat_map(|l| serde_json::from_str::<Vec<String>>(l).unwrap())
        .collect();
    let expose = with("EXPOSE")
        .iter()
        .flat_map(|l| l.split_whitespace())
        .map(|p| p.trim_end_matches("/tcp").parse().unwrap())
        .collect();
    let health = with("HEALTHCHECK").pop().expect("a HEALTHCHECK");
    let health_url = health
        .split(['"', ' '])
        .find(|w| w.starts_with("http://"))
        .expect("a URL in the HEALTHCHECK")
        .to_owned();
    Image {
        env,
        volumes,
        expose,
        health_url,
    }
}

#[test]
fn the_image_and_the_compose_stack_agree_with_their_config() {
    let image = image();
    let compose = yaml(&root().join("deploy/docker-compose.yml"));
    let services = &compose["services"];
    let camsync = &services["camsync"];
    assert_eq!(camsync["network_mode"], "service:go2rtc");
    assert_eq!(services["mediamtx"]["network_mode"], "service:go2rtc");

    // camsync's environment: the image's, then its env file.
    let env_file_path = root()
        .join("deploy")
        .join(camsync["env_file"].as_str().unwrap());
    let mut vars = image.env.clone();
    vars.extend(env_file(&read(&env_file_path)));
    let env = Env::Exactly(vars.clone());

    // Volumes: host path (relative to deploy/ or a named volume) → container path.
    let mounts: BTreeMap<String, String> = camsync["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            let parts: Vec<&str> = v.as_str().unwrap().split(':').collect();
            (parts[1].to_owned(), parts[0].to_owned())
        })
        .collect();
    let config_path = PathBuf::from(&vars["CAMSYNC_CONFIG"]);
    let config_dir = config_path.parent().unwrap().to_str().unwrap();
    let host_dir = root().join("deploy").join(&mounts[config_dir]);
    assert!(host_dir.is_dir(), "the config is mounted as a directory");
    let host_config = host_dir.join(config_path.file_name().unwrap());
    let config = parse_config(&read(&host_config), &config_path, &env);

    // The ledger is on a named volume (declared), in the image's VOLUME.
    let state_dir = config.state.parent().unwrap().to_str().unwrap().to_owned();
    let volume = &mounts[&state_dir];
    assert!(
        compose["volumes"].get(volume).is_some(),
        "{state_dir} is on the named volume {volume}"
    );
    assert!(image.volumes.contains(&state_dir), "{:?}", image.volumes);

    // The inventory is inside the mounted directory, and loads with the stack's secrets.
    let SourceConfig::File(source) = &config.source else {
        panic!("the compose stack reads a camera file");
    };
    assert_eq!(source.parent(), config_path.parent());
    let cameras = inventory(&config, &host_dir.join(source.file_name().unwrap()), &env);
    assert_no_rejection(&cameras, "compose cameras.yaml");

    // The API: the image exposes it, the health check calls it, the stack publishes it.
    let api_port = config.api.listen.port();
    assert_eq!(image.expose, [api_port]);
    assert_eq!(
        image.health_url,
        format!("http://127.0.0.1:{api_port}/healthz")
    );
    let published: Vec<&str> = services["go2rtc"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert!(published.contains(&format!("127.0.0.1:{api_port}:{api_port}").as_str()));

    // The servers' files are mounted, exist, and listen where camsync looks.
    for (service, file) in [("go2rtc", "go2rtc.yaml"), ("mediamtx", "mediamtx.yml")] {
        let volumes = services[service]["volumes"].as_array().unwrap();
        assert!(
            volumes
                .iter()
                .any(|v| v.as_str().unwrap().starts_with(&format!("../{file}:"))),
            "{service} mounts the repository's {file}"
        );
    }
    check_server_ports(&config);
    for target in &config.targets {
        let rtsp = url_port(&target.rtsp);
        assert!(
            published.contains(&format!("{rtsp}:{rtsp}").as_str()),
            "{}'s RTSP port {rtsp} is published",
            target.name
        );
    }
    // go2rtc expands ${GO2RTC_API_PASSWORD} from its env file.
    let go2rtc_env = env_file(&read(
        &root()
            .join("deploy")
            .join(services["go2rtc"]["env_file"].as_str().unwrap()),
    ));
    assert!(go2rtc_env.contains_key("GO2RTC_API_PASSWORD"));
}

/// The targets named `go2rtc` and `mediamtx` point at the ports of the repository's
/// go2rtc.yaml and mediamtx.yml.
fn check_server_ports(config: &Config) {
    let go2rtc = yaml(&root().join("go2rtc.yaml"));
    let mediamtx = yaml(&root().join("mediamtx.yml"));
    for target in &config.targets {
        let (api, rtsp) = match target.name.as_str() {
            "go2rtc" => (
                str_of(&go2rtc, "/api/listen"),
                str_of(&go2rtc, "/rtsp/listen"),
            ),
            "mediamtx" => (
                str_of(&mediamtx, "/apiAddress"),
                str_of(&mediamtx, "/rtspAddress"),
            ),
            other => panic!("unexpected target {other}"),
        };
        assert_eq!(url_port(&target.api), port_of(api), "{} API", target.name);
        assert_eq!(
            url_port(&target.rtsp),
            port_of(rtsp),
            "{} RTSP",
            target.name
        );
    }
}

/// One Kubernetes example directory: its resources by kind and name.
struct Manifests {
    dir: PathBuf,
    docs: Vec<Value>,
}

impl Manifests {
    fn load(dir: &Path) -> Manifests {
        let docs = files_under(dir)
            .into_iter()
            .filter(|p| is_yaml(p))
            .flat_map(|p| yaml_docs(&read(&p), &p.display().to_string()))
            .collect();
        Manifests {
            dir: dir.to_owned(),
            docs,
        }
    }

    fn find(&self, kind: &str, name: &str) -> &Value {
        self.docs
            .iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("{}: no {kind} {name}", self.dir.display()))
    }

    fn workloads(&self) -> impl Iterator<Item = &Value> {
        self.docs
            .iter()
            .filter(|d| d["kind"] == "Deployment" || d["kind"] == "StatefulSet")
    }

    /// A container's environment: `env` values (fieldRef metadata.name as the first pod's
    /// name) and every key of the Secrets it takes with `envFrom`.
    fn env(&self, workload: &Value, container: &Value) -> BTreeMap<String, String> {
        let mut vars = BTreeMap::new();
        for from in container["envFrom"].as_array().into_iter().flatten() {
            let secret = self.find("Secret", str_of(from, "/secretRef/name"));
            for (k, v) in secret["stringData"].as_object().unwrap() {
                vars.insert(k.clone(), v.as_str().unwrap().to_owned());
            }
        }
        for var in container["env"].as_array().into_iter().flatten() {
            let value = match (
                var.get("value"),
                var.pointer("/valueFrom/fieldRef/fieldPath"),
            ) {
                (Some(v), _) => v.as_str().unwrap().to_owned(),
                (None, Some(f)) if f == "metadata.name" => {
                    format!("{}-0", str_of(workload, "/metadata/name"))
                }
                other => panic!("unexpected env source {other:?}"),
            };
            vars.insert(str_of(var, "/name").to_owned(), value);
        }
        vars
    }

    /// The files a volume puts at its mount: key → content.
    fn volume_files(&self, workload: &Value, volume: &str) -> BTreeMap<String, String> {
        let spec = &workload["spec"]["template"]["spec"];
        let volume = spec["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == volume)
            .unwrap_or_else(|| panic!("no volume {volume}"));
        let map = self.find("ConfigMap", str_of(volume, "/configMap/name"));
        let data = map["data"].as_object().unwrap();
        match volume.pointer("/configMap/items").and_then(Value::as_array) {
            None => data
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                .collect(),
            Some(items) => items
                .iter()
                .map(|i| {
                    let key = str_of(i, "/key");
                    (
                        str_of(i, "/path").to_owned(),
                        data[key].as_str().unwrap().to_owned(),
                    )
                })
                .collect(),
        }
    }
}

fn container<'a>(workload: &'a Value, name: &str) -> &'a Value {
    workload["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no container {name}"))
}

/// A container port given by name or number.
fn resolve_port(container: &Value, port: &Value) -> u16 {
    match port {
        Value::Number(n) => n.as_u64().unwrap() as u16,
        Value::String(name) => container["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name.as_str())
            .and_then(|p| p["containerPort"].as_u64())
            .unwrap_or_else(|| panic!("no port named {name}"))
            as u16,
        other => panic!("bad port {other}"),
    }
}

#[test]
fn the_kubernetes_manifests_agree_with_the_configs_they_carry() {
    let dirs: Vec<PathBuf> = std::fs::read_dir(root().join("deploy/kubernetes"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    assert!(dirs.len() >= 2);
    let mut sharded = 0;
    for dir in dirs {
        let manifests = Manifests::load(&dir);
        let mut workloads = 0;
        for workload in manifests.workloads() {
            workloads += 1;
            check_pod(&manifests, workload, &mut sharded);
        }
        assert_eq!(workloads, 1, "{}", dir.display());
    }
    assert!(sharded >= 1, "a sharded example");
}

fn check_pod(manifests: &Manifests, workload: &Value, sharded: &mut usize) {
    let what = format!(
        "{}: {} {}",
        manifests.dir.display(),
        workload["kind"],
        workload["metadata"]["name"]
    );
    let camsync = container(workload, "camsync");
    let vars = manifests.env(workload, camsync);
    let config_path = PathBuf::from(
        vars.get("CAMSYNC_CONFIG")
            .cloned()
            .unwrap_or_else(|| image().env["CAMSYNC_CONFIG"].clone()),
    );
    let mounts: BTreeMap<String, String> = camsync["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                str_of(m, "/mountPath").to_owned(),
                str_of(m, "/name").to_owned(),
            )
        })
        .collect();
    let config_dir = config_path.parent().unwrap().to_str().unwrap();
    let files = manifests.volume_files(workload, &mounts[config_dir]);
    let name = config_path.file_name().unwrap().to_str().unwrap();
    let text = files
        .get(name)
        .unwrap_or_else(|| panic!("{what}: no {name} at {config_dir}"));
    let env = Env::Exactly(vars.clone());
    let config = parse_config(text, &config_path, &env);

    // The ledger is on a volume of its own.
    let state_dir = config.state.parent().unwrap().to_str().unwrap();
    assert!(
        mounts.contains_key(state_dir),
        "{what}: {state_dir} is not mounted"
    );
    if let SourceConfig::File(source) = &config.source {
        assert_eq!(source.parent(), config_path.parent(), "{what}");
        let source_name = source.file_name().unwrap().to_str().unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let host = tmp.path().join(source_name);
        std::fs::write(&host, &files[source_name]).unwrap();
        assert_no_rejection(&inventory(&config, &host, &env), &what);
    }

    // The API and the probes.
    let api_port = config.api.listen.port();
    assert!(
        !config.api.listen.ip().is_loopback(),
        "{what}: the kubelet probes the pod's address"
    );
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let get = &camsync[probe]["httpGet"];
        assert_eq!(get["path"], path, "{what}: {probe}");
        assert_eq!(
            resolve_port(camsync, &get["port"]),
            api_port,
            "{what}: {probe}"
        );
    }
    let security = &camsync["securityContext"];
    assert_eq!(security["runAsNonRoot"], true, "{what}");
    assert_eq!(security["readOnlyRootFilesystem"], true, "{what}");

    // Sharding follows the pod: its name carries the index, replicas the count.
    if let Some(shard) = &config.shard {
        *sharded += 1;
        assert_eq!(workload["kind"], "StatefulSet", "{what}");
        assert_eq!(
            u64::from(shard.count),
            workload["spec"]["replicas"].as_u64().unwrap(),
            "{what}: shard.count = replicas"
        );
        assert_eq!(shard.index, 0, "{what}: the first pod is shard 0");
    }

    // The servers in the pod listen where camsync looks.
    let mediamtx = container(workload, "mediamtx");
    let mtx = manifests.env(workload, mediamtx);
    let repo_mtx = yaml(&root().join("mediamtx.yml"));
    assert_eq!(mtx["MTX_APIADDRESS"], str_of(&repo_mtx, "/apiAddress"));
    assert_eq!(mtx["MTX_RTSPADDRESS"], str_of(&repo_mtx, "/rtspAddress"));
    assert_eq!(mtx["MTX_RTSPTRANSPORTS"], "tcp");
    assert_eq!(
        mtx["MTX_PATHDEFAULTS_RTSPTRANSPORT"],
        str_of(&repo_mtx, "/pathDefaults/rtspTransport")
    );
    let go2rtc = container(workload, "go2rtc");
    let go2rtc_mount = go2rtc["volumeMounts"][0]["name"].as_str().unwrap();
    let go2rtc_files = manifests.volume_files(workload, go2rtc_mount);
    let go2rtc_yaml = &go2rtc_files["go2rtc.yaml"];
    let go2rtc_conf = yaml_docs(go2rtc_yaml, "go2rtc.yaml").remove(0);
    if go2rtc_yaml.contains("${GO2RTC_API_PASSWORD}") {
        assert!(
            manifests
                .env(workload, go2rtc)
                .contains_key("GO2RTC_API_PASSWORD")
        );
    }
    for target in &config.targets {
        let (api, rtsp) = match target.name.as_str() {
            "go2rtc" => (
                str_of(&go2rtc_conf, "/api/listen").to_owned(),
                str_of(&go2rtc_conf, "/rtsp/listen").to_owned(),
            ),
            "mediamtx" => (
                mtx["MTX_APIADDRESS"].clone(),
                mtx["MTX_RTSPADDRESS"].clone(),
            ),
            other => panic!("{what}: unexpected target {other}"),
        };
        assert_eq!(
            url_port(&target.api),
            port_of(&api),
            "{what}: {}",
            target.name
        );
        assert_eq!(
            url_port(&target.rtsp),
            port_of(&rtsp),
            "{what}: {}",
            target.name
        );
    }

    // Services point at ports the pod has.
    let named: BTreeSet<&str> = workload["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["ports"].as_array().unwrap())
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for service in manifests.docs.iter().filter(|d| d["kind"] == "Service") {
        for port in service["spec"]["ports"].as_array().unwrap() {
            let target = port["targetPort"].as_str().unwrap();
            assert!(named.contains(target), "{what}: Service port {target}");
        }
    }
}

#[test]
fn the_systemd_unit_is_hardened_and_matches_the_example_config() {
    let unit = read(&root().join("deploy/systemd/camsync.service"));
    let mut keys: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in unit.lines().map(str::trim) {
        if let Some((k, v)) = line.split_once('=')
            && !line.starts_with('#')
        {
            keys.entry(k.to_owned()).or_default().push(v.to_owned());
        }
    }
    let one = |k: &str| -> &str {
        let v = keys.get(k).unwrap_or_else(|| panic!("no {k}="));
        assert_eq!(v.len(), 1, "{k}");
        &v[0]
    };
    assert_eq!(one("ExecStart"), "/usr/local/bin/camsync run");
    assert_eq!(one("Restart"), "on-failure");
    assert_eq!(one("ProtectSystem"), "strict");
    assert_eq!(one("NoNewPrivileges"), "yes");
    assert!(keys.contains_key("DynamicUser") || keys.contains_key("User"));
    let env = env_file(&keys["Environment"].join("\n"));
    assert_eq!(env["CAMSYNC_CONFIG"], "/etc/camsync/camsync.yaml");
    let state = Path::new(&env["CAMSYNC_STATE"]);
    assert_eq!(
        state.parent().unwrap(),
        Path::new("/var/lib").join(one("StateDirectory")),
        "the ledger is in the state directory, the one place the service may write"
    );
    // The example config, installed as /etc/camsync/camsync.yaml, keeps its ledger there.
    let mut vars: BTreeMap<String, String> = env.clone();
    vars.insert("CAMSYNC_WEBHOOK_SECRET".into(), "k".into());
    let text = read(&root().join("examples/go2rtc-mediamtx/camsync.yaml"));
    let config = parse_config(
        &text,
        Path::new("/etc/camsync/camsync.yaml"),
        &Env::Exactly(vars),
    );
    assert_eq!(config.state, state);
}

#[tokio::test]
async fn the_server_configs_load_in_the_simulators() {
    use camsync_sim::go2rtc::{Go2rtcSim, Go2rtcSimOptions};
    use camsync_sim::mediamtx::{MediamtxSim, MediamtxSimOptions};

    let go2rtc = Go2rtcSim::start(Go2rtcSimOptions {
        config_file: Some(root().join("go2rtc.yaml")),
        config_writable: false,
        env: [("GO2RTC_API_PASSWORD".to_string(), "pw".to_string())].into(),
        ..Go2rtcSimOptions::default()
    })
    .await
    .unwrap();
    assert_eq!(go2rtc.stream_names(), ["test_pattern"]);

    // The simulator refuses to start on a file MediaMTX would refuse.
    let mediamtx = MediamtxSim::start(MediamtxSimOptions {
        config_file: Some(root().join("mediamtx.yml")),
        ..MediamtxSimOptions::default()
    })
    .await
    .unwrap();
    assert_eq!(mediamtx.path_names(), ["publish_here"]);
    mediamtx.shutdown().await;

    // pathDefaults holds only real path fields, with the transport camsync relies on.
    let doc = yaml(&root().join("mediamtx.yml"));
    let defaults = doc["pathDefaults"].as_object().unwrap().clone();
    let checked = camsync::target::mediamtx::rules::check_fields(defaults).unwrap();
    assert_eq!(checked["rtspTransport"], "tcp");
    assert_eq!(doc["rtspTransports"], serde_json::json!(["tcp"]));
    assert_eq!(doc["api"], true);
}

/// A request as the capturing server saw it: headers (lowercase names; `:request` is the
/// request line) and body.
type Captured = (BTreeMap<String, String>, String);

/// A one-request HTTP server on 127.0.0.1: its port, and the request once it came.
fn capture_one_request() -> (u16, std::thread::JoinHandle<Captured>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut headers = BTreeMap::new();
        let mut request_line = String::new();
        reader.read_line(&mut request_line).unwrap();
        headers.insert(":request".into(), request_line.trim().to_owned());
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (k, v) = line.split_once(':').unwrap();
            headers.insert(k.to_ascii_lowercase(), v.trim().to_owned());
        }
        let length: usize = headers["content-length"].parse().unwrap();
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let mut stream = stream;
        stream
            .write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
            .unwrap();
        (headers, String::from_utf8(body).unwrap())
    });
    (port, handle)
}

fn have(tool: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The webhook callers sign as camsync checks: HMAC-SHA256 over "<timestamp>.<body>", hex, in
/// `X-Camsync-Signature: sha256=…`, with `X-Camsync-Timestamp` in unix seconds.
#[test]
fn the_webhook_callers_sign_the_way_camsync_checks() {
    use hmac::{Hmac, KeyInit, Mac};
    let key = "k3y with spaces & símbols";
    let callers: [(&[&str], &str, &[&str], &str); 2] = [
        (
            &["sh", "openssl", "curl"],
            "examples/webhook/notify.sh",
            &["front_door", "site/garage"],
            r#"{"names":["front_door","site/garage"]}"#,
        ),
        (
            &["python3"],
            "examples/webhook/notify.py",
            &["front_door"],
            r#"{"name":"front_door"}"#,
        ),
    ];
    for (tools, script, args, want_body) in callers {
        if let Some(missing) = tools.iter().find(|t| !have(t)) {
            eprintln!("skipping {script}: {missing} is not installed");
            continue;
        }
        let (port, server) = capture_one_request();
        let interpreter = if script.ends_with(".py") {
            "python3"
        } else {
            "sh"
        };
        let out = std::process::Command::new(interpreter)
            .arg(root().join(script))
            .args(args)
            .env("CAMSYNC_URL", format!("http://127.0.0.1:{port}"))
            .env("CAMSYNC_WEBHOOK_SECRET", key)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (headers, body) = server.join().unwrap();
        assert_eq!(
            headers[":request"],
            "POST /v1/webhook/camera-changed HTTP/1.1"
        );
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(body, want_body, "{script}");
        let ts: u64 = headers["x-camsync-timestamp"].parse().unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(now.abs_diff(ts) < 60, "{script}: timestamp {ts}, now {now}");
        let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key.as_bytes()).unwrap();
        mac.update(format!("{ts}.{body}").as_bytes());
        let want = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert_eq!(headers["x-camsync-signature"], want, "{script}");
    }
}
