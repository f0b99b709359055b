//! The built-in handler kinds: `echo`, `help`, `check-status`, `simulate`. The API they
//! implement (the trait, the context, the errors) lives in [`crate::handler`].

pub mod check_status;
pub mod echo;
pub mod help;
pub mod simulate;
