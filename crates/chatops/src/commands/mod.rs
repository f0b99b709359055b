//! One module per subcommand.

pub(crate) mod audit;
pub(crate) mod dlq;
pub(crate) mod loadtest;
pub(crate) mod nats;
pub(crate) mod options;
pub(crate) mod send;
pub(crate) mod serve;
pub(crate) mod sign;
