//! `$(params.NAME)`, `$(stages.STAGE.outputs.NAME)` and `$(gate.ahead)` in
//! stage images, commands, args and env values. Only expressions that start
//! with `params.`, `stages.` or `gate.` are Gantry's (and must be well-formed); any other
//! `$(` is the shell's command substitution and passes through untouched, as
//! do `$HOME` and `${X}`. `$$(` writes a literal `$(`.

use std::fmt;

/// What a `$(...)` expression refers to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reference {
    /// `$(params.NAME)`
    Param(String),
    /// `$(stages.STAGE.outputs.NAME)`
    Output { stage: String, output: String },
    /// `$(gate.ahead)`: what a `Gate` run's try is tested on.
    GateAhead,
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Param(name) => write!(f, "$(params.{name})"),
            Reference::Output { stage, output } => write!(f, "$(stages.{stage}.outputs.{output})"),
            Reference::GateAhead => f.write_str("$(gate.ahead)"),
        }
    }
}

/// A malformed expression.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyntaxError {
    /// `$(` without a closing `)`.
    #[error("unclosed \"$(\" at byte {0}")]
    Unclosed(usize),
    /// `$(params...)`, `$(stages...)` or `$(gate...)` that is none of
    /// `params.NAME`, `stages.STAGE.outputs.NAME` and `gate.ahead`.
    #[error("\"$({0})\" is not $(params.NAME), $(stages.STAGE.outputs.NAME) or $(gate.ahead)")]
    Unknown(String),
}

enum Segment<'a> {
    Literal(&'a str),
    Ref(Reference),
}

fn parse(template: &str) -> Result<Vec<Segment<'_>>, SyntaxError> {
    let mut segments = Vec::new();
    let mut rest = template;
    let mut offset = 0;
    while let Some(pos) = rest.find("$(") {
        if pos > 0 && rest.as_bytes()[pos - 1] == b'$' {
            // `$$(` is an escaped literal `$(`.
            segments.push(Segment::Literal(&rest[..pos - 1]));
            segments.push(Segment::Literal("$("));
            rest = &rest[pos + 2..];
            offset += pos + 2;
            continue;
        }
        let body_start = pos + 2;
        if !["params.", "stages.", "gate."].iter().any(|p| rest[body_start..].starts_with(p)) {
            // Shell command substitution: not ours.
            segments.push(Segment::Literal(&rest[..body_start]));
            rest = &rest[body_start..];
            offset += body_start;
            continue;
        }
        segments.push(Segment::Literal(&rest[..pos]));
        let close = rest[body_start..].find(')').ok_or(SyntaxError::Unclosed(offset + pos))?;
        let body = &rest[body_start..body_start + close];
        segments.push(Segment::Ref(parse_reference(body)?));
        rest = &rest[body_start + close + 1..];
        offset += body_start + close + 1;
    }
    segments.push(Segment::Literal(rest));
    Ok(segments)
}

fn parse_reference(body: &str) -> Result<Reference, SyntaxError> {
    let parts: Vec<&str> = body.split('.').collect();
    let valid = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'));
    match parts.as_slice() {
        ["params", name] if valid(name) => Ok(Reference::Param(name.to_string())),
        ["gate", "ahead"] => Ok(Reference::GateAhead),
        ["stages", stage, "outputs", output] if valid(stage) && valid(output) => {
            Ok(Reference::Output { stage: stage.to_string(), output: output.to_string() })
        }
        _ => Err(SyntaxError::Unknown(body.to_string())),
    }
}

/// Every reference in `template`, in order of appearance.
pub fn references(template: &str) -> Result<Vec<Reference>, SyntaxError> {
    Ok(parse(template)?
        .into_iter()
        .filter_map(|s| match s {
            Segment::Ref(r) => Some(r),
            Segment::Literal(_) => None,
        })
        .collect())
}

/// Replaces every reference using `lookup`; a reference `lookup` cannot
/// resolve is returned as the error.
pub fn render(template: &str, lookup: impl Fn(&Reference) -> Option<String>) -> Result<String, RenderError> {
    let mut out = String::with_capacity(template.len());
    for segment in parse(template)? {
        match segment {
            Segment::Literal(text) => out.push_str(text),
            Segment::Ref(r) => match lookup(&r) {
                Some(value) => out.push_str(&value),
                None => return Err(RenderError::Unresolved(r)),
            },
        }
    }
    Ok(out)
}

