//! Prometheus metrics through the `metrics` facade and its Prometheus
//! exporter, with one recorder per server rather than a global one (tests
//! run many servers in one process).
//!
//! Handles for fixed label sets are registered once, so counting a login or
//! a hash costs an atomic add; the request histogram is looked up per request
//! by its labels (route template, method, status). Gauges that describe the
//! state of things (database pool, outbox, revocation snapshot, process) are
//! set when `/metrics` is scraped.

use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Label, Metadata, Recorder, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};

/// Upper bounds, in seconds, of the duration histograms' buckets: from half a
/// millisecond (a bearer request) to ten seconds (a request timing out).
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

const REQUEST_DURATION: &str = "latchkey_http_request_duration_seconds";
const LOGINS: &str = "latchkey_logins_total";
const HASH_WAIT: &str = "latchkey_hashing_queue_wait_seconds";
const HASH_TIME: &str = "latchkey_hashing_duration_seconds";

const METADATA: Metadata<'static> =
    Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

/// How a login attempt ended, as counted in `latchkey_logins_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginOutcome {
    Success,
    WrongPassword,
    UnknownUser,
    Locked,
    Throttled,
    MfaRequired,
}

impl LoginOutcome {
    const ALL: [Self; 6] = [
        Self::Success,
        Self::WrongPassword,
        Self::UnknownUser,
        Self::Locked,
        Self::Throttled,
        Self::MfaRequired,
    ];

    const fn label(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::WrongPassword => "wrong_password",
            Self::UnknownUser => "unknown_user",
            Self::Locked => "locked",
            Self::Throttled => "throttled",
            Self::MfaRequired => "mfa_required",
        }
    }
}

/// What the gauges show, read at scrape time.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub pool_in_use: Option<u64>,
    pub pool_idle: Option<u64>,
    pub revocation_snapshot_age: Option<Duration>,
    pub outbox_depth: Option<u64>,
    pub outbox_oldest_age: Option<Duration>,
    pub hashing_waiting: u64,
    pub revoked_sessions: u64,
    pub throttled_requests: u64,
    pub redis_degraded: bool,
}

