//! Publishes Kubernetes Events (`events.k8s.io/v1`) as kube-runtime's
//! `Recorder` does: a Warning repeated (same reason, action, object and
//! related object) within [`SERIES_WINDOW`] becomes a series, one PATCH of
//! its count, instead of a new object. Unlike kube-runtime's, it remembers
//! only each Warning's key, name and count, not every Event (kube's keeps
//! every Event for 6 minutes: some 20 000 of them, 30 MiB, at the pace of
//! 2000 runs), and sweeps expired keys once a minute instead of scanning
//! them all on every publish. Normal Events are not remembered: Gantry's
//! name a stage and its Job (one per attempt), so they do not repeat.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{create_params, patch_params};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as K8sEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::Patch;
use kube::runtime::events::{Event, EventType, Reporter};
use kube::{Api, Client};

/// How long a repeated Event joins the series of the first.
pub const SERIES_WINDOW: Duration = Duration::from_secs(6 * 60);

/// How often expired series are forgotten.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// What makes two Events the same.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct Key {
    warning: bool,
    reason: String,
    action: String,
    regarding: (Option<String>, Option<String>, Option<String>, Option<String>),
    related: Option<(Option<String>, Option<String>)>,
}

/// An Event published within the window: its object's name and count.
struct Series {
    name: String,
    count: i32,
    last: Instant,
}

/// The series remembered, and when they were last swept.
struct Seen {
    series: HashMap<Key, Series>,
    swept: Instant,
}

/// Publishes Events as one reporter (the operator, and its pod).
pub struct Recorder {
    client: Client,
    reporter: Reporter,
    seen: Mutex<Seen>,
}

impl Recorder {
    /// A recorder whose Events name `reporter` as their source.
    pub fn new(client: Client, reporter: Reporter) -> Self {
        let seen = Seen { series: HashMap::new(), swept: Instant::now() };
        Self { client, reporter, seen: Mutex::new(seen) }
    }

    /// Publishes `event` about the object `reference`: a new Event, or the
    /// next count of the same Event's series.
    pub async fn publish(&self, event: &Event, reference: &ObjectReference) -> Result<(), kube::Error> {
        let key = key(event, reference);
        let now = Instant::now();
        let repeat = self.repeat(&key, now);
        let namespace = reference.namespace.clone().unwrap_or_else(|| "default".into());
        let events = Api::<K8sEvent>::namespaced(self.client.clone(), &namespace);
        match repeat {
            Some((name, count)) => {
                let series = EventSeries { count, last_observed_time: MicroTime(Timestamp::now()) };
                let patch = serde_json::json!({ "series": series });
                events.patch(&name, &patch_params(), &Patch::Merge(&patch)).await?;
            }
            None => {
                let created = events.create(&create_params(), &self.new_event(event, reference)).await?;
                if key.warning {
                    let name = created.metadata.name.unwrap_or_default();
                    let mut seen = self.seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                    seen.series.insert(key, Series { name, count: 1, last: now });
                }
            }
        }
        Ok(())
    }

    /// The name and next count of `key`'s series when it is still open
    /// (counting this one); sweeps expired series once a [`SWEEP_EVERY`].
    fn repeat(&self, key: &Key, now: Instant) -> Option<(String, i32)> {
        let mut seen = self.seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if now.saturating_duration_since(seen.swept) >= SWEEP_EVERY {
            seen.series.retain(|_, s| now.saturating_duration_since(s.last) < SERIES_WINDOW);
            seen.swept = now;
        }
        let series = seen.series.get_mut(key).filter(|s| now.saturating_duration_since(s.last) < SERIES_WINDOW)?;
        series.count += 1;
        series.last = now;
        Some((series.name.clone(), series.count))
    }

    fn new_event(&self, event: &Event, reference: &ObjectReference) -> K8sEvent {
        let now = Timestamp::now();
        let about = reference.name.as_deref().unwrap_or(&self.reporter.controller);
        K8sEvent {
            action: Some(event.action.clone()),
            reason: Some(event.reason.clone()),
            note: event.note.clone(),
            event_time: Some(MicroTime(now)),
            regarding: Some(reference.clone()),
            related: event.secondary.clone(),
            metadata: ObjectMeta {
                namespace: reference.namespace.clone(),
                name: Some(format!("{about}.{:x}", now.as_nanosecond())),
                ..Default::default()
            },
            reporting_controller: Some(self.reporter.controller.clone()),
            reporting_instance: Some(
                self.reporter.instance.clone().unwrap_or_else(|| self.reporter.controller.clone()),
            ),
            type_: Some(if is_warning(event) { "Warning" } else { "Normal" }.into()),
            ..Default::default()
        }
    }

