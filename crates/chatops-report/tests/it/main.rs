//! Integration tests of chatops-report: the HTML and PNG from the committed fixtures, the
//! `run_report` entry point on real files (ours and Artillery's), and the page in headless Chromium.
#![allow(clippy::unwrap_used)] // tests and benchmarks: a failed unwrap is the failure report

mod artillery;
mod browser;
mod html;
mod png;
mod run;
mod support;
