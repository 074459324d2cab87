//! CPU time of the cluster's parts and the operator, read from `/proc`:
//! where a phase's work went (the API server, etcd, the Job controller, the
//! operator, the bench itself), so a throughput ratio can be explained.

use std::collections::BTreeMap;

/// The processes measured, by `/proc/PID/comm` (the kernel cuts it at 15
/// bytes: `kube-controller-manager` is `kube-controller`).
pub const COMPONENTS: [&str; 5] = ["kube-apiserver", "etcd", "kube-controller", "gantry", "gantry-bench"];

/// Clock ticks per second of `/proc/PID/stat`'s times (USER_HZ, 100 on every
/// Linux architecture the kernel exposes to user space).
const TICKS_PER_SEC: f64 = 100.0;

/// CPU seconds (user + system) used so far by each process named in
/// [`COMPONENTS`], summed per name; a name with no process is absent.
pub fn cpu_seconds() -> BTreeMap<String, f64> {
    let mut seconds = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else { return seconds };
    for entry in entries.flatten() {
        let path = entry.path();
        if !entry.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(path.join("stat")) else { continue };
        if let Some((comm, ticks)) = parse_stat(&stat) {
            if COMPONENTS.contains(&comm) {
                *seconds.entry(comm.to_string()).or_default() += ticks as f64 / TICKS_PER_SEC;
            }
        }
    }
    seconds
}

/// The command name and utime + stime of a `/proc/PID/stat` line. The name
/// is in parentheses and may hold spaces and parentheses itself: the fields
/// after it start after the last `)`.
pub fn parse_stat(stat: &str) -> Option<(&str, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?;
    // Fields from the 3rd (state) on; utime and stime are the 14th and 15th.
    let rest: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    let utime: u64 = rest.get(11)?.parse().ok()?;
    let stime: u64 = rest.get(12)?.parse().ok()?;
    Some((comm, utime + stime))
}

/// `after - before` per component (a process that started during the
/// phase counts from zero; one that ended is missing from `after`).
pub fn spent(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    after.iter().map(|(name, s)| (name.clone(), (s - before.get(name).copied().unwrap_or(0.0)).max(0.0))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_and_system_time_are_read_after_the_command_name() {
        let stat = "4242 (kube-apiserver) S 1 4242 4242 0 -1 4194560 93514 0 0 0 1234 567 0 0 20 0 9 0 100 1 2";
        assert_eq!(parse_stat(stat), Some(("kube-apiserver", 1234 + 567)));
        let odd = "7 (a) b (c)) R 1 7 7 0 -1 0 0 0 0 0 10 5 0 0 20 0 1 0 1 1 1";
        assert_eq!(parse_stat(odd), Some(("a) b (c)", 15)), "a name with parentheses");
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn the_time_spent_is_the_difference_and_a_new_process_counts_from_zero() {
        let before = BTreeMap::from([("etcd".to_string(), 10.0)]);
        let after = BTreeMap::from([("etcd".to_string(), 12.5), ("gantry".to_string(), 3.0)]);
        let d = spent(&before, &after);
        assert_eq!((d["etcd"], d["gantry"]), (2.5, 3.0));
    }

    #[test]
    fn this_process_is_seen_when_it_is_a_component() {
        let me = std::fs::read_to_string("/proc/self/stat").unwrap();
        assert!(parse_stat(&me).is_some_and(|(comm, _)| !comm.is_empty()));
    }
}
