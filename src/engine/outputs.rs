//! Job outputs: the `name=value` lines a pipeline stage (or an ImageBuild's
//! build Job) writes to its output file, which Kubernetes hands back as the
//! container's termination message.

use std::collections::BTreeMap;

use thiserror::Error;

use super::text::truncate;

/// Where a stage writes its `name=value` outputs. It is the container's
/// termination message file, so Kubernetes hands the content back in the
/// pod status (at most 4 KiB) with no wrapper binary in the image.
pub const OUTPUTS_PATH: &str = "/dev/termination-log";

/// The longest value one output may have, in bytes.
pub const MAX_OUTPUT_VALUE_BYTES: usize = 1024;

/// The most output text a stage may write, in bytes: Kubernetes keeps at
/// most this much of a termination message.
pub const MAX_OUTPUTS_BYTES: usize = 4096;

/// The output any stage may write, declared or not: `skip=true` means
/// "nothing to do, skip my dependents".
pub const SKIP_OUTPUT: &str = "skip";

/// The longest an output name may be, in characters (ASCII only).
const MAX_OUTPUT_NAME_CHARS: usize = 63;

/// A malformed line is quoted in an error up to this many bytes.
const MAX_QUOTED_LINE_BYTES: usize = 80;

/// Why a stage's outputs were rejected. Messages name the offending output
/// or line (1-based).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum OutputError {
    /// The whole text is longer than [`MAX_OUTPUTS_BYTES`].
    #[error("outputs are {bytes} bytes; the limit is {MAX_OUTPUTS_BYTES}")]
    TooLarge {
        /// Length of the text, in bytes.
        bytes: usize,
    },
    /// A line that is neither blank, a comment nor `name=value`.
    #[error("line {line}: expected name=value, found {text:?}")]
    NotNameValue {
        /// 1-based line number.
        line: usize,
        /// The line, shortened.
        text: String,
    },
    /// A name that is not `[A-Za-z_][A-Za-z0-9_.-]*` of at most 63 characters.
    #[error(
        "line {line}: {name:?} is not a valid output name (letters, digits, '_', '.' and '-', \
         starting with a letter or '_', at most 63 characters)"
    )]
    InvalidName {
        /// 1-based line number.
        line: usize,
        /// The name, shortened.
        name: String,
    },
    /// A name the stage did not declare (and not [`SKIP_OUTPUT`]).
    #[error("output {name:?} is not declared in the stage's outputs (declared: {})", list_or_none(declared))]
    Undeclared {
        /// The undeclared name.
        name: String,
        /// The stage's declared outputs.
        declared: Vec<String>,
    },
    /// A value longer than [`MAX_OUTPUT_VALUE_BYTES`].
    #[error("output {name:?} is {bytes} bytes long; the limit is {MAX_OUTPUT_VALUE_BYTES}")]
    ValueTooLong {
        /// The output's name.
        name: String,
        /// Length of its value, in bytes.
        bytes: usize,
    },
}

