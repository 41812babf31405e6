//! Third-party parts for end-to-end tests, run as plain processes on loopback:
//! a Prometheus server (Debian's `prometheus`, with `promtool`) and the `rotel`
//! collector (PyPI). `scripts/test.sh` installs them and says where they are.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::released_port;

/// Finds a tool: the path in `env_var` (set by `scripts/test.sh`), else `name` on
/// `PATH`. Missing under CI (`CI=true`) is a failure; elsewhere the test says
/// loudly that it was skipped and returns `None`.
pub fn tool(env_var: &str, name: &str) -> Option<PathBuf> {
    let from_env = std::env::var_os(env_var)
        .map(PathBuf::from)
        .filter(|p| p.is_file());
    let on_path = || {
        std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(name))
                .find(|p| p.is_file())
        })
    };
    if let Some(found) = from_env.or_else(on_path) {
        return Some(found);
    }
    let message =
        format!("{name} not found (set {env_var} or put it on PATH; `bash scripts/test.sh` installs it)");
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{message}: CI requires every end-to-end tool");
    }
    eprintln!("\n*** SKIPPED end-to-end test: {message} ***\n");
    None
}

/// A child process killed (and reaped) on drop, with a directory of its own.
#[derive(Debug)]
pub struct Process {
    child: Child,
    /// Scratch directory, removed on drop.
    pub dir: PathBuf,
    log: PathBuf,
}

impl Process {
    fn spawn(command: &mut Command, dir: PathBuf) -> Process {
        let log = dir.join("output.log");
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {command:?}: {e}"));
        Process { child, dir, log }
    }

    /// What the process printed so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn scratch_dir(what: &str) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("outcometer-{what}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Polls `ready` every 100 ms until it holds or `limit` passes.
pub fn wait_until(limit: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if ready() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    ready()
}

/// `GET path` over HTTP/1.0, so the server answers without chunked encoding.
pub fn http10_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
pub fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A label set of the Prometheus API as sorted `name=value` strings.
fn label_list(set: &serde_json::Value) -> Vec<String> {
    let mut labels: Vec<String> = set
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    labels.sort();
    labels
}

/// A Prometheus server scraping one target every second.
#[derive(Debug)]
pub struct Prometheus {
    /// Its HTTP API.
    pub addr: SocketAddr,
    process: Process,
}

/// One sample of an instant-vector result.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Its labels, `name=value`, sorted.
    pub labels: Vec<String>,
    /// Its value.
    pub value: f64,
}

impl Prometheus {
    /// Starts `binary` with a temporary TSDB and a loopback listen address,
    /// scraping `target` every second as job `demo`; waits until it is ready.
    pub fn start(binary: &Path, target: SocketAddr) -> Prometheus {
        Self::start_with_flags(binary, target, &[])
    }

    /// [`Prometheus::start`] with extra command-line flags (e.g.
    /// `--enable-feature=exemplar-storage`).
    pub fn start_with_flags(binary: &Path, target: SocketAddr, flags: &[&str]) -> Prometheus {
        let dir = scratch_dir("prometheus");
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: demo\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .expect("config");
        let addr: SocketAddr = format!("127.0.0.1:{}", released_port()).parse().expect("addr");
        let mut command = Command::new(binary);
        command
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--web.enable-lifecycle")
            .arg("--log.level=warn")
            .args(flags);
        let mut process = Process::spawn(&mut command, dir);
        let ready = wait_until(Duration::from_secs(30), || {
            process.exited().is_none() && http10_get(addr, "/-/ready").is_some_and(|(s, _)| s == 200)
        });
        assert!(ready, "Prometheus did not become ready:\n{}", process.output());
        Prometheus { addr, process }
    }

    /// Evaluates `promql` now; panics on an API error.
    pub fn query(&self, promql: &str) -> Vec<Sample> {
        let path = format!("/api/v1/query?query={}", percent_encode(promql));
        let (status, body) = http10_get(self.addr, &path).expect("Prometheus answers");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
        assert_eq!(status, 200, "query {promql:?} failed: {body}");
        let results = json["data"]["result"].as_array().cloned().unwrap_or_default();
        results
            .iter()
            .map(|r| {
                let labels = label_list(&r["metric"]);
                let value = r["value"][1]
                    .as_str()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(f64::NAN);
                Sample { labels, value }
            })
            .collect()
    }

