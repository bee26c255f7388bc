//! The deployment artifacts under `deploy/`, checked by the tools that consume them: promtool
//! (alert rules, their unit tests, the scrape config, the dashboard's queries), systemd-analyze
//! (the unit), a Kubernetes schema validator (the `DaemonSet`), and JSON/YAML parsers for the
//! fields pktloss depends on. No root and no kernel needed.
//!
//! Tools (see `deploy/README.md`): Debian's `prometheus` (promtool), `systemd`
//! (systemd-analyze), `python3-yaml`, `python3-venv`, and `PyPI`'s `kubernetes-validate` (found on
//! PATH, in `~/.cache/pktloss/venv` or `target/deploy-venv`, else installed into the latter).
//! Under `CI=true` a missing tool is a failure; elsewhere the check that needs it is skipped with
//! a printed reason.
use std::{
    collections::BTreeSet,
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

use serde_json::Value;

/// The metrics `pktloss serve` exports that the dashboard may query.
const METRICS: &[&str] = &[
    "pktloss_drops_total",
    "pktloss_function_drops_total",
    "pktloss_device_drops_total",
    "pktloss_netns_drops_total",
    "pktloss_cause_drops_total",
    "pktloss_cause_active",
    "pktloss_detail_events_total",
    "pktloss_flow_evictions_total",
    "pktloss_drops_not_in_flows_total",
    "pktloss_probe_attached",
    "pktloss_build_info",
];

/// The capabilities pktloss needs, without the `CAP_` prefix, wherever it is deployed.
const CAPS: &[&str] = &["BPF", "PERFMON", "SYS_ADMIN", "NET_ADMIN", "SYS_PTRACE", "DAC_READ_SEARCH", "SYSLOG"];

const PORT: &str = "19623";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().expect("repository root")
}

fn deploy(rel: &str) -> PathBuf {
    let p = repo().join("deploy").join(rel);
    assert!(p.is_file(), "missing {}", p.display());
    p
}

fn read(rel: &str) -> String {
    fs::read_to_string(deploy(rel)).unwrap_or_else(|e| panic!("read deploy/{rel}: {e}"))
}

fn ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// A tool on PATH (or in /usr/sbin, /sbin). `None` means skip: under `CI=true` it panics.
fn tool(test: &str, name: &str, package: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file());
    if found.is_none() {
        missing(test, &format!("{name} is not installed (Debian package {package})"));
    }
    found
}

/// Report a missing tool: a failure under `CI=true`, a printed skip elsewhere.
fn missing(test: &str, what: &str) {
    assert!(!ci(), "{test}: CI=true but {what}");
    eprintln!("skipping part of {test}: {what}");
}

/// Run a command to completion, output captured.
fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"))
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Run and assert exit status 0; the combined stdout and stderr.
fn run_ok(cmd: &mut Command) -> String {
    let o = run(cmd);
    let t = text(&o);
    assert!(o.status.success(), "{cmd:?} failed ({}):\n{t}", o.status);
    t
}

/// A python3 that has `PyYAML` (Debian's `python3-yaml`).
fn python_with_yaml(test: &str) -> Option<PathBuf> {
    let found = ["/usr/bin/python3", "python3"].into_iter().map(PathBuf::from).find(|p| {
        Command::new(p)
            .args(["-c", "import yaml"])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if found.is_none() {
        missing(test, "no python3 with PyYAML (Debian package python3-yaml)");
    }
    found
}

/// The documents of a YAML file, as JSON (through `PyYAML`'s `safe_load_all`).
fn yaml_docs(python: &Path, file: &Path) -> Vec<Value> {
    const TO_JSON: &str = "import json, sys, yaml\n\
        with open(sys.argv[1]) as f:\n    docs = [d for d in yaml.safe_load_all(f) if d is not None]\n\
        json.dump(docs, sys.stdout)";
    let o = run(Command::new(python).arg("-c").arg(TO_JSON).arg(file));
    assert!(o.status.success(), "PyYAML cannot load {}:\n{}", file.display(), text(&o));
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("PyYAML's JSON of {}: {e}\n{}", file.display(), text(&o)))
}

/// Every `pktloss_*` metric name in a `PromQL` expression.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let b = expr.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b':';
    let mut i = 0;
    while let Some(off) = expr[i..].find("pktloss_") {
        let start = i + off;
        if start > 0 && ident(b[start - 1]) {
            i = start + 1;
            continue;
        }
        let end = expr[start..].bytes().position(|c| !ident(c)).map_or(expr.len(), |n| start + n);
        names.insert(expr[start..end].to_owned());
        i = end;
    }
    names
}