/// Why a template could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// The template is malformed.
    #[error(transparent)]
    Syntax(#[from] SyntaxError),
    /// The reference has no value (for outputs: the stage did not write it).
    #[error("{0} has no value")]
    Unresolved(Reference),
    /// An output with characters outside [`is_safe_output`] would be
    /// substituted into `field` (image, command or args).
    #[error(
        "{reference} in {field} is {value:?}, which has characters other than letters, digits and {SAFE_PUNCTUATION}: \
         read it from ${env} in the script instead, or set allowUnsafeOutputs on this stage"
    )]
    Unsafe { reference: Reference, field: String, value: String, env: String },
}

/// The punctuation an output may hold to be substituted into an image,
/// command or args: enough for versions, image references, digests, URLs
/// and address lists, and nothing a shell gives meaning to.
pub const SAFE_PUNCTUATION: &str = "._-:/@+=,";

/// Whether an output value is plain data in any shell word.
pub fn is_safe_output(value: &str) -> bool {
    value.chars().all(|c| c.is_ascii_alphanumeric() || SAFE_PUNCTUATION.contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn lookup(r: &Reference) -> Option<String> {
        match r {
            Reference::Param(p) if p == "arch" => Some("amd64".into()),
            Reference::Output { stage, output } if stage == "sdk" && output == "image" => Some("sdk:1".into()),
            _ => None,
        }
    }

    #[test]
    fn only_plain_data_is_a_safe_output() {
        for safe in ["", "3145.0.0", "registry:5000/sdk:c20261201", "sha256:0ab9", "10.88.0.4,10.88.0.5", "a=b+c@d"] {
            assert!(is_safe_output(safe), "{safe:?}");
        }
        for unsafe_ in ["$(id)", "`id`", "a;b", "a b", "a|b", "x&&y", "'q'", "\"q\"", "a\nb", "~root", "*", "é"] {
            assert!(!is_safe_output(unsafe_), "{unsafe_:?}");
        }
    }

    #[test]
    fn renders_params_and_outputs() {
        let out = render("$(stages.sdk.outputs.image) --arch=$(params.arch)", lookup).unwrap();
        assert_eq!(out, "sdk:1 --arch=amd64");
    }

    #[test]
    fn leaves_shell_variables_and_escapes_alone() {
        assert_eq!(render("echo $HOME ${X} $$(params.arch) $", lookup).unwrap(), "echo $HOME ${X} $(params.arch) $");
    }

    #[test]
    fn reports_unclosed_and_unknown_expressions() {
        assert_eq!(references("x $(params.arch").unwrap_err(), SyntaxError::Unclosed(2));
        assert_eq!(references("$(params.a.b)").unwrap_err(), SyntaxError::Unknown("params.a.b".into()));
        assert_eq!(references("$(stages.a.output.b)").unwrap_err(), SyntaxError::Unknown("stages.a.output.b".into()));
        assert_eq!(references("$(params.)").unwrap_err(), SyntaxError::Unknown("params.".into()));
    }

    #[test]
    fn shell_command_substitution_is_not_ours() {
        let script = "d=$(echo \"$X\" | sha256sum) $(params.arch) $(date)";
        assert_eq!(references(script).unwrap(), vec![Reference::Param("arch".into())]);
        assert_eq!(render(script, lookup).unwrap(), "d=$(echo \"$X\" | sha256sum) amd64 $(date)");
        assert!(references("$(unclosed").unwrap().is_empty());
    }

    #[test]
    fn an_unresolved_reference_is_named() {
        let err = render("$(params.nope)", lookup).unwrap_err();
        assert_eq!(err.to_string(), "$(params.nope) has no value");
    }

    #[test]
    fn lists_references_in_order() {
        let refs = references("$(params.a)-$(stages.s.outputs.o)-$(params.a)").unwrap();
        assert_eq!(
            refs,
            vec![
                Reference::Param("a".into()),
                Reference::Output { stage: "s".into(), output: "o".into() },
                Reference::Param("a".into())
            ]
        );
    }

    proptest! {
        /// Text without `$(` renders to itself, whatever the lookup.
        #[test]
        fn text_without_expressions_is_unchanged(s in "[^$]*|[a-z $]*") {
            prop_assume!(!s.contains("$("));
            prop_assert_eq!(render(&s, |_| None).unwrap(), s);
        }

        /// Rendering a reference to a param yields the value, with the text around it kept.
        #[test]
        fn a_param_renders_to_its_value(pre in "[a-z ]*", post in "[a-z ]*", value in ".*") {
            let template = format!("{pre}$(params.p){post}");
            let out = render(&template, |_| Some(value.clone())).unwrap();
            prop_assert_eq!(out, format!("{pre}{value}{post}"));
        }
    }
}
