//! Pure builders for the manifests Gantry creates.
