//! Two operator replicas with `--shards 2`: each holds one shard Lease and
//! reconciles only that shard's runs; when one dies, the other takes its
//! shard over and finishes its runs, without making any Job twice.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, PostParams};
use kube::{Api, ResourceExt};

use crate::crds::install_crds;
use crate::support::{client, stage_job, wait_for, Operator, TestNamespace};
use gantry::api::pipelinerun::{RunPhase, StagePhase};
use gantry::api::PipelineRun;
use gantry::engine::shard::{bucket, shard_of, LABEL_SHARD};

const SHARDS: u32 = 2;
const RUNS_PER_SHARD: usize = 4;

/// Run names in `ns`, `RUNS_PER_SHARD` of each shard.
fn run_names(ns: &str) -> Vec<String> {
    let mut per_shard: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for i in 0.. {
        let name = format!("sharded-{i}");
        let names = per_shard.entry(shard_of(bucket(ns, None, &name), SHARDS)).or_default();
        if names.len() < RUNS_PER_SHARD {
            names.push(name);
        }
        if per_shard.values().map(Vec::len).sum::<usize>() == RUNS_PER_SHARD * SHARDS as usize {
            break;
        }
    }
    per_shard.into_values().flatten().collect()
}

/// The holder of each shard Lease.
async fn holders(leases: &Api<Lease>) -> BTreeMap<u32, Option<String>> {
    let mut holders = BTreeMap::new();
    for k in 0..SHARDS {
        let lease = leases.get_opt(&format!("gantry-shard-{k}")).await.unwrap();
        holders.insert(k, lease.and_then(|l| l.spec?.holder_identity));
    }
    holders
}

/// The runs a replica created stage Jobs for, from its log.
fn runs_with_jobs_created_by(replica: &Operator) -> BTreeSet<String> {
    replica
        .lines_so_far()
        .iter()
        .filter(|line| line.contains("creating stage Job"))
        .filter_map(|line| line.split(" run=").nth(1)?.split_whitespace().next().map(str::to_string))
        .collect()
}

/// The shards a replica says it holds last.
fn shards_held(replica: &Operator) -> Option<String> {
    let lines = replica.lines_so_far();
    let line = lines.iter().rev().find(|line| line.contains("holding shards ["))?;
    let list = line.split("holding shards ").nth(1)?;
    Some(list[..=list.find(']')?].to_string())
}

#[tokio::test]
async fn two_replicas_split_the_runs_by_shard_and_a_survivor_finishes_the_dead_ones() {
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::create(&client, "sharding").await;
    let args = ["--shards", "2", "--leader-elect", "--lease-namespace", &ns.name, "--lease-seconds", "6"];
    let first = Operator::for_pipelines_with(&ns.name, &args);
    let second = Operator::for_pipelines_with(&ns.name, &args);

    // Started together, they spread: one shard each (within about a lease duration).
    let leases = Api::<Lease>::namespaced(client.clone(), &ns.name);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(45);
    let split = loop {
        let now = holders(&leases).await;
        let distinct: BTreeSet<_> = now.values().flatten().collect();
        if now.values().all(Option::is_some) && distinct.len() == 2 {
            break now;
        }
        assert!(tokio::time::Instant::now() < deadline, "the replicas did not split the shards: {now:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    for replica in [&first, &second] {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !matches!(shards_held(replica).as_deref(), Some("[0]" | "[1]")) {
            assert!(std::time::Instant::now() < deadline, "a replica logs the one shard it holds");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    // Which replica is which: the one that logged shard 0.
    let (zero, one) = if shards_held(&first).as_deref() == Some("[0]") { (first, second) } else { (second, first) };

    let runs = Api::<PipelineRun>::namespaced(client.clone(), &ns.name);
    let names = run_names(&ns.name);
    for name in &names {
        // No shard label: the holder of shard 0 labels each.
        let run: PipelineRun = serde_json::from_value(serde_json::json!({
            "apiVersion": "gantry.dev/v1alpha1", "kind": "PipelineRun", "metadata": {"name": name},
            "spec": {"stages": [
                {"name": "long", "run": {"image": "local/busybox:1", "command": ["sleep", "20"]}},
                {"name": "after", "needs": ["long"], "run": {"image": "local/busybox:1", "command": ["true"]}}
            ]}
        }))
        .unwrap();
        runs.create(&PostParams::default(), &run).await.unwrap();
    }
    for name in &names {
        let running = wait_for(&runs, name, 90, "the first stage to run", |r: Option<&PipelineRun>| {
            r.and_then(|r| r.status.as_ref())
                .is_some_and(|s| s.stages.first().is_some_and(|st| st.phase == StagePhase::Running))
        })
        .await;
        let label = running.labels().get(LABEL_SHARD).cloned();
        assert_eq!(label, Some(bucket(&ns.name, None, name).to_string()), "{name} carries its bucket");
    }

    // Each run was reconciled by the replica holding its shard, and only by it.
    let of_shard = |k: u32| -> BTreeSet<String> {
        names.iter().filter(|n| shard_of(bucket(&ns.name, None, n), SHARDS) == k).cloned().collect()
    };
    assert_eq!(runs_with_jobs_created_by(&zero), of_shard(0), "shard 0's replica made exactly shard 0's Jobs");
    assert_eq!(runs_with_jobs_created_by(&one), of_shard(1), "shard 1's replica made exactly shard 1's Jobs");

    // Shard 1's replica dies while its runs' long stage runs; shard 0's takes over.
    eprintln!("shards held before the crash: {split:?}");
    one.crash();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while shards_held(&zero).as_deref() != Some("[0, 1]") {
        assert!(std::time::Instant::now() < deadline, "the survivor takes over shard 1 after the lease expires");
        std::thread::sleep(Duration::from_millis(200));
    }
    for name in &names {
        let done = wait_for(&runs, name, 120, "the run to finish", |r: Option<&PipelineRun>| {
            r.and_then(|r| r.status.as_ref()?.phase).is_some_and(RunPhase::is_finished)
        })
        .await;
        assert_eq!(done.status.unwrap().phase, Some(RunPhase::Succeeded), "{name}");
    }
    assert_eq!(
        runs_with_jobs_created_by(&zero),
        names.iter().cloned().collect(),
        "the survivor made the dead replica's remaining Jobs"
    );

    // No Job made twice; every Job and pod carries its run's bucket.
    let jobs = Api::<Job>::namespaced(client.clone(), &ns.name).list(&ListParams::default()).await.unwrap();
    let mut made: Vec<String> = jobs.items.iter().map(|j| j.name_any()).collect();
    made.sort();
    let mut expected = Vec::new();
    for name in &names {
        expected.push(stage_job(&client, &ns.name, name, "long", 1).await);
        expected.push(stage_job(&client, &ns.name, name, "after", 1).await);
    }
    expected.sort();
    assert_eq!(made, expected, "one Job per stage, none made twice");
    for job in &jobs.items {
        let run = job.labels()["gantry.dev/run"].clone();
        let want = bucket(&ns.name, None, &run).to_string();
        assert_eq!(job.labels().get(LABEL_SHARD), Some(&want), "Job {}", job.name_any());
    }
    let pods = Api::<Pod>::namespaced(client.clone(), &ns.name).list(&ListParams::default()).await.unwrap();
    assert!(!pods.items.is_empty());
    for pod in &pods.items {
        let run = pod.labels()["gantry.dev/run"].clone();
        let want = bucket(&ns.name, None, &run).to_string();
        assert_eq!(pod.labels().get(LABEL_SHARD), Some(&want), "pod {}", pod.name_any());
    }
    drop(zero);
    ns.delete().await;
}
