//! One module per subcommand.

pub mod dlq;
pub mod send;
pub mod serve;
pub mod sign;
