//! Integration tests of chatops-analyze on small fixtures: known values, windows, gzip,
//! folders, the origin format, Artillery's results, the join and compare.
#![allow(clippy::unwrap_used)] // tests and benchmarks: a failed unwrap is the failure report

mod analyze;
mod artillery;
mod compare;
mod join;
mod origin;
mod support;
mod table;
