//! Deterministic names and labels for the objects Gantry creates, so a
//! restarted operator finds its children and never makes one twice.

/// Label on every child: the owning run's name.
pub const LABEL_RUN: &str = "gantry.dev/run";
/// Label on every stage Job and pod: the stage's name.
pub const LABEL_STAGE: &str = "gantry.dev/stage";
/// Label on every stage Job and pod: the attempt number.
pub const LABEL_ATTEMPT: &str = "gantry.dev/attempt";
/// Label on every build Job and pod: the ImageBuild's name.
pub const LABEL_IMAGE_BUILD: &str = "gantry.dev/image-build";
/// Label on every build Job: the build's suffix.
pub const LABEL_SUFFIX: &str = "gantry.dev/suffix";
/// Label on every build Job: the spec generation it builds.
pub const LABEL_GENERATION: &str = "gantry.dev/generation";
/// Label on an ImageBuild's prune Job (value `true`); its suffix label names
/// the build whose image it deletes.
pub const LABEL_PRUNE: &str = "gantry.dev/prune";

/// Annotation a user sets (to any new value) to rebuild an ImageBuild.
pub const ANNOTATION_REBUILD: &str = "gantry.dev/rebuild";
/// On a build Job: the full reference it builds, so an adopted build keeps it.
pub const ANNOTATION_IMAGE: &str = "gantry.dev/image";
/// The standard managed-by label.
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";

/// Annotation a user sets to rerun one stage of a finished run.
pub const ANNOTATION_RERUN: &str = "gantry.dev/rerun";
/// Annotation a newer run of a `CancelRunning` group sets on the runs it supersedes.
pub const ANNOTATION_SUPERSEDED_BY: &str = "gantry.dev/superseded-by";

/// Longest name usable as a label value (the Job controller labels pods
/// with `job-name`, so Job names must fit too).
const MAX_LABEL_VALUE: usize = 63;

/// The Job of one attempt of one stage: `<run>-<stage>-<attempt>`, or when
/// that is longer than 63 characters a truncated prefix plus a hash of the
/// full name, so distinct (run, stage) pairs keep distinct names.
pub fn job_name(run: &str, stage: &str, attempt: u32) -> String {
    bounded_name(&format!("{run}-{stage}"), &format!("-{attempt}"))
}

/// The Job of one build of an ImageBuild: `<build>-<suffix>`, shortened the
/// same way when too long.
pub fn build_job_name(build: &str, suffix: &str) -> String {
    bounded_name(build, &format!("-{suffix}"))
}

/// `base + tail` when it fits a label value, else a cut `base`, a hash of
/// the whole `base`, then `tail` (kept whole, so it stays readable).
fn bounded_name(base: &str, tail: &str) -> String {
    if base.len() + tail.len() <= MAX_LABEL_VALUE {
        return format!("{base}{tail}");
    }
    let hash = format!("-{:08x}", fnv1a(base.as_bytes()) as u32);
    let keep = MAX_LABEL_VALUE.saturating_sub(tail.len() + hash.len()).min(base.len());
    let prefix = base[..keep].trim_end_matches(['-', '.']);
    format!("{prefix}{hash}{tail}")
}

/// A label value for a run name (run names may be up to 253 characters).
pub fn run_label(run: &str) -> String {
    if run.len() <= MAX_LABEL_VALUE {
        return run.to_string();
    }
    let hash = format!("-{:08x}", fnv1a(run.as_bytes()) as u32);
    let prefix = run[..MAX_LABEL_VALUE - hash.len()].trim_end_matches(['-', '.']);
    format!("{prefix}{hash}")
}

/// FNV-1a: a stable hash (unlike std's, which may change between releases).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100000001b3))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn short_names_read_plainly() {
        assert_eq!(job_name("flatcar-main-42", "sdk", 1), "flatcar-main-42-sdk-1");
    }

    #[test]
    fn long_names_are_cut_and_hashed() {
        let run = "a".repeat(60);
        let name = job_name(&run, "packages", 3);
        assert_eq!(name.len(), 63);
        assert!(name.ends_with("-3"));
        assert_ne!(name, job_name(&run, "packages-x", 3));
    }

    proptest! {
        #[test]
        fn job_names_are_labels_and_distinct(
            run in "[a-z0-9]([a-z0-9-]{0,100}[a-z0-9])?",
            stage in "[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?",
            other in "[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?",
            attempt in 1u32..1000,
        ) {
            let name = job_name(&run, &stage, attempt);
            prop_assert!(name.len() <= 63);
            prop_assert!(crate::engine::validate::is_dns_label(&name), "{}", name);
            prop_assert_eq!(&name, &job_name(&run, &stage, attempt));
            prop_assert_ne!(&name, &job_name(&run, &stage, attempt + 1));
            if other != stage {
                prop_assert_ne!(name, job_name(&run, &other, attempt));
            }
            prop_assert!(run_label(&run).len() <= 63);
        }
    }
}