// ---------------------------------------------------------------------------------------------
// Prometheus
// ---------------------------------------------------------------------------------------------

#[test]
fn alert_rules_pass_promtool() {
    const TEST: &str = "alert_rules_pass_promtool";
    let rules = deploy("prometheus/alerts.yml");
    let unit_tests = deploy("prometheus/alerts_test.yml");

    // The alerts exist, each with its summary and description.
    if let Some(py) = python_with_yaml(TEST) {
        let docs = yaml_docs(&py, &rules);
        let alerts: Vec<&Value> = docs[0]["groups"]
            .as_array()
            .expect("groups")
            .iter()
            .flat_map(|g| g["rules"].as_array().expect("rules"))
            .collect();
        let names: BTreeSet<&str> = alerts.iter().filter_map(|r| r["alert"].as_str()).collect();
        for want in ["PktlossCauseActive", "PktlossHighDropRate", "PktlossLosingEvents", "PktlossDown"] {
            assert!(names.contains(want), "no alert {want} in alerts.yml: {names:?}");
        }
        for a in &alerts {
            for key in ["summary", "description"] {
                assert!(
                    a["annotations"][key].as_str().is_some_and(|s| !s.trim().is_empty()),
                    "alert {} has no {key}",
                    a["alert"]
                );
            }
        }
        let high = alerts.iter().find(|a| a["alert"] == "PktlossHighDropRate").expect("PktlossHighDropRate");
        let expr = high["expr"].as_str().expect("expr");
        assert!(expr.contains("SOCKET_CLOSE") && expr.contains("TCP_CLOSE"), "benign reasons not excluded: {expr}");
        assert!(!expr.contains("NOT_SPECIFIED"), "NOT_SPECIFIED must stay in the drop rate: {expr}");
    }

    let Some(promtool) = tool(TEST, "promtool", "prometheus") else { return };
    let out = run_ok(Command::new(&promtool).arg("check").arg("rules").arg(&rules));
    assert!(out.contains("SUCCESS: 4 rules found"), "promtool check rules:\n{out}");
    // The unit tests: PktlossCauseActive fires for a cause held at 1 for 6m, not for 0; the
    // others fire on their conditions and not on benign reasons, flat counters or healthy targets.
    let out = run_ok(Command::new(&promtool).arg("test").arg("rules").arg(&unit_tests));
    assert!(out.contains("SUCCESS") && !out.contains("FAILED"), "promtool test rules:\n{out}");
    let tests = fs::read_to_string(&unit_tests).expect("alerts_test.yml");
    assert!(
        tests.contains(r#"cause="no-listener"}'"#) && tests.contains("values: '1x6'") && tests.contains("values: '0x"),
        "alerts_test.yml no longer tests a no-listener cause held at 1 and at 0"
    );
}

#[test]
fn prometheus_config_passes_promtool() {
    const TEST: &str = "prometheus_config_passes_promtool";
    let config = deploy("prometheus/prometheus.yml");
    if let Some(py) = python_with_yaml(TEST) {
        let docs = yaml_docs(&py, &config);
        let jobs = docs[0]["scrape_configs"].as_array().expect("scrape_configs");
        let job = jobs.iter().find(|j| j["job_name"] == "pktloss").expect("a job named pktloss");
        let targets: Vec<&str> = job["static_configs"]
            .as_array()
            .expect("static_configs")
            .iter()
            .flat_map(|s| s["targets"].as_array().expect("targets"))
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(targets, [format!("localhost:{PORT}")], "targets of job pktloss");
    }
    let Some(promtool) = tool(TEST, "promtool", "prometheus") else { return };
    let out = run_ok(Command::new(&promtool).arg("check").arg("config").arg(&config));
    assert!(out.contains("is valid prometheus config file syntax"), "promtool check config:\n{out}");
    assert!(out.contains("SUCCESS: 1 rule files found") && out.contains("SUCCESS: 4 rules found"), "{out}");
}

// ---------------------------------------------------------------------------------------------
// systemd
// ---------------------------------------------------------------------------------------------

/// Values of `Key=` in a unit (every occurrence, in order).
fn unit_values<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines().filter_map(|l| l.trim().strip_prefix(key)?.strip_prefix('=')).map(str::trim).collect()
}

