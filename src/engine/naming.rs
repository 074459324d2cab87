//! Deterministic names and labels for the objects Gantry creates, so a
//! restarted operator finds its children and never makes one twice.

/// Label on every child: the owning run's name.
pub const LABEL_RUN: &str = "gantry.dev/run";
/// Label on every PipelineRun and its children (stage Jobs, their pods,
/// workspace claims): the run's shard bucket (see `engine::shard`).
pub const LABEL_SHARD: &str = "gantry.dev/shard";
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

/// Characters of the owner tag on names that read in full.
const TAG_LEN: usize = 5;
/// Characters of the owner tag on names cut to fit: the readable part no
/// longer tells them apart, so the hash carries more.
const LONG_TAG_LEN: usize = 10;

/// The Job of one attempt of one stage: `<run>-<stage>-<attempt>-<tag>`,
/// where `<tag>` is a short hash of the run's UID, run name and stage name.
/// The tag keeps Jobs of a deleted and recreated run of the same name apart
/// (and `a-b`/`c` apart from `a`/`b-c`); when the name would pass 63
/// characters, `<run>-<stage>` is cut and the tag is longer. Dots (allowed
/// in run names) become `-`, so every Job name is a DNS-1123 label.
pub fn job_name(run: &str, run_uid: &str, stage: &str, attempt: u32) -> String {
    let hash = fnv1a(format!("{run_uid}\0{run}\0{stage}").as_bytes());
    let readable = format!("{run}-{stage}").replace('.', "-");
    let tail = format!("-{attempt}-{}", base36(hash, TAG_LEN));
    if readable.len() + tail.len() <= MAX_LABEL_VALUE {
        return format!("{readable}{tail}");
    }
    let tail = format!("-{attempt}-{}", base36(hash, LONG_TAG_LEN));
    let keep = MAX_LABEL_VALUE.saturating_sub(tail.len()).min(readable.len());
    format!("{}{tail}", readable[..keep].trim_end_matches('-'))
}

/// The run's workspace claim: `<run>-workspace-<tag>`, the tag a short hash
/// of the run's UID so a recreated run never mounts its predecessor's claim.
pub fn workspace_claim_name(run: &str, run_uid: &str) -> String {
    let hash = fnv1a(format!("{run_uid}\0{run}").as_bytes());
    format!("{}-workspace-{}", run_label(run), base36(hash, TAG_LEN))
}

/// The last `len` base-36 digits of `n` (lowercase, so DNS-safe).
fn base36(mut n: u64, len: usize) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = vec![b'0'; len];
    for slot in out.iter_mut().rev() {
        *slot = DIGITS[(n % 36) as usize];
        n /= 36;
    }
    String::from_utf8(out).unwrap_or_default()
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

/// A DNS-1123 label: lowercase alphanumerics and `-`, 1 to 63 characters,
/// starting and ending alphanumeric.
pub fn is_dns_label(s: &str) -> bool {
    let bytes = s.as_bytes();
    !s.is_empty()
        && s.len() <= 63
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

/// FNV-1a: a stable hash (unlike std's, which may change between releases).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100000001b3))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const UID: &str = "0b9c3a52-8d7e-4f1a-9c2b-5e6f7a8b9c0d";

    #[test]
    fn short_names_read_plainly_with_an_owner_tag() {
        let name = job_name("flatcar-main-42", UID, "sdk", 1);
        assert!(name.starts_with("flatcar-main-42-sdk-1-"), "{name}");
        assert_eq!(name.len(), "flatcar-main-42-sdk-1-".len() + TAG_LEN);
    }

    #[test]
    fn a_recreated_run_of_the_same_name_gets_other_job_names() {
        let other_uid = "7d1e0f44-0000-4000-8000-000000000001";
        assert_ne!(job_name("nightly", UID, "sdk", 1), job_name("nightly", other_uid, "sdk", 1));
        assert_ne!(workspace_claim_name("nightly", UID), workspace_claim_name("nightly", other_uid));
    }

    #[test]
    fn coinciding_concatenations_get_distinct_names() {
        assert_ne!(job_name("a-b", UID, "c", 1), job_name("a", UID, "b-c", 1));
        assert_ne!(job_name("a.b", UID, "c", 1), job_name("a-b", UID, "c", 1));
    }

    #[test]
    fn long_names_are_cut_and_carry_a_longer_tag() {
        let run = "a".repeat(60);
        let name = job_name(&run, UID, "packages", 3);
        assert_eq!(name.len(), 63);
        assert!(name.contains("-3-"), "{name}");
        assert_eq!(name.rsplit('-').next().map(str::len), Some(LONG_TAG_LEN));
        assert_ne!(name, job_name(&run, UID, "packages-x", 3));
    }

    #[test]
    fn dotted_run_names_give_dns_labels() {
        let name = job_name("release.v1.2", UID, "sdk", 1);
        assert!(is_dns_label(&name), "{name}");
    }

    proptest! {
        #[test]
        fn job_names_are_labels_deterministic_and_distinct(
            run in "[a-z0-9]([a-z0-9.-]{0,100}[a-z0-9])?",
            stage in "[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?",
            other in "[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?",
            uid in "[0-9a-f-]{36}",
            attempt in 1u32..1000,
        ) {
            let name = job_name(&run, &uid, &stage, attempt);
            prop_assert!(name.len() <= 63);
            prop_assert!(is_dns_label(&name), "{}", name);
            prop_assert_eq!(&name, &job_name(&run, &uid, &stage, attempt));
            prop_assert_ne!(&name, &job_name(&run, &uid, &stage, attempt + 1));
            prop_assert_ne!(&name, &job_name(&run, "another-uid", &stage, attempt));
            if other != stage {
                prop_assert_ne!(&name, &job_name(&run, &uid, &other, attempt));
            }
            prop_assert!(run_label(&run).len() <= 63);
        }
    }
}
