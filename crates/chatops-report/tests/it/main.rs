//! Integration tests of chatops-report: the HTML and PNG from the committed fixtures, the
//! `run_report` entry point on real files, and the page in headless Chromium.

mod browser;
mod html;
mod png;
mod run;
mod support;