#[test]
fn systemd_unit_verifies() {
    const TEST: &str = "systemd_unit_verifies";
    let unit = read("systemd/pktloss.service");
    assert_eq!(unit_values(&unit, "ExecStart"), ["/usr/local/bin/pktloss serve --listen 127.0.0.1:19623"]);
    let want: BTreeSet<String> = CAPS.iter().map(|c| format!("CAP_{c}")).collect();
    for key in ["CapabilityBoundingSet", "AmbientCapabilities"] {
        let v = unit_values(&unit, key);
        assert_eq!(v.len(), 1, "one {key}= line");
        let got: BTreeSet<String> = v[0].split_whitespace().map(str::to_owned).collect();
        assert_eq!(got, want, "{key}");
    }
    for (key, value) in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectControlGroups", "yes"),
        ("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6 AF_NETLINK"),
        ("MemoryMax", "256M"),
        ("Restart", "on-failure"),
    ] {
        assert_eq!(unit_values(&unit, key), [value], "{key}=");
    }
    // Options that would hide /proc/kallsyms or tracefs, drop CAP_SYSLOG, or block bpf().
    for key in ["ProtectKernelTunables", "ProtectKernelLogs", "ProcSubset", "PrivateNetwork", "PrivateUsers"] {
        assert!(unit_values(&unit, key).is_empty(), "{key}= breaks pktloss");
    }
    for filter in unit_values(&unit, "SystemCallFilter") {
        let calls: Vec<&str> = filter.split_whitespace().collect();
        if !filter.starts_with('~') {
            for needed in ["bpf", "perf_event_open"] {
                assert!(calls.contains(&needed), "SystemCallFilter={filter} blocks {needed}");
            }
        }
    }

    let Some(analyze) = tool(TEST, "systemd-analyze", "systemd") else { return };
    // verify needs ExecStart to be executable: check a copy that runs /bin/true.
    let dir = std::env::temp_dir().join(format!("pktloss-deploy-unit-{}", std::process::id()));
    drop(fs::remove_dir_all(&dir));
    fs::create_dir_all(&dir).expect("temp dir");
    let copy = dir.join("pktloss.service");
    let body: String = unit
        .lines()
        .map(|l| if l.starts_with("ExecStart=") { "ExecStart=/bin/true" } else { l })
        .flat_map(|l| [l, "\n"])
        .collect();
    fs::write(&copy, body).expect("write the unit copy");
    let o = run(Command::new(&analyze).arg("verify").arg(&copy));
    let out = text(&o);
    // A bad key or value is only a warning (exit 0): no line may be about our unit.
    let ours: Vec<&str> = out.lines().filter(|l| l.contains("pktloss.service")).collect();
    assert!(o.status.success() && ours.is_empty(), "systemd-analyze verify ({}):\n{out}", o.status);

    // The exposure score guards the hardening (4.1 when written; 10 is an unhardened root service).
    let help = text(&run(Command::new(&analyze).args(["security", "--help"])));
    if help.contains("--offline") {
        let o = run(Command::new(&analyze).args(["security", "--offline=true", "--threshold=45"]).arg(&copy));
        assert!(o.status.success(), "systemd-analyze security: exposure above 4.5:\n{}", text(&o));
    } else {
        eprintln!("{TEST}: this systemd-analyze has no `security --offline`; exposure not checked");
    }
    drop(fs::remove_dir_all(&dir));
}

// ---------------------------------------------------------------------------------------------
// Grafana
// ---------------------------------------------------------------------------------------------