/// `names` joined with ", ", or "none" when empty.
fn list_or_none(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

/// Parses a stage's output text into a map from output name to value.
///
/// Each line is `name=value`, split at the first `=` (so the value may
/// contain `=`; it is kept as written, apart from trailing `\r`s). Blank
/// lines and lines starting with `#` are ignored. When a name appears twice
/// the later line wins. Every name must be valid and either in `declared` or
/// [`SKIP_OUTPUT`], and every value at most [`MAX_OUTPUT_VALUE_BYTES`].
pub fn parse_outputs(text: &str, declared: &[String]) -> Result<BTreeMap<String, String>, OutputError> {
    if text.len() > MAX_OUTPUTS_BYTES {
        return Err(OutputError::TooLarge { bytes: text.len() });
    }
    let mut outputs = BTreeMap::new();
    for (index, raw_line) in text.split('\n').enumerate() {
        let line = raw_line.trim_end_matches('\r');
        if is_blank_or_comment(line) {
            continue;
        }
        let (name, value) = parse_line(index + 1, line, declared)?;
        outputs.insert(name.to_owned(), value.to_owned());
    }
    Ok(outputs)
}

/// Whether `line` carries no output.
fn is_blank_or_comment(line: &str) -> bool {
    let trimmed = line.trim_start();
    trimmed.is_empty() || trimmed.starts_with('#')
}

/// Splits and checks one `name=value` line (`line_number` is 1-based).
fn parse_line<'a>(line_number: usize, line: &'a str, declared: &[String]) -> Result<(&'a str, &'a str), OutputError> {
    let (name, value) = line
        .split_once('=')
        .ok_or_else(|| OutputError::NotNameValue { line: line_number, text: truncate(line, MAX_QUOTED_LINE_BYTES) })?;
    if !is_valid_output_name(name) {
        return Err(OutputError::InvalidName { line: line_number, name: truncate(name, MAX_QUOTED_LINE_BYTES) });
    }
    if name != SKIP_OUTPUT && !declared.iter().any(|d| d == name) {
        return Err(OutputError::Undeclared { name: name.to_owned(), declared: declared.to_vec() });
    }
    if value.len() > MAX_OUTPUT_VALUE_BYTES {
        return Err(OutputError::ValueTooLong { name: name.to_owned(), bytes: value.len() });
    }
    Ok((name, value))
}