pub struct Metrics {
    recorder: PrometheusRecorder,
    logins: [Counter; 6],
    hash_wait: Histogram,
    hash_time: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets(BUCKETS)
            .expect("the bucket list is not empty")
            .build_recorder();
        describe(
            &recorder,
            REQUEST_DURATION,
            Unit::Seconds,
            "HTTP requests by route template, method and status.",
        );
        describe(
            &recorder,
            LOGINS,
            Unit::Count,
            "Password logins by outcome (success, wrong_password, unknown_user, locked, throttled, mfa_required).",
        );
        describe(
            &recorder,
            HASH_WAIT,
            Unit::Seconds,
            "Time a password hash waited for a hashing thread.",
        );
        describe(
            &recorder,
            HASH_TIME,
            Unit::Seconds,
            "Time a password hash (argon2id or bcrypt) took on its thread.",
        );
        let logins = LoginOutcome::ALL.map(|outcome| {
            recorder.register_counter(
                &Key::from_parts(LOGINS, vec![Label::new("outcome", outcome.label())]),
                &METADATA,
            )
        });
        let hash_wait = recorder.register_histogram(&Key::from_static_name(HASH_WAIT), &METADATA);
        let hash_time = recorder.register_histogram(&Key::from_static_name(HASH_TIME), &METADATA);
        Self {
            recorder,
            logins,
            hash_wait,
            hash_time,
        }
    }

    /// One request served.
    pub fn request(&self, method: &str, route: &str, status: u16, took: Duration) {
        let key = Key::from_parts(
            REQUEST_DURATION,
            vec![
                Label::new("method", method_label(method)),
                Label::new("route", route.to_owned()),
                Label::new("status", status_label(status)),
            ],
        );
        self.recorder
            .register_histogram(&key, &METADATA)
            .record(took.as_secs_f64());
    }

    pub fn login(&self, outcome: LoginOutcome) {
        // `ALL` lists the outcomes in declaration order.
        self.logins[outcome as usize].increment(1);
    }

    /// The two hashing histograms, for the hashing threads.
    pub fn hashing(&self) -> HashTimings {
        HashTimings {
            wait: self.hash_wait.clone(),
            work: self.hash_time.clone(),
        }
    }

    /// Everything in the Prometheus text format, gauges set from `snapshot`.
    pub fn render(&self, snapshot: &Snapshot) -> String {
        let gauge = |name: &'static str, help: &'static str, unit: Unit, value: f64| {
            describe(&self.recorder, name, unit, help);
            self.gauge(name, &[]).set(value);
        };
        if let (Some(in_use), Some(idle)) = (snapshot.pool_in_use, snapshot.pool_idle) {
            describe(
                &self.recorder,
                "latchkey_db_pool_connections",
                Unit::Count,
                "Database pool connections by state (in_use, idle).",
            );
            self.gauge("latchkey_db_pool_connections", &[("state", "in_use")])
                .set(in_use as f64);
            self.gauge("latchkey_db_pool_connections", &[("state", "idle")])
                .set(idle as f64);
        }
        if let Some(age) = snapshot.revocation_snapshot_age {
            gauge(
                "latchkey_revocation_snapshot_age_seconds",
                "Seconds since this instance last read the revoked sessions from the database.",
                Unit::Seconds,
                age.as_secs_f64(),
            );
        }
        if let Some(depth) = snapshot.outbox_depth {
            gauge(
                "latchkey_outbox_depth",
                "Mail and webhook deliveries waiting in the outbox.",
                Unit::Count,
                depth as f64,
            );
            gauge(
                "latchkey_outbox_oldest_age_seconds",
                "Age of the oldest delivery waiting in the outbox (0 when empty).",
                Unit::Seconds,
                snapshot.outbox_oldest_age.unwrap_or_default().as_secs_f64(),
            );
        }
        gauge(
            "latchkey_hashing_waiting",
            "Requests waiting for a password-hashing thread.",
            Unit::Count,
            snapshot.hashing_waiting as f64,
        );
        gauge(
            "latchkey_revoked_sessions",
            "Revoked sessions whose access tokens may still be presented.",
            Unit::Count,
            snapshot.revoked_sessions as f64,
        );
        gauge(
            "latchkey_rate_limit_redis_degraded",
            "1 while Redis is configured but unreachable, so limits are per instance.",
            Unit::Count,
            f64::from(u8::from(snapshot.redis_degraded)),
        );
        describe(
            &self.recorder,
            "latchkey_throttled_requests_total",
            Unit::Count,
            "Requests refused by a rate limit or lockout.",
        );
        self.recorder
            .register_counter(
                &Key::from_static_name("latchkey_throttled_requests_total"),
                &METADATA,
            )
            .absolute(snapshot.throttled_requests);
        if let Some(process) = process::read() {
            gauge(
                "process_cpu_seconds_total",
                "Total user and system CPU time spent in seconds.",
                Unit::Seconds,
                process.cpu_seconds,
            );
            gauge(
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                Unit::Bytes,
                process.resident_bytes,
            );
            gauge(
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                Unit::Bytes,
                process.virtual_bytes,
            );
            gauge(
                "process_open_fds",
                "Number of open file descriptors.",
                Unit::Count,
                process.open_fds,
            );
            gauge(
                "process_max_fds",
                "Maximum number of open file descriptors.",
                Unit::Count,
                process.max_fds,
            );
            gauge(
                "process_start_time_seconds",
                "Start time of the process since the Unix epoch in seconds.",
                Unit::Seconds,
                process.start_time_seconds,
            );
        }
        self.recorder.handle().render()
    }

    fn gauge(&self, name: &'static str, labels: &[(&'static str, &'static str)]) -> Gauge {
        let labels = labels
            .iter()
            .map(|(key, value)| Label::from_static_parts(key, value))
            .collect::<Vec<_>>();
        self.recorder
            .register_gauge(&Key::from_parts(name, labels), &METADATA)
    }
}

fn describe(recorder: &PrometheusRecorder, name: &'static str, unit: Unit, help: &'static str) {
    // Each kind is described the same way; the exporter keeps one text per name.
    recorder.describe_histogram(KeyName::from_const_str(name), Some(unit), help.into());
}