/// Every panel, rows' nested panels included.
fn all_panels(panels: &Value, out: &mut Vec<Value>) {
    for p in panels.as_array().into_iter().flatten() {
        out.push(p.clone());
        all_panels(&p["panels"], out);
    }
}

#[test]
fn dashboard_is_valid_json_with_the_metrics() {
    const TEST: &str = "dashboard_is_valid_json_with_the_metrics";
    let d: Value = serde_json::from_str(&read("grafana/pktloss-dashboard.json")).expect("dashboard is valid JSON");
    assert_eq!(d["uid"], "pktloss");
    assert_eq!(d["schemaVersion"], 39);
    let vars = d["templating"]["list"].as_array().expect("templating.list");
    let var = |name: &str| vars.iter().find(|v| v["name"] == name).unwrap_or_else(|| panic!("no variable {name}"));
    let ds = var("DS_PROMETHEUS");
    assert_eq!((&ds["type"], &ds["query"]), (&Value::from("datasource"), &Value::from("prometheus")));
    let instance = var("instance");
    assert_eq!(instance["type"], "query");
    assert_eq!(instance["datasource"]["uid"], "${DS_PROMETHEUS}");

    let mut panels = Vec::new();
    all_panels(&d["panels"], &mut panels);
    let ids: Vec<u64> = panels.iter().map(|p| p["id"].as_u64().expect("panel id")).collect();
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), ids.len(), "panel ids are unique");
    let allowed: BTreeSet<&str> = METRICS.iter().copied().collect();
    let mut used = BTreeSet::new();
    let mut exprs = Vec::new();
    for p in panels.iter().filter(|p| p["type"] != "row") {
        let title = p["title"].as_str().unwrap_or("?");
        assert!(p["gridPos"]["w"].as_u64().is_some() && p["gridPos"]["h"].as_u64().is_some(), "{title}: gridPos");
        assert_eq!(p["datasource"]["uid"], "${DS_PROMETHEUS}", "{title}: datasource");
        let targets = p["targets"].as_array().unwrap_or_else(|| panic!("{title}: no targets"));
        assert!(!targets.is_empty(), "{title}: no targets");
        for t in targets {
            let expr = t["expr"].as_str().unwrap_or_else(|| panic!("{title}: target without expr"));
            let names = metric_names(expr);
            assert!(!names.is_empty(), "{title}: {expr} queries no pktloss_ metric");
            for n in &names {
                assert!(
                    allowed.contains(n.as_str()),
                    "{title}: {expr} queries {n}, which pktloss serve does not export"
                );
            }
            assert!(expr.contains("$instance"), "{title}: {expr} ignores the instance variable");
            used.extend(names);
            exprs.push(expr.to_owned());
        }
    }
    let query = instance["query"]["query"].as_str().or(instance["query"].as_str()).expect("instance query");
    for n in metric_names(query) {
        assert!(allowed.contains(n.as_str()), "instance variable queries {n}");
    }
    for want in [
        "pktloss_drops_total",
        "pktloss_cause_drops_total",
        "pktloss_cause_active",
        "pktloss_function_drops_total",
        "pktloss_device_drops_total",
        "pktloss_detail_events_total",
    ] {
        assert!(used.contains(want), "no panel shows {want}");
    }
    assert!(
        exprs.iter().any(|e| e.contains("pktloss_detail_events_total") && e.contains("lost_ring")),
        "no panel shows lost detail events"
    );

    // The queries parse as PromQL: promtool checks them as recording rules, with Grafana's
    // variables given values.
    let Some(promtool) = tool(TEST, "promtool", "prometheus") else { return };
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, e) in exprs.iter().enumerate() {
        let e = e.replace("$__rate_interval", "5m").replace("$instance", ".*");
        let quoted = serde_json::to_string(&e).expect("quote");
        writeln!(rules, "      - record: dashboard:query{i}\n        expr: {quoted}").expect("write to a String");
    }
    let file = std::env::temp_dir().join(format!("pktloss-dashboard-rules-{}.yml", std::process::id()));
    fs::write(&file, rules).expect("write rules");
    let o = run(Command::new(&promtool).arg("check").arg("rules").arg(&file));
    drop(fs::remove_file(&file));
    let out = text(&o);
    assert!(o.status.success(), "promtool check rules of the dashboard's queries ({}):\n{out}", o.status);
    assert!(out.contains(&format!("SUCCESS: {} rules found", exprs.len())), "dashboard queries:\n{out}");
}

