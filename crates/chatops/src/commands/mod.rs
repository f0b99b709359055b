//! One module per subcommand.

pub mod dlq;
pub mod loadtest;
pub mod nats;
pub mod options;
pub mod send;
pub mod serve;
pub mod sign;