    /// The exemplars of the series `selector` selects over the last hour, as
    /// `/api/v1/query_exemplars` returns them: (series labels, trace id, span id,
    /// value).
    pub fn exemplars(&self, selector: &str) -> Vec<(Vec<String>, String, String, f64)> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs();
        let path = format!(
            "/api/v1/query_exemplars?query={}&start={}&end={}",
            percent_encode(selector),
            now - 3600,
            now + 60
        );
        let (status, body) = http10_get(self.addr, &path).expect("Prometheus answers");
        assert_eq!(status, 200, "query_exemplars {selector:?} failed: {body}");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
        let mut out = Vec::new();
        for series in json["data"].as_array().cloned().unwrap_or_default() {
            let labels = label_list(&series["seriesLabels"]);
            for exemplar in series["exemplars"].as_array().cloned().unwrap_or_default() {
                let label = |key: &str| exemplar["labels"][key].as_str().unwrap_or_default().to_owned();
                let value = exemplar["value"]
                    .as_str()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(f64::NAN);
                out.push((labels.clone(), label("trace_id"), label("span_id"), value));
            }
        }
        out
    }

    /// The single value of `promql`, if it has exactly one sample.
    pub fn scalar(&self, promql: &str) -> Option<f64> {
        match self.query(promql).as_slice() {
            [one] => Some(one.value),
            _ => None,
        }
    }

    /// What the server logged (for assertion messages).
    pub fn output(&self) -> String {
        self.process.output()
    }
}

/// Runs `promtool check metrics` on `exposition`; returns its verdict and output.
pub fn promtool_check_metrics(promtool: &Path, exposition: &str) -> (bool, String) {
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn promtool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(exposition.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The rotel collector: OTLP in (gRPC and HTTP), OTLP/HTTP out.
#[derive(Debug)]
pub struct Rotel {
    /// Its OTLP/gRPC receiver.
    pub grpc: SocketAddr,
    /// Its OTLP/HTTP receiver.
    pub http: SocketAddr,
    process: Process,
}

impl Rotel {
    /// Starts `rotel-agent`, exporting OTLP/HTTP to `export_to` (`http://host:port`),
    /// and waits until both receivers accept connections.
    pub fn start(binary: &Path, export_to: &str) -> Rotel {
        let dir = scratch_dir("rotel");
        let grpc: SocketAddr = format!("127.0.0.1:{}", released_port()).parse().expect("addr");
        let http: SocketAddr = format!("127.0.0.1:{}", released_port()).parse().expect("addr");
        let mut command = Command::new(binary);
        command
            .arg("start")
            .arg("--otlp-grpc-endpoint")
            .arg(grpc.to_string())
            .arg("--otlp-http-endpoint")
            .arg(http.to_string())
            .arg("--exporter")
            .arg("otlp")
            .arg("--otlp-exporter-protocol")
            .arg("http")
            .arg("--otlp-exporter-endpoint")
            .arg(export_to)
            .arg("--pid-file")
            .arg(dir.join("rotel.pid"));
        let mut process = Process::spawn(&mut command, dir);
        let ready = wait_until(Duration::from_secs(30), || {
            process.exited().is_none() && TcpStream::connect(grpc).is_ok() && TcpStream::connect(http).is_ok()
        });
        assert!(ready, "rotel did not start:\n{}", process.output());
        Rotel { grpc, http, process }
    }

    /// What rotel logged (for assertion messages).
    pub fn output(&self) -> String {
        self.process.output()
    }
}

/// `(heading, query)` for every ```promql block under the `## <section>` headings
/// of docs/queries.md named in `sections` (all of them when `sections` is empty).
pub fn documented_queries(sections: &[&str]) -> Vec<(String, String)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/queries.md");
    let text = std::fs::read_to_string(path).expect("docs/queries.md");
    let (mut section, mut heading) = (String::new(), String::new());
    let (mut block, mut out) = (None::<String>, Vec::new());
    for line in text.lines() {
        match (&mut block, line) {
            (None, l) if l.starts_with("## ") => section = l[3..].trim().to_owned(),
            (None, l) if l.starts_with("### ") => heading = l[4..].trim().to_owned(),
            (None, "```promql") => block = Some(String::new()),
            (Some(q), "```") => {
                if sections.is_empty() || sections.contains(&section.as_str()) {
                    out.push((heading.clone(), q.trim().to_owned()));
                }
                block = None;
            }
            (Some(q), l) => {
                q.push_str(l);
                q.push('\n');
            }
            _ => {}
        }
    }
    out
}

impl Prometheus {
    /// Like [`Prometheus::start`], also evaluating `rule_files` every second and,
    /// when `alertmanager` is given, sending its alerts there.
    pub fn start_with_rules(
        binary: &Path,
        target: SocketAddr,
        rule_files: &[PathBuf],
        alertmanager: Option<SocketAddr>,
    ) -> Prometheus {
        let dir = scratch_dir("prometheus");
        let config = dir.join("prometheus.yml");
        let mut yaml = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: demo\n    static_configs:\n      - targets: ['{target}']\n"
        );
        if !rule_files.is_empty() {
            yaml.push_str("rule_files:\n");
            for file in rule_files {
                yaml.push_str(&format!("  - '{}'\n", file.display()));
            }
        }
        if let Some(am) = alertmanager {
            yaml.push_str(&format!(
                "alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['{am}']\n"
            ));
        }
        std::fs::write(&config, yaml).expect("config");
        let addr: SocketAddr = format!("127.0.0.1:{}", released_port()).parse().expect("addr");
        let mut command = Command::new(binary);
        command
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn");
        let mut process = Process::spawn(&mut command, dir);
        let ready = wait_until(Duration::from_secs(30), || {
            process.exited().is_none() && http10_get(addr, "/-/ready").is_some_and(|(s, _)| s == 200)
        });
        assert!(ready, "Prometheus did not become ready:\n{}", process.output());
        Prometheus { addr, process }
    }
}