// ---------------------------------------------------------------------------------------------
// Kubernetes
// ---------------------------------------------------------------------------------------------

/// A `kubernetes-validate` executable: on PATH, in `~/.cache/pktloss/venv`, in
/// `target/deploy-venv`, or installed now from `PyPI` into the latter.
fn kubernetes_validate(python: Option<&Path>) -> Result<PathBuf, String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let venv = repo().join("target/deploy-venv");
    let mut candidates: Vec<PathBuf> = std::env::split_paths(&path).map(|d| d.join("kubernetes-validate")).collect();
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(PathBuf::from(home).join(".cache/pktloss/venv/bin/kubernetes-validate"));
    }
    candidates.push(venv.join("bin/kubernetes-validate"));
    if let Some(p) = candidates.into_iter().find(|p| p.is_file()) {
        return Ok(p);
    }
    let python = python.map_or_else(|| PathBuf::from("python3"), Path::to_path_buf);
    let o = run(Command::new(&python).arg("-m").arg("venv").arg(&venv));
    if !o.status.success() {
        return Err(format!("{} -m venv (Debian package python3-venv): {}", python.display(), text(&o)));
    }
    let o = run(Command::new(venv.join("bin/pip")).args(["install", "-q", "kubernetes-validate"]));
    if !o.status.success() {
        return Err(format!("pip install kubernetes-validate: {}", text(&o)));
    }
    let exe = venv.join("bin/kubernetes-validate");
    if exe.is_file() { Ok(exe) } else { Err("pip installed no kubernetes-validate executable".to_owned()) }
}

