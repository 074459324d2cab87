//! Checks a KataInstall spec; every message names the field.

use crate::api::katainstall::KataInstallSpec;
use crate::engine::duration::{parse_duration_at_most, MAX_TIMEOUT};
use crate::engine::naming::is_dns_label;
use crate::engine::spec_error::SpecError;

/// Longest KataInstall name: it goes into label values and child names
/// (`<name>-cleanup`, `<name>-smoke-server`), which must stay valid.
pub const MAX_NAME_LEN: usize = 40;
/// Longest shim name (the RuntimeClass `kata-<shim>` is a DNS label).
pub const MAX_SHIM_LEN: usize = 40;
/// Most shims one KataInstall may list.
pub const MAX_SHIMS: usize = 16;

/// The shim the smoke test uses: `defaultShim`, else the first shim.
pub fn default_shim(spec: &KataInstallSpec) -> Option<&str> {
    spec.default_shim.as_deref().or(spec.shims.first().map(String::as_str))
}

/// Validates `name` and `spec`.
pub fn validate(name: &str, spec: &KataInstallSpec) -> Result<(), SpecError> {
    if !is_dns_label(name) || name.len() > MAX_NAME_LEN {
        return Err(SpecError::at(
            "metadata.name",
            format!("must be a DNS label of at most {MAX_NAME_LEN} characters"),
        ));
    }
    let image = spec.installer_image.trim();
    if image.is_empty() || image.len() != spec.installer_image.len() || image.contains(char::is_whitespace) {
        return Err(SpecError::at("spec.installerImage", "must be an image reference without spaces"));
    }
    if spec.shims.is_empty() {
        return Err(SpecError::at("spec.shims", "list at least one shim, e.g. qemu"));
    }
    if spec.shims.len() > MAX_SHIMS {
        return Err(SpecError::at("spec.shims", format!("at most {MAX_SHIMS} shims")));
    }
    for (i, shim) in spec.shims.iter().enumerate() {
        if !is_dns_label(shim) || shim.len() > MAX_SHIM_LEN {
            return Err(SpecError::at(
                format!("spec.shims[{i}]"),
                format!("{shim:?} is not a shim name (lowercase letters, digits and '-', at most {MAX_SHIM_LEN})"),
            ));
        }
        if spec.shims[..i].contains(shim) {
            return Err(SpecError::at(format!("spec.shims[{i}]"), format!("{shim:?} is listed twice")));
        }
    }
    if let Some(shim) = &spec.default_shim {
        if !spec.shims.contains(shim) {
            return Err(SpecError::at("spec.defaultShim", format!("{shim:?} is not one of spec.shims")));
        }
    }
    for (key, value) in &spec.node_selector {
        if !is_label_key(key) {
            return Err(SpecError::at(format!("spec.nodeSelector[{key}]"), "is not a valid label key"));
        }
        if !is_label_value(value) {
            return Err(SpecError::at(
                format!("spec.nodeSelector[{key}]"),
                format!("{value:?} is not a valid label value"),
            ));
        }
    }
    for (shim, resources) in &spec.overhead {
        if !spec.shims.contains(shim) {
            return Err(SpecError::at(format!("spec.overhead.{shim}"), "names a shim that is not in spec.shims"));
        }
        for (resource, quantity) in resources {
            if !is_label_key(resource) {
                return Err(SpecError::at(format!("spec.overhead.{shim}.{resource}"), "is not a resource name"));
            }
            if !is_quantity(&quantity.0) {
                return Err(SpecError::at(
                    format!("spec.overhead.{shim}.{resource}"),
                    format!("{:?} is not a quantity", quantity.0),
                ));
            }
        }
    }
    if let Some(image) = &spec.smoke_test.image {
        if image.is_empty() || image.contains(char::is_whitespace) {
            return Err(SpecError::at("spec.smokeTest.image", "must be an image reference without spaces"));
        }
    }
    for (field, value) in
        [("spec.smokeTest.timeout", &spec.smoke_test.timeout), ("spec.cleanupTimeout", &spec.cleanup_timeout)]
    {
        if let Some(v) = value {
            match parse_duration_at_most(v, MAX_TIMEOUT) {
                Ok(d) if d.is_zero() => return Err(SpecError::at(field, "must be longer than zero")),
                Ok(_) => {}
                Err(e) => return Err(SpecError::at(field, e)),
            }
        }
    }
    Ok(())
}

/// `prefix/name` or `name`, as Kubernetes label keys.
fn is_label_key(key: &str) -> bool {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let prefix_ok = prefix.is_none_or(|p| !p.is_empty() && p.len() <= 253 && p.split('.').all(is_dns_label));
    prefix_ok && !name.is_empty() && is_label_value(name)
}

