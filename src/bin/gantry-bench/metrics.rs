//! API request counts: the apiserver's `apiserver_request_total` read from
//! its `/metrics`, keyed by verb and resource, diffed between two scrapes;
//! and the bench's own requests, counted as it makes them, so that what the
//! rest of the cluster asked for can be told apart.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// Request counts by `"VERB resource[/subresource]"` (e.g. `"PATCH pods/status"`).
pub type Counts = BTreeMap<String, f64>;

/// Verbs that change something.
pub const WRITE_VERBS: [&str; 6] = ["POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION"];

/// The key of one request kind.
pub fn key(verb: &str, resource: &str, subresource: &str) -> String {
    match (resource, subresource) {
        ("", _) => format!("{verb} (non-resource)"),
        (r, "") => format!("{verb} {r}"),
        (r, s) => format!("{verb} {r}/{s}"),
    }
}

/// The verb of a key made by [`key`].
pub fn verb_of(key: &str) -> &str {
    key.split(' ').next().unwrap_or_default()
}

/// Sums `apiserver_request_total` by verb and resource (over codes, scopes
/// and versions) from a Prometheus text exposition.
pub fn parse_request_totals(text: &str) -> Counts {
    let mut counts = Counts::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("apiserver_request_total{") else { continue };
        let Some((labels, value)) = rest.rsplit_once('}') else { continue };
        let Ok(value) = value.trim().split(' ').next().unwrap_or_default().parse::<f64>() else { continue };
        let labels = parse_labels(labels);
        let get = |name: &str| labels.get(name).map(String::as_str).unwrap_or_default();
        *counts.entry(key(get("verb"), get("resource"), get("subresource"))).or_default() += value;
    }
    counts
}

/// `name="value",...` with Prometheus escapes (`\"`, `\\`, `\n`) in values.
fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if name.is_empty() || chars.next() != Some('"') {
            return labels;
        }
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '"' => break,
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(other) => value.push(other),
                    None => break,
                },
                c => value.push(c),
            }
        }
        labels.insert(name.trim().to_string(), value);
    }
}

/// `after - before` per key; keys that did not grow are left out (a counter
/// that went down means the apiserver restarted: its new count is the diff).
pub fn diff(before: &Counts, after: &Counts) -> Counts {
    after
        .iter()
        .filter_map(|(k, a)| {
            let b = before.get(k).copied().unwrap_or(0.0);
            let d = if *a >= b { a - b } else { *a };
            (d > 0.0).then(|| (k.clone(), d))
        })
        .collect()
}

/// `a - b` per key (negative where `b` is larger).
pub fn subtract(a: &Counts, b: &Counts) -> Counts {
    let mut out = a.clone();
    for (k, v) in b {
        *out.entry(k.clone()).or_default() -= v;
    }
    out
}

/// Every count divided by `by` (0 when `by` is 0).
pub fn per(counts: &Counts, by: f64) -> Counts {
    counts.iter().map(|(k, v)| (k.clone(), if by > 0.0 { v / by } else { 0.0 })).collect()
}

/// The sum over keys whose verb is one of `verbs`.
pub fn sum_verbs(counts: &Counts, verbs: &[&str]) -> f64 {
    counts.iter().filter(|(k, _)| verbs.contains(&verb_of(k))).map(|(_, v)| v).sum()
}

/// The operator's own `gantry_api_requests_total{verb,resource}` samples,
/// by the apiserver's keys (`POST jobs`, `APPLY pipelineruns/status`).
pub fn parse_operator_requests(text: &str) -> Counts {
    let mut counts = Counts::new();
    for line in text.lines().filter(|l| l.starts_with("gantry_api_requests_total{")) {
        let (Some(verb), Some(resource)) = (label(line, "verb"), label(line, "resource")) else { continue };
        let Some(value) = line.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()) else { continue };
        *counts.entry(format!("{} {resource}", apiserver_verb(verb))).or_default() += value;
    }
    counts
}

/// The apiserver's name for the operator's verb.
fn apiserver_verb(verb: &str) -> String {
    match verb {
        "create" => "POST".into(),
        "update" => "PUT".into(),
        other => other.to_ascii_uppercase(),
    }
}

/// The value of label `name` in a Prometheus sample line.
fn label<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let start = line.find(&format!("{name}=\""))? + name.len() + 2;
    let len = line[start..].find('"')?;
    Some(&line[start..start + len])
}

/// Counts the requests the bench itself makes, by the same keys as the apiserver.
#[derive(Default)]
pub struct Tally(Mutex<Counts>);

