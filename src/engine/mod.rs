//! Pure decisions: spec and observed state in, actions out. No I/O here.