/// At most 63 alphanumerics, `-`, `_` or `.`, starting and ending alphanumeric (or empty).
fn is_label_value(value: &str) -> bool {
    let bytes = value.as_bytes();
    value.len() <= 63
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && bytes.first().is_none_or(u8::is_ascii_alphanumeric)
        && bytes.last().is_none_or(u8::is_ascii_alphanumeric)
}

/// A plain Kubernetes quantity: a decimal number and an optional suffix.
fn is_quantity(q: &str) -> bool {
    const SUFFIXES: [&str; 14] = ["", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
    let number_end = q.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(q.len());
    let (number, suffix) = q.split_at(number_end);
    !number.is_empty() && number.parse::<f64>().is_ok() && SUFFIXES.contains(&suffix)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use std::collections::BTreeMap;

    fn spec() -> KataInstallSpec {
        KataInstallSpec {
            installer_image: "quay.io/kata-containers/kata-deploy:3.2.0".into(),
            shims: vec!["qemu".into(), "clh".into()],
            ..Default::default()
        }
    }

    fn field(name: &str, spec: &KataInstallSpec) -> String {
        validate(name, spec).unwrap_err().field
    }

    #[test]
    fn a_plain_spec_is_valid_and_the_default_shim_is_the_first() {
        assert_eq!(validate("kata", &spec()), Ok(()));
        assert_eq!(default_shim(&spec()), Some("qemu"));
        let s = KataInstallSpec { default_shim: Some("clh".into()), ..spec() };
        assert_eq!(default_shim(&s), Some("clh"));
    }

    #[test]
    fn each_bad_field_is_named() {
        assert_eq!(field("Kata", &spec()), "metadata.name");
        assert_eq!(field("kata", &KataInstallSpec { installer_image: " ".into(), ..spec() }), "spec.installerImage");
        assert_eq!(field("kata", &KataInstallSpec { shims: vec![], ..spec() }), "spec.shims");
        let bad_shim = KataInstallSpec { shims: vec!["qemu".into(), "Q EMU".into()], ..spec() };
        assert_eq!(field("kata", &bad_shim), "spec.shims[1]");
        let twice = KataInstallSpec { shims: vec!["qemu".into(), "qemu".into()], ..spec() };
        assert_eq!(validate("kata", &twice).unwrap_err().to_string(), "spec.shims[1]: \"qemu\" is listed twice");
        let default = KataInstallSpec { default_shim: Some("fc".into()), ..spec() };
        let e = validate("kata", &default).unwrap_err();
        assert_eq!(e.field, "spec.defaultShim");
        assert!(e.message.contains("\"fc\" is not one of spec.shims"), "{e}");
        let selector = KataInstallSpec { node_selector: BTreeMap::from([("a b".into(), "x".into())]), ..spec() };
        assert_eq!(field("kata", &selector), "spec.nodeSelector[a b]");
        let value = KataInstallSpec { node_selector: BTreeMap::from([("kata".into(), "-x".into())]), ..spec() };
        assert_eq!(field("kata", &value), "spec.nodeSelector[kata]");
        let overhead = |shim: &str, q: &str| KataInstallSpec {
            overhead: BTreeMap::from([(shim.into(), BTreeMap::from([("memory".into(), Quantity(q.into()))]))]),
            ..spec()
        };
        assert_eq!(validate("kata", &overhead("qemu", "160Mi")), Ok(()));
        assert_eq!(field("kata", &overhead("fc", "160Mi")), "spec.overhead.fc");
        assert_eq!(field("kata", &overhead("qemu", "lots")), "spec.overhead.qemu.memory");
        let mut timeout = spec();
        timeout.smoke_test.timeout = Some("soon".into());
        assert_eq!(field("kata", &timeout), "spec.smokeTest.timeout");
        let cleanup = KataInstallSpec { cleanup_timeout: Some("0s".into()), ..spec() };
        assert_eq!(field("kata", &cleanup), "spec.cleanupTimeout");
    }

    #[test]
    fn the_sample_is_valid() {
        let text = include_str!("../../../manifests/samples/katainstall.yaml");
        let install: crate::api::KataInstall = serde_yaml::from_str(text).unwrap();
        assert_eq!(validate(&install.metadata.name.unwrap(), &install.spec), Ok(()));
    }

    #[test]
    fn label_keys_and_quantities() {
        assert!(is_label_key("katacontainers.io/kata-runtime"));
        assert!(is_label_key("node-role.kubernetes.io/worker"));
        assert!(!is_label_key("/x"));
        assert!(is_quantity("250m") && is_quantity("1.5Gi") && is_quantity("2"));
        assert!(!is_quantity("") && !is_quantity("Mi") && !is_quantity("1XB"));
    }
}