impl Tally {
    /// One more `verb` on `resource` (`"pods/status"` for a subresource).
    pub fn count(&self, verb: &str, resource: &str) {
        let (resource, sub) = resource.split_once('/').unwrap_or((resource, ""));
        *self.0.lock().unwrap().entry(key(verb, resource, sub)).or_default() += 1.0;
    }

    /// What was counted so far; the tally starts again from zero.
    pub fn take(&self) -> Counts {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_operators_own_request_counts_by_the_apiservers_keys() {
        let text = "# TYPE gantry_api_requests counter\n\
                    gantry_api_requests_total{verb=\"create\",resource=\"jobs\"} 500\n\
                    gantry_api_requests_total{verb=\"apply\",resource=\"pipelineruns/status\"} 612\n\
                    gantry_api_requests_total{verb=\"watch\",resource=\"pods\"} 2\n\
                    gantry_reconciles_total{kind=\"pipelinerun\"} 700\n";
        let counts = parse_operator_requests(text);
        assert_eq!(counts["POST jobs"], 500.0);
        assert_eq!(counts["APPLY pipelineruns/status"], 612.0);
        assert_eq!(counts["WATCH pods"], 2.0);
        assert_eq!(counts.len(), 3);
    }

    const SCRAPE: &str = r#"# HELP apiserver_request_total [STABLE] Counter of apiserver requests
# TYPE apiserver_request_total counter
apiserver_request_total{code="200",component="apiserver",contentType="application/json",dry_run="",group="batch",resource="jobs",scope="namespace",subresource="",verb="LIST",version="v1"} 7
apiserver_request_total{code="201",component="apiserver",contentType="application/json",dry_run="",group="batch",resource="jobs",scope="namespace",subresource="",verb="POST",version="v1"} 3
apiserver_request_total{code="409",component="apiserver",contentType="application/json",dry_run="",group="batch",resource="jobs",scope="namespace",subresource="",verb="POST",version="v1"} 1
apiserver_request_total{code="200",component="apiserver",contentType="application/json",dry_run="",group="",resource="pods",scope="namespace",subresource="status",verb="PATCH",version="v1"} 2.5e+01
apiserver_request_total{code="200",component="",contentType="text/plain",dry_run="",group="",resource="",scope="",subresource="/metrics",verb="GET",version=""} 4
apiserver_request_duration_seconds_bucket{group="",resource="pods",verb="LIST",le="0.1"} 99
apiserver_request_total{code="200",component="apiserver",group="x",resource="we\"ird",subresource="",verb="GET",version="v1"} 1
"#;

    #[test]
    fn sums_request_totals_by_verb_and_resource() {
        let counts = parse_request_totals(SCRAPE);
        assert_eq!(counts.get("LIST jobs"), Some(&7.0));
        assert_eq!(counts.get("POST jobs"), Some(&4.0), "codes are summed");
        assert_eq!(counts.get("PATCH pods/status"), Some(&25.0));
        assert_eq!(counts.get("GET (non-resource)"), Some(&4.0));
        assert_eq!(counts.get("GET we\"ird"), Some(&1.0), "escaped quotes in values");
        assert_eq!(counts.len(), 5, "other metrics are ignored: {counts:?}");
    }

    #[test]
    fn diffs_and_scales() {
        let before: Counts = [("LIST jobs".to_string(), 5.0), ("GET pods".to_string(), 9.0)].into();
        let after: Counts =
            [("LIST jobs".to_string(), 8.0), ("GET pods".to_string(), 9.0), ("POST jobs".to_string(), 2.0)].into();
        let d = diff(&before, &after);
        assert_eq!(d, [("LIST jobs".to_string(), 3.0), ("POST jobs".to_string(), 2.0)].into());
        assert_eq!(per(&d, 2.0).get("LIST jobs"), Some(&1.5));
        assert_eq!(per(&d, 0.0).get("LIST jobs"), Some(&0.0));
        assert_eq!(sum_verbs(&d, &WRITE_VERBS), 2.0);
        let restarted: Counts = [("LIST jobs".to_string(), 1.0)].into();
        assert_eq!(diff(&before, &restarted).get("LIST jobs"), Some(&1.0), "a reset counter counts from zero");
        assert_eq!(subtract(&d, &[("POST jobs".to_string(), 3.0)].into()).get("POST jobs"), Some(&-1.0));
    }

    #[test]
    fn tally_uses_the_apiserver_keys() {
        let tally = Tally::default();
        tally.count("PATCH", "pods/status");
        tally.count("PATCH", "pods/status");
        tally.count("POST", "jobs");
        let counts = tally.take();
        assert_eq!(counts.get("PATCH pods/status"), Some(&2.0));
        assert_eq!(counts.get("POST jobs"), Some(&1.0));
        assert!(tally.take().is_empty());
    }
}
