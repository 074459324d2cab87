//! Finding the local cluster and giving each test a namespace of its own.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use kube::api::{DeleteParams, ListParams, LogParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::wait::await_condition;
use kube::{Api, Client, Config};

/// Where `e2e/cluster.sh kubeconfig` keeps the kubeconfig unless GANTRY_E2E_DIR moves it.
pub fn kubeconfig_path() -> String {
    std::env::var("KUBECONFIG").unwrap_or_else(|_| {
        let dir = std::env::var("GANTRY_E2E_DIR").unwrap_or_else(|_| "/var/lib/gantry-e2e".into());
        format!("{dir}/kubeconfig")
    })
}

/// A client for the local cluster. Panics (fails the test) when there is none.
pub async fn client() -> Client {
    let path = kubeconfig_path();
    let kubeconfig = Kubeconfig::read_from(&path).unwrap_or_else(|e| {
        panic!("no cluster kubeconfig at {path} ({e}); start the cluster with `e2e/cluster.sh up node`")
    });
    let config =
        Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.expect("kubeconfig is usable");
    let client = Client::try_from(config).expect("client from kubeconfig");
    client.apiserver_version().await.unwrap_or_else(|e| panic!("the cluster in {path} does not answer: {e}"));
    client
}

/// A namespace made for one test; `delete` removes it (and everything in it).
pub struct TestNamespace {
    pub name: String,
    client: Client,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl TestNamespace {
    /// Creates `<prefix>-<unique>` and waits until its default ServiceAccount
    /// exists and, on API servers that still mint token Secrets (before
    /// 1.24), until it has one: until then bare pods are refused with "No API
    /// token found" (Jobs retry by themselves, pods do not).
    pub async fn create(client: &Client, prefix: &str) -> Self {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let name = format!("{prefix}-{:x}{}", nanos, COUNTER.fetch_add(1, Ordering::Relaxed));
        let ns: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap();
        Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &ns).await.expect("create test namespace");
        let accounts = Api::<ServiceAccount>::namespaced(client.clone(), &name);
        let version = client.apiserver_version().await.expect("apiserver version");
        let mints_tokens = version.minor.trim_end_matches('+').parse::<u32>().is_ok_and(|m| m < 24);
        tokio::time::timeout(Duration::from_secs(60), async {
            loop {
                let account = accounts.get_opt("default").await.expect("get default ServiceAccount");
                let ready = account.is_some_and(|a| !mints_tokens || a.secrets.is_some_and(|s| !s.is_empty()));
                if ready {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
        .await
        .expect("default ServiceAccount (and its token) appears");
        Self { name, client: client.clone() }
    }

    /// Deletes the namespace without waiting for it to be gone.
    pub async fn delete(self) {
        let _ = Api::<Namespace>::all(self.client.clone()).delete(&self.name, &DeleteParams::default()).await;
    }
}

/// Writes an operator config file (`gantry run --config`) for the test of
/// namespace `ns`; returns its path.
pub fn operator_config_file(ns: &str, yaml: &str) -> String {
    let path = std::env::temp_dir().join(format!("gantry-config-{ns}.yaml"));
    std::fs::write(&path, yaml).unwrap();
    path.to_str().unwrap().to_string()
}

/// The field managers named in an object's `managedFields`.
pub fn managers(meta: &kube::api::ObjectMeta) -> Vec<&str> {
    meta.managed_fields.iter().flatten().filter_map(|f| f.manager.as_deref()).collect()
}

/// The name of the Job of `stage`'s `attempt` of the PipelineRun `run` in
/// `ns` (its name carries a hash of the run's UID).
pub async fn stage_job(client: &Client, ns: &str, run: &str, stage: &str, attempt: u32) -> String {
    let runs = Api::<gantry::api::PipelineRun>::namespaced(client.clone(), ns);
    let uid = runs.get(run).await.expect("get the run").metadata.uid.expect("a run has a uid");
    gantry::engine::naming::job_name(run, &uid, stage, attempt)
}

/// The pod of the never-retried Job `job` in `ns`, and its log.
pub async fn job_pod_and_log(client: &Client, ns: &str, job: &str) -> (Pod, String) {
    let pods = Api::<Pod>::namespaced(client.clone(), ns);
    let listed = pods.list(&ListParams::default().labels(&format!("job-name={job}"))).await.expect("list pods");
    let pod = listed.items.into_iter().next().unwrap_or_else(|| panic!("no pod for Job {job}"));
    let log = pods.logs(&pod.metadata.name.clone().unwrap_or_default(), &LogParams::default()).await.expect("pod log");
    (pod, log)
}

/// Waits up to `secs` for `cond` on the named object; panics with `what` on timeout.
pub async fn wait_for<K>(
    api: &Api<K>,
    name: &str,
    secs: u64,
    what: &str,
    cond: impl kube::runtime::wait::Condition<K>,
) -> K
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    let cond = std::sync::Arc::new(cond);
    loop {
        let cond = cond.clone();
        let watch = await_condition(api.clone(), name, move |obj: Option<&K>| cond.matches_object(obj));
        match tokio::time::timeout_at(deadline, watch).await {
            Ok(Ok(Some(obj))) => return obj,
            Ok(Ok(None)) => panic!("{name} was deleted while waiting for {what}"),
            // A watch can end with "too old resource version" (410) when the
            // API server's watch cache moved on; watch again from a new list.
            Ok(Err(e)) => {
                eprintln!("watching {name} for {what}: {e}; watching again");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(_) => {
                let current = api.get_opt(name).await.ok().flatten();
                panic!("timed out after {secs}s waiting for {what} on {name}; last seen: {current:#?}")
            }
        }
    }
}

/// Starts `gantry run ARGS` with pretty logs on stdout; returns the child and
/// a channel of its log lines (also echoed, so failures show them).
pub fn start_operator(args: &[&str]) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_gantry"))
        .arg("run")
        .args(["--http-addr", "127.0.0.1:0"])
        .args(args)
        .env("KUBECONFIG", kubeconfig_path())
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("start gantry run");
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    let tag = args.join(" ");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            println!("[gantry {tag}] {line}");
            let _ = tx.send(line);
        }
    });
    (child, rx)
}

