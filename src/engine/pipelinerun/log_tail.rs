//! The end of a stage's log, within a byte budget: whatever a stage prints,
//! the operator holds at most about twice [`MAX_LOG_BYTES`] of it.

/// Most bytes of a log the operator keeps (TAP is read from these).
pub const MAX_LOG_BYTES: usize = 4 * 1024 * 1024;

/// Keeps the last `limit` bytes of what is pushed into it.
#[derive(Debug)]
pub struct LogTail {
    kept: Vec<u8>,
    limit: usize,
    cut: bool,
}

/// The kept end of a log.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tail {
    /// The last whole lines that fit the budget.
    pub text: String,
    /// Whether earlier lines were dropped.
    pub cut: bool,
}

impl LogTail {
    /// An empty tail that keeps at most `limit` bytes.
    pub fn new(limit: usize) -> Self {
        LogTail { kept: Vec::new(), limit, cut: false }
    }

    /// Appends the next piece of the log.
    pub fn push(&mut self, chunk: &[u8]) {
        self.kept.extend_from_slice(chunk);
        // Trim only now and then, so each byte is moved a bounded number of times.
        if self.kept.len() > self.limit.saturating_mul(2) {
            self.trim();
        }
    }

    /// Marks the log as cut even if all it got fits (the read stopped early).
    pub fn mark_cut(&mut self) {
        self.cut = true;
    }

    /// The kept lines; a line cut in half at the start is dropped.
    pub fn finish(mut self) -> Tail {
        self.trim();
        let mut start = 0;
        if self.cut && self.kept.len() >= self.limit {
            start = self.kept.iter().position(|&b| b == b'\n').map_or(self.kept.len(), |p| p + 1);
        }
        Tail { text: String::from_utf8_lossy(&self.kept[start..]).into_owned(), cut: self.cut }
    }

    fn trim(&mut self) {
        if self.kept.len() > self.limit {
            self.kept.drain(..self.kept.len() - self.limit);
            self.cut = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_short_log_is_kept_whole() {
        let mut tail = LogTail::new(100);
        tail.push(b"ok 1\n");
        tail.push(b"ok 2\n");
        assert_eq!(tail.finish(), Tail { text: "ok 1\nok 2\n".into(), cut: false });
    }

    #[test]
    fn a_long_log_keeps_its_last_whole_lines_and_says_it_was_cut() {
        let mut tail = LogTail::new(12);
        for i in 0..1000 {
            tail.push(format!("line {i}\n").as_bytes());
        }
        let kept = tail.finish();
        assert!(kept.cut);
        assert_eq!(kept.text, "line 999\n");
    }

    #[test]
    fn invalid_utf8_does_not_fail() {
        let mut tail = LogTail::new(100);
        tail.push(&[0xff, 0xfe, b'\n', b'o', b'k']);
        assert!(tail.finish().text.ends_with("\nok"));
    }

    proptest! {
        #[test]
        fn memory_stays_bounded_and_the_end_is_kept(
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..200),
            limit in 1usize..500,
        ) {
            let mut tail = LogTail::new(limit);
            let mut all = Vec::new();
            for chunk in &chunks {
                tail.push(chunk);
                all.extend_from_slice(chunk);
                prop_assert!(tail.kept.len() <= 2 * limit + chunk.len());
            }
            let kept = tail.finish();
            prop_assert_eq!(kept.cut, all.len() > limit);
            prop_assert!(kept.text.len() <= 3 * limit);
            if !kept.cut {
                prop_assert_eq!(kept.text, String::from_utf8_lossy(&all).into_owned());
            }
        }
    }
}