/// The standard methods by name, any other as `other`: a client choosing
/// method names must not add series without bound.
fn method_label(method: &str) -> &'static str {
    const KNOWN: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
    KNOWN
        .into_iter()
        .find(|known| *known == method)
        .unwrap_or("other")
}

/// Status codes as label values without an allocation for the common ones.
fn status_label(status: u16) -> metrics::SharedString {
    let known = match status {
        200 => "200",
        201 => "201",
        204 => "204",
        302 => "302",
        303 => "303",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        408 => "408",
        409 => "409",
        413 => "413",
        415 => "415",
        422 => "422",
        429 => "429",
        500 => "500",
        503 => "503",
        other => return other.to_string().into(),
    };
    known.into()
}

/// The hashing threads' two histograms.
#[derive(Clone)]
pub struct HashTimings {
    pub wait: Histogram,
    pub work: Histogram,
}

impl Default for HashTimings {
    fn default() -> Self {
        Self {
            wait: Histogram::noop(),
            work: Histogram::noop(),
        }
    }
}

/// The standard `process_*` metrics, from `/proc` (Linux only; elsewhere none).
mod process {
    pub struct Process {
        pub cpu_seconds: f64,
        pub resident_bytes: f64,
        pub virtual_bytes: f64,
        pub open_fds: f64,
        pub max_fds: f64,
        pub start_time_seconds: f64,
    }

    /// Clock ticks per second and the page size, as Linux reports them on
    /// every common platform (`getconf CLK_TCK`, `getconf PAGESIZE`).
    const TICKS_PER_SECOND: f64 = 100.0;
    const PAGE_BYTES: f64 = 4096.0;

    pub fn read() -> Option<Process> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the command name, which is in parentheses and may hold spaces.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        // Numbered from 3 (state) in proc(5): utime 14, stime 15, starttime 22, vsize 23, rss 24.
        let field = |number: usize| fields.get(number - 3)?.parse::<f64>().ok();
        let boot_time = std::fs::read_to_string("/proc/stat")
            .ok()?
            .lines()
            .find_map(|line| line.strip_prefix("btime "))?
            .trim()
            .parse::<f64>()
            .ok()?;
        let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as f64;
        let max_fds = std::fs::read_to_string("/proc/self/limits")
            .ok()?
            .lines()
            .find(|line| line.starts_with("Max open files"))?
            .split_whitespace()
            .nth(3)?
            .parse::<f64>()
            .ok()?;
        Some(Process {
            cpu_seconds: (field(14)? + field(15)?) / TICKS_PER_SECOND,
            resident_bytes: field(24)? * PAGE_BYTES,
            virtual_bytes: field(23)?,
            open_fds,
            max_fds,
            start_time_seconds: boot_time + field(22)? / TICKS_PER_SECOND,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_logins_and_gauges_render_in_the_text_format() {
        let metrics = Metrics::new();
        metrics.request("GET", "/get-resource", 200, Duration::from_millis(2));
        metrics.request("GET", "/get-resource", 200, Duration::from_millis(3));
        metrics.request("BREW", "unmatched", 405, Duration::from_millis(1));
        metrics.login(LoginOutcome::UnknownUser);
        metrics.login(LoginOutcome::UnknownUser);
        metrics.login(LoginOutcome::Success);
        let text = metrics.render(&Snapshot {
            pool_in_use: Some(1),
            pool_idle: Some(4),
            outbox_depth: Some(3),
            ..Snapshot::default()
        });
        assert!(
            text.contains("# TYPE latchkey_http_request_duration_seconds histogram"),
            "{text}"
        );
        assert!(
            text.contains(
                "latchkey_http_request_duration_seconds_count{method=\"GET\",route=\"/get-resource\",status=\"200\"} 2"
            ),
            "{text}"
        );
        assert!(
            text.contains("latchkey_logins_total{outcome=\"unknown_user\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("latchkey_logins_total{outcome=\"success\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("latchkey_logins_total{outcome=\"locked\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("latchkey_db_pool_connections{state=\"idle\"} 4"),
            "{text}"
        );
        assert!(text.contains("latchkey_outbox_depth 3"), "{text}");
        assert!(text.contains("method=\"other\""), "{text}");
        assert!(!text.contains("BREW"), "{text}");
        assert!(text.contains("process_resident_memory_bytes "), "{text}");
    }
}