/// An operator reconciling PipelineRuns in one test namespace; killed when dropped.
pub struct Operator {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    /// Every line received so far (see [`Operator::lines_so_far`]).
    seen: std::sync::Mutex<Vec<String>>,
}

impl Operator {
    /// Starts `gantry run --namespace NS --controllers pipelinerun`.
    pub fn for_pipelines(namespace: &str) -> Self {
        Self::for_pipelines_with(namespace, &[])
    }

    /// Starts `gantry run --namespace NS --controllers imagebuild`.
    pub fn for_builds(namespace: &str) -> Self {
        let (child, lines) = start_operator(&["--namespace", namespace, "--controllers", "imagebuild"]);
        Operator { child, lines, seen: Default::default() }
    }

    /// Starts `gantry run ARGS`.
    pub fn with_args(args: &[&str]) -> Self {
        let (child, lines) = start_operator(args);
        Operator { child, lines, seen: Default::default() }
    }

    /// Starts `gantry run --namespace NS --controllers pipelinerun,imagebuild`.
    pub fn for_pipelines_and_builds(namespace: &str) -> Self {
        let (child, lines) = start_operator(&["--namespace", namespace, "--controllers", "pipelinerun,imagebuild"]);
        Operator { child, lines, seen: Default::default() }
    }

    /// Starts `gantry run --controllers katainstall` that puts its workloads
    /// in `namespace` and reconciles only KataInstalls labelled
    /// `gantry.dev/e2e-test=<namespace>` (KataInstall is cluster-scoped, so
    /// `--namespace` does not keep test operators apart).
    pub fn for_kata(namespace: &str) -> Self {
        Self::for_kata_with(namespace, &[])
    }

    /// The same, with extra arguments.
    pub fn for_kata_with(namespace: &str, extra: &[&str]) -> Self {
        let selector = format!("gantry.dev/e2e-test={namespace}");
        let args = ["--namespace", namespace, "--controllers", "katainstall", "--operator-namespace", namespace];
        let mut args = args.to_vec();
        args.extend(["--katainstall-selector", &selector]);
        args.extend_from_slice(extra);
        let (child, lines) = start_operator(&args);
        Operator { child, lines, seen: Default::default() }
    }

    /// The same, with extra arguments.
    pub fn for_pipelines_with(namespace: &str, extra: &[&str]) -> Self {
        let mut args = vec!["--namespace", namespace, "--controllers", "pipelinerun"];
        args.extend_from_slice(extra);
        let (child, lines) = start_operator(&args);
        Operator { child, lines, seen: Default::default() }
    }

    /// Whether the operator logs a line containing `needle` within `wait`.
    pub fn logs_within(&self, needle: &str, wait: Duration) -> bool {
        let deadline = std::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(needle);
                    self.seen.lock().unwrap().push(line);
                    if found {
                        return true;
                    }
                }
                Err(_) => return false,
            }
        }
    }

    /// Every line the operator logged so far, from its start.
    pub fn lines_so_far(&self) -> Vec<String> {
        let mut seen = self.seen.lock().unwrap();
        seen.extend(self.lines.try_iter());
        seen.clone()
    }

    /// The `host:port` its HTTP server bound, read from its log.
    pub fn http_addr(&self) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = self.lines.recv_timeout(left).expect("the operator logs its HTTP address");
            self.seen.lock().unwrap().push(line.clone());
            if let Some((_, addr)) = line.split_once("/readyz on http://") {
                return addr.trim().to_string();
            }
        }
    }

    /// The operator's exit status if it exits within `wait`.
    pub fn exits_within(&mut self, wait: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + wait;
        while std::time::Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("poll the operator process") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }

    /// Sends SIGTERM, as the kubelet does to a pod being stopped.
    pub fn terminate(&self) {
        let pid = self.child.id().to_string();
        let sent = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("run kill");
        assert!(sent.success(), "kill -TERM {pid}");
    }

    /// Kills the operator at once (SIGKILL), as a crash would.
    pub fn crash(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
