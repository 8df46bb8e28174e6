//! The `keyhole` command.
fn main() {}
