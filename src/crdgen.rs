//! Generates the CustomResourceDefinitions that `gantry crds` prints and
//! `crds/` holds.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use serde_json::Value;

use crate::api::{ImageBuild, KataInstall, PipelineRun};

/// The CRDs of every kind Gantry reconciles, ready for the 1.20+ apiserver.
pub fn all() -> Vec<CustomResourceDefinition> {
    vec![PipelineRun::crd(), ImageBuild::crd(), KataInstall::crd()].into_iter().map(make_portable).collect()
}

/// The CRDs as one multi-document YAML stream, as checked in under `crds/`.
pub fn to_yaml() -> anyhow::Result<String> {
    let mut out = String::new();
    for crd in all() {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&crd)?);
    }
    Ok(out)
}

/// File name under `crds/` for one CRD, e.g. `pipelineruns.gantry.dev.yaml`.
pub fn file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}.yaml", crd.metadata.name.as_deref().unwrap_or("unnamed"))
}

/// Removes `null` from every `enum` list of the schema. schemars emits it
/// for `Option<Enum>` fields (with `nullable: true`), and the 1.20 apiserver
/// rejects the whole CRD for it with a misleading message about per-version
/// schemas. Optional fields are expressed by leaving them out, so `null`
/// adds nothing.
fn make_portable(crd: CustomResourceDefinition) -> CustomResourceDefinition {
    let mut value = serde_json::to_value(&crd).expect("a CRD serializes");
    strip_null_from_enums(&mut value);
    serde_json::from_value(value).expect("a CRD without null enum members deserializes")
}

fn strip_null_from_enums(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::Array(members)) = map.get_mut("enum") {
                members.retain(|m| !m.is_null());
            }
            map.values_mut().for_each(strip_null_from_enums);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_null_from_enums),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enum_lists(value: &Value, found: &mut Vec<Vec<Value>>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::Array(members)) = map.get("enum") {
                    found.push(members.clone());
                }
                map.values().for_each(|v| enum_lists(v, found));
            }
            Value::Array(items) => items.iter().for_each(|v| enum_lists(v, found)),
            _ => {}
        }
    }

    #[test]
    fn no_enum_in_any_crd_lists_null() {
        let mut found = Vec::new();
        for crd in all() {
            enum_lists(&serde_json::to_value(&crd).unwrap(), &mut found);
        }
        assert!(!found.is_empty(), "the CRDs have enums (phases), so the check has something to check");
        for members in found {
            assert!(!members.contains(&Value::Null), "enum with null: {members:?}");
        }
    }

    #[test]
    fn the_crds_carry_short_names_and_the_gantry_category() {
        for crd in all() {
            let names = &crd.spec.names;
            assert_eq!(names.categories.as_deref(), Some(&["gantry".to_string()][..]));
            assert!(names.short_names.as_ref().is_some_and(|s| !s.is_empty()), "{}", names.kind);
        }
    }
}