#[test]
fn daemonset_is_valid() {
    const TEST: &str = "daemonset_is_valid";
    let manifest = deploy("kubernetes/daemonset.yaml");
    let python = python_with_yaml(TEST);

    // Schema: strict (no unknown fields), against the newest schema the validator has and
    // against 1.30, the first release with securityContext.appArmorProfile.
    match kubernetes_validate(python.as_deref()) {
        Ok(kv) => {
            for version in [None, Some("1.30.0")] {
                let mut cmd = Command::new(&kv);
                cmd.arg("--strict");
                if let Some(v) = version {
                    cmd.args(["-k", v]);
                }
                let out = run_ok(cmd.arg(&manifest));
                assert!(
                    out.contains("passed for resource daemonset/pktloss") && !out.contains("ERROR"),
                    "kubernetes-validate {version:?}:\n{out}"
                );
            }
        }
        Err(why) => missing(TEST, &format!("no Kubernetes schema validator: {why}")),
    }

    // The fields pktloss needs, and none that would make it privileged.
    let Some(py) = python else { return };
    let docs = yaml_docs(&py, &manifest);
    assert_eq!(docs.len(), 1, "one resource");
    let ds = &docs[0];
    assert_eq!((&ds["apiVersion"], &ds["kind"]), (&Value::from("apps/v1"), &Value::from("DaemonSet")));
    assert_eq!(ds["metadata"]["namespace"], "monitoring");
    let pod = &ds["spec"]["template"];
    let spec = &pod["spec"];
    assert_eq!(spec["hostPID"], true, "hostPID: pktloss reads the host's /proc/PID/ns");
    assert_eq!(spec["hostNetwork"], true);
    assert!(
        spec["tolerations"]
            .as_array()
            .expect("tolerations")
            .iter()
            .any(|t| t["operator"] == "Exists" && t["key"].is_null() && t["effect"].is_null()),
        "a toleration of every taint"
    );
    let anns = &pod["metadata"]["annotations"];
    assert_eq!(anns["prometheus.io/scrape"], "true");
    assert_eq!(anns["prometheus.io/port"], PORT);
    let containers = spec["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    let sc = &c["securityContext"];
    assert_eq!(sc["privileged"], false, "not privileged");
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
    let added: BTreeSet<&str> =
        sc["capabilities"]["add"].as_array().expect("capabilities.add").iter().filter_map(Value::as_str).collect();
    assert_eq!(added, CAPS.iter().copied().collect::<BTreeSet<_>>(), "capabilities.add");
    let port = c["ports"].as_array().expect("ports").iter().find(|p| p["name"] == "metrics").expect("port metrics");
    assert_eq!(port["containerPort"].to_string(), PORT);
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/metrics");
    assert_eq!(c["resources"]["limits"]["memory"], "256Mi");
    let args: Vec<&str> = c["command"].as_array().expect("command").iter().filter_map(Value::as_str).collect();
    assert_eq!(&args[..4], ["/usr/local/bin/pktloss", "serve", "--listen", &format!("0.0.0.0:{PORT}")]);

    let volumes = spec["volumes"].as_array().expect("volumes");
    let mounts = c["volumeMounts"].as_array().expect("volumeMounts");
    for (host, propagation) in
        [("/sys/kernel/btf", None), ("/sys/kernel/tracing", None), ("/run/netns", Some("HostToContainer"))]
    {
        let v = volumes
            .iter()
            .find(|v| v["hostPath"]["path"] == host)
            .unwrap_or_else(|| panic!("no hostPath volume {host}"));
        let m = mounts.iter().find(|m| m["name"] == v["name"]).unwrap_or_else(|| panic!("{host} not mounted"));
        assert_eq!(m["mountPath"], host, "{host} mounted where pktloss reads it");
        assert_eq!(m["readOnly"], true, "{host} read-only");
        if let Some(p) = propagation {
            assert_eq!(m["mountPropagation"], p, "{host} propagation");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Container image
// ---------------------------------------------------------------------------------------------

#[test]
fn dockerfile_runs_serve() {
    let df = read("container/Dockerfile");
    let instr: Vec<&str> = df.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    let from: Vec<&&str> = instr.iter().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(from, [&"FROM debian:12-slim"], "one runtime stage");
    assert!(instr.contains(&"COPY target/release/pktloss /usr/local/bin/pktloss"), "{df}");
    assert!(instr.contains(&"EXPOSE 19623"), "{df}");
    let entry = instr.iter().find_map(|l| l.strip_prefix("ENTRYPOINT ")).expect("ENTRYPOINT");
    let entry: Vec<String> = serde_json::from_str(entry).expect("ENTRYPOINT in exec (JSON) form");
    assert_eq!(entry, ["/usr/local/bin/pktloss", "serve", "--listen", "0.0.0.0:19623"]);
    assert!(!instr.iter().any(|l| l.starts_with("USER ")), "runs as root with only the runtime's capabilities");
    // The documented `docker run` grants exactly the capabilities, and nothing privileged.
    let start = df.find("docker run ").expect("a documented `docker run`");
    let end = start + df[start..].find("pktloss:latest").expect("docker run ... pktloss:latest");
    let run_line = &df[start..end];
    let added: BTreeSet<&str> =
        run_line.split("--cap-add ").skip(1).filter_map(|s| s.split_whitespace().next()).collect();
    assert_eq!(added, CAPS.iter().copied().collect::<BTreeSet<_>>(), "docker run --cap-add");
    assert!(
        run_line.contains("--cap-drop ALL") && !run_line.contains("--privileged"),
        "docker run drops every other capability"
    );
    for tool in ["iproute2", "ethtool", "nftables", "iptables", "conntrack"] {
        assert!(df.contains(tool), "the image lacks {tool}, which pktloss runs");
    }
    let ignore = read("container/Dockerfile.dockerignore");
    assert!(ignore.lines().any(|l| l.trim() == "!target/release/pktloss"), "dockerignore keeps the binary");
}

#[test]
fn metric_names_are_extracted() {
    let n =
        metric_names(r#"sum by (x) (rate(pktloss_drops_total{a="pktloss_x"}[5m])) / pktloss_drops_not_in_flows_total"#);
    let want: BTreeSet<String> = ["pktloss_drops_total", "pktloss_x", "pktloss_drops_not_in_flows_total"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(n, want);
    assert!(metric_names("xpktloss_drops_total").is_empty());
}
