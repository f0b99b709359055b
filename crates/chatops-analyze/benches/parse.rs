//! Run with `cargo bench -p chatops-analyze --bench parse`.
fn main() {}