/// An Alertmanager (Debian's `prometheus-alertmanager`) with clustering off,
/// routing every alert at once to one webhook.
#[derive(Debug)]
pub struct Alertmanager {
    /// Its HTTP API, where Prometheus sends alerts.
    pub addr: SocketAddr,
    process: Process,
}

impl Alertmanager {
    /// Starts `binary` with a temporary store on loopback, one receiver POSTing
    /// to `webhook_url`, grouped by alert name without waiting; waits until ready.
    pub fn start(binary: &Path, webhook_url: &str) -> Alertmanager {
        let dir = scratch_dir("alertmanager");
        let config = dir.join("alertmanager.yml");
        std::fs::write(
            &config,
            format!(
                "route:\n  receiver: test\n  group_by: [alertname]\n  group_wait: 0s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: test\n    webhook_configs:\n      - url: '{webhook_url}'\n        send_resolved: false\n"
            ),
        )
        .expect("config");
        let addr: SocketAddr = format!("127.0.0.1:{}", released_port()).parse().expect("addr");
        let mut command = Command::new(binary);
        command
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--cluster.listen-address=")
            .arg("--log.level=warn");
        let mut process = Process::spawn(&mut command, dir);
        let ready = wait_until(Duration::from_secs(30), || {
            process.exited().is_none() && http10_get(addr, "/-/ready").is_some_and(|(s, _)| s == 200)
        });
        assert!(ready, "Alertmanager did not become ready:\n{}", process.output());
        Alertmanager { addr, process }
    }

    /// What Alertmanager logged (for assertion messages).
    pub fn output(&self) -> String {
        self.process.output()
    }
}

/// A loopback HTTP server answering 200 to everything and keeping each request
/// body, e.g. Alertmanager's webhook notifications.
#[derive(Debug)]
pub struct WebhookReceiver {
    /// Where it listens.
    pub addr: SocketAddr,
    bodies: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl WebhookReceiver {
    /// Listens on a loopback port in a background thread.
    pub fn start() -> WebhookReceiver {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let bodies = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (kept, stopped) = (bodies.clone(), stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopped.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                if let Some(body) = stream.ok().and_then(Self::serve) {
                    kept.lock().expect("bodies").push(body);
                }
            }
        });
        WebhookReceiver { addr, bodies, stop }
    }

    fn serve(mut stream: TcpStream) -> Option<String> {
        stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        let mut raw = Vec::new();
        let mut buf = [0u8; 8192];
        let (head_end, length) = loop {
            let n = stream.read(&mut buf).ok()?;
            if n == 0 {
                return None;
            }
            raw.extend_from_slice(&buf[..n]);
            if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                break (end + 4, length);
            }
        };
        while raw.len() < head_end + length {
            let n = stream.read(&mut buf).ok()?;
            if n == 0 {
                break;
            }
            raw.extend_from_slice(&buf[..n]);
        }
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        Some(String::from_utf8_lossy(&raw[head_end..]).into_owned())
    }

    /// Every request body received so far.
    pub fn bodies(&self) -> Vec<String> {
        self.bodies.lock().expect("bodies").clone()
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr);
    }
}