    /// How many series are remembered.
    #[cfg(test)]
    fn remembered(&self) -> usize {
        self.seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).series.len()
    }
}

fn is_warning(event: &Event) -> bool {
    matches!(event.type_, EventType::Warning)
}

fn key(event: &Event, reference: &ObjectReference) -> Key {
    let r = reference;
    Key {
        warning: is_warning(event),
        reason: event.reason.clone(),
        action: event.action.clone(),
        regarding: (r.kind.clone(), r.namespace.clone(), r.name.clone(), r.uid.clone()),
        related: event.secondary.as_ref().map(|s| (s.kind.clone(), s.name.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorder() -> Recorder {
        // Never contacted: these tests exercise the series bookkeeping only.
        let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        let client = Client::try_from(config).unwrap();
        Recorder::new(client, Reporter { controller: "gantry".into(), instance: None })
    }

    fn event(reason: &str, job: Option<&str>) -> Event {
        Event {
            type_: EventType::Warning,
            reason: reason.into(),
            note: Some("n".into()),
            action: "test".into(),
            secondary: job.map(|j| ObjectReference {
                kind: Some("Job".into()),
                name: Some(j.into()),
                ..Default::default()
            }),
        }
    }

    fn run(name: &str) -> ObjectReference {
        ObjectReference {
            kind: Some("PipelineRun".into()),
            name: Some(name.into()),
            uid: Some(format!("uid-{name}")),
            ..Default::default()
        }
    }

    fn remember(r: &Recorder, event: &Event, about: &ObjectReference, at: Instant) {
        r.seen.lock().unwrap().series.insert(key(event, about), Series { name: "e1".into(), count: 1, last: at });
    }

    #[tokio::test]
    async fn the_same_event_again_continues_its_series_and_another_does_not() {
        let r = recorder();
        let now = Instant::now();
        remember(&r, &event("StageFailed", Some("j1")), &run("a"), now);
        assert_eq!(r.repeat(&key(&event("StageFailed", Some("j1")), &run("a")), now), Some(("e1".into(), 2)));
        assert_eq!(r.repeat(&key(&event("StageFailed", Some("j1")), &run("a")), now), Some(("e1".into(), 3)));
        assert_eq!(r.repeat(&key(&event("StageFailed", Some("j2")), &run("a")), now), None, "another Job");
        assert_eq!(r.repeat(&key(&event("StageFailed", Some("j1")), &run("b")), now), None, "another run");
        assert_eq!(r.repeat(&key(&event("Other", Some("j1")), &run("a")), now), None, "another reason");
    }

    #[tokio::test]
    async fn a_series_ends_after_its_window_and_is_forgotten() {
        let r = recorder();
        let start = Instant::now();
        remember(&r, &event("StageFailed", None), &run("a"), start);
        let later = start + SERIES_WINDOW;
        assert_eq!(r.repeat(&key(&event("StageFailed", None), &run("a")), later), None);
        assert_eq!(r.remembered(), 0, "swept");
    }

    #[tokio::test]
    async fn a_new_event_names_its_reporter_object_and_type() {
        let r = recorder();
        let e = r.new_event(&event("StageFailed", Some("j1")), &run("a"));
        assert_eq!(e.type_.as_deref(), Some("Warning"));
        let mut normal = event("StageSucceeded", Some("j1"));
        normal.type_ = EventType::Normal;
        assert_eq!(r.new_event(&normal, &run("a")).type_.as_deref(), Some("Normal"));
        assert_eq!(e.reporting_controller.as_deref(), Some("gantry"));
        assert_eq!(e.reporting_instance.as_deref(), Some("gantry"));
        assert!(e.metadata.name.unwrap().starts_with("a."));
        assert_eq!(e.related.and_then(|r| r.name).as_deref(), Some("j1"));
    }
}
