//! Small text helpers shared by the engine's parsers.

/// Appended to a string that [`truncate`] had to cut.
pub const ELLIPSIS: &str = "…";

/// Shortens `s` to at most `max_bytes` bytes, cutting on a character
/// boundary and ending in [`ELLIPSIS`] (which counts towards the budget) when
/// anything was cut.
///
/// When the budget is too small to hold even the ellipsis (under 3 bytes),
/// the longest prefix that fits is returned without one.
pub fn truncate(s: &str, max_bytes: usize) -> String {
    if s.len() <= max_bytes {
        return s.to_owned();
    }
    match max_bytes.checked_sub(ELLIPSIS.len()) {
        Some(budget) => format!("{}{ELLIPSIS}", prefix_within(s, budget)),
        None => prefix_within(s, max_bytes).to_owned(),
    }
}

/// The longest prefix of `s` that is at most `max_bytes` bytes long and ends
/// on a character boundary.
fn prefix_within(s: &str, max_bytes: usize) -> &str {
    let end =
        s.char_indices().map(|(start, c)| start + c.len_utf8()).take_while(|&end| end <= max_bytes).last().unwrap_or(0);
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn short_input_is_returned_unchanged() {
        assert_eq!(truncate("hello", 5), "hello");
        assert_eq!(truncate("hello", 100), "hello");
        assert_eq!(truncate("", 0), "");
    }

    #[test]
    fn long_input_is_cut_and_ends_in_an_ellipsis() {
        assert_eq!(truncate("hello world", 8), "hello…");
        assert_eq!(truncate("hello world", 8).len(), 8);
    }

    #[test]
    fn cut_never_splits_a_character() {
        // "é" is two bytes: a budget of 4 leaves one byte before the
        // ellipsis, which is not enough for it.
        assert_eq!(truncate("ééé", 4), "…");
        assert_eq!(truncate("aééé", 5), "a…");
        assert_eq!(truncate("aéébc", 6), "aé…");
    }

    #[test]
    fn budget_smaller_than_the_ellipsis_gets_a_bare_prefix() {
        assert_eq!(truncate("hello", 2), "he");
        assert_eq!(truncate("hello", 0), "");
        assert_eq!(truncate("éa", 1), "");
    }

    #[test]
    fn budget_of_exactly_the_ellipsis_is_just_the_ellipsis() {
        assert_eq!(truncate("hello", 3), "…");
    }

    proptest! {
        #[test]
        fn result_fits_and_is_a_prefix(s in "\\PC{0,40}", max_bytes in 0usize..60) {
            let result = truncate(&s, max_bytes);
            if s.len() <= max_bytes {
                prop_assert_eq!(&result, &s);
            } else {
                prop_assert!(result.len() <= max_bytes);
                let kept = result.strip_suffix(ELLIPSIS).unwrap_or(&result);
                prop_assert!(s.starts_with(kept));
            }
        }

        #[test]
        fn cut_result_ends_in_an_ellipsis_when_there_is_room(
            (s, max_bytes) in "\\PC{4,40}".prop_flat_map(|s| {
                let too_short = 3..s.len();
                (Just(s), too_short)
            }),
        ) {
            prop_assert!(truncate(&s, max_bytes).ends_with(ELLIPSIS));
        }
    }
}