/// Whether `name` matches `[A-Za-z_][A-Za-z0-9_.-]*` and has at most 63
/// characters.
pub fn is_valid_output_name(name: &str) -> bool {
    let mut chars = name.chars();
    let starts_well = chars.next().is_some_and(|first| first.is_ascii_alphabetic() || first == '_');
    starts_well
        && name.len() <= MAX_OUTPUT_NAME_CHARS
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Whether the stage asked for its dependents to be skipped: its `skip`
/// output is `true`, `1` or `yes` (ignoring case and surrounding spaces).
pub fn is_skip(outputs: &BTreeMap<String, String>) -> bool {
    outputs.get(SKIP_OUTPUT).is_some_and(|value| {
        let value = value.trim();
        ["true", "1", "yes"].iter().any(|yes| value.eq_ignore_ascii_case(yes))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn declared(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn parses_declared_outputs() {
        let text = "image=quay.io/x/y:1\nversion=1.2.3\n";
        assert_eq!(
            parse_outputs(text, &declared(&["image", "version"])),
            Ok(map(&[("image", "quay.io/x/y:1"), ("version", "1.2.3")]))
        );
    }

    #[test]
    fn empty_text_has_no_outputs() {
        assert_eq!(parse_outputs("", &[]), Ok(BTreeMap::new()));
        assert_eq!(parse_outputs("\n\n", &[]), Ok(BTreeMap::new()));
    }

    #[test]
    fn value_is_split_at_the_first_equals_sign_and_kept_verbatim() {
        let text = "args=--a=1 --b=2 \nempty=";
        assert_eq!(
            parse_outputs(text, &declared(&["args", "empty"])),
            Ok(map(&[("args", "--a=1 --b=2 "), ("empty", "")]))
        );
    }

    #[test]
    fn ignores_blank_lines_comments_and_carriage_returns() {
        let text = "# written by build.sh\r\n\r\n   \n  # indented comment\nimage=x\r\n";
        assert_eq!(parse_outputs(text, &declared(&["image"])), Ok(map(&[("image", "x")])));
    }

    #[test]
    fn later_line_wins() {
        let text = "image=old\nimage=new";
        assert_eq!(parse_outputs(text, &declared(&["image"])), Ok(map(&[("image", "new")])));
    }

    #[test]
    fn skip_is_always_allowed() {
        assert_eq!(parse_outputs("skip=true", &[]), Ok(map(&[("skip", "true")])));
    }

    #[test]
    fn undeclared_output_is_named_in_the_error() {
        let err = parse_outputs("imgae=x", &declared(&["image", "version"])).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"output "imgae" is not declared in the stage's outputs (declared: image, version)"#
        );
        let err = parse_outputs("image=x", &[]).unwrap_err();
        assert_eq!(err.to_string(), r#"output "image" is not declared in the stage's outputs (declared: none)"#);
    }

    #[test]
    fn line_without_equals_sign_is_an_error_naming_the_line() {
        let err = parse_outputs("image=x\n\nbuilding...", &declared(&["image"])).unwrap_err();
        assert_eq!(err, OutputError::NotNameValue { line: 3, text: "building...".to_owned() });
        assert_eq!(err.to_string(), r#"line 3: expected name=value, found "building...""#);
    }

    #[test]
    fn invalid_names_are_errors() {
        let long_name = "a".repeat(64);
        for bad in ["=x", "9lives=x", "with space=x", " image=x", "é=x", "a/b=x", &format!("{long_name}=x")] {
            let err = parse_outputs(bad, &declared(&["image"])).unwrap_err();
            assert!(matches!(err, OutputError::InvalidName { line: 1, .. }), "{bad:?}: {err:?}");
        }
    }

    #[test]
    fn valid_names() {
        for good in ["a", "_", "image", "Image_2", "a.b-c", "_x.y", &"a".repeat(63)] {
            assert!(is_valid_output_name(good), "{good:?}");
        }
    }

    #[test]
    fn value_length_is_limited() {
        let at_limit = format!("image={}", "v".repeat(MAX_OUTPUT_VALUE_BYTES));
        assert!(parse_outputs(&at_limit, &declared(&["image"])).is_ok());
        let over = format!("image={}", "v".repeat(MAX_OUTPUT_VALUE_BYTES + 1));
        assert_eq!(
            parse_outputs(&over, &declared(&["image"])),
            Err(OutputError::ValueTooLong { name: "image".to_owned(), bytes: MAX_OUTPUT_VALUE_BYTES + 1 })
        );
    }

    #[test]
    fn text_length_is_limited() {
        let over = "#".repeat(MAX_OUTPUTS_BYTES + 1);
        assert_eq!(parse_outputs(&over, &[]), Err(OutputError::TooLarge { bytes: MAX_OUTPUTS_BYTES + 1 }));
    }

    #[test]
    fn is_skip_accepts_common_spellings_of_yes() {
        for yes in ["true", "TRUE", "True", "1", "yes", "YES", " yes "] {
            assert!(is_skip(&map(&[("skip", yes)])), "{yes:?}");
        }
        for no in ["false", "0", "no", "", "y", "truthy"] {
            assert!(!is_skip(&map(&[("skip", no)])), "{no:?}");
        }
        assert!(!is_skip(&BTreeMap::new()));
        assert!(!is_skip(&map(&[("other", "true")])));
    }

    fn output_name() -> impl Strategy<Value = String> {
        "[A-Za-z_][A-Za-z0-9_.-]{0,62}"
    }

    fn output_value() -> impl Strategy<Value = String> {
        // Anything but a line break; a trailing '\r' would be stripped.
        "[^\n\r]{0,60}"
    }

    proptest! {
        #[test]
        fn written_outputs_parse_back(
            outputs in prop::collection::btree_map(output_name(), output_value(), 0..8),
        ) {
            let declared: Vec<String> = outputs.keys().cloned().collect();
            let text: String = outputs
                .iter()
                .map(|(name, value)| format!("{name}={value}\n"))
                .collect();
            prop_assert_eq!(parse_outputs(&text, &declared), Ok(outputs));
        }

        #[test]
        fn accepted_outputs_respect_the_rules(
            text in "([a-c=#\r\n ]|skip|x{300}){0,40}",
        ) {
            let declared = declared(&["a", "b"]);
            if let Ok(outputs) = parse_outputs(&text, &declared) {
                for (name, value) in &outputs {
                    prop_assert!(name == SKIP_OUTPUT || declared.contains(name));
                    prop_assert!(value.len() <= MAX_OUTPUT_VALUE_BYTES);
                    prop_assert!(!value.contains('\n') && !value.ends_with('\r'));
                }
            }
        }

        #[test]
        fn never_panics(text in "\\PC{0,200}") {
            let _ = parse_outputs(&text, &declared(&["a"]));
        }
    }
}
