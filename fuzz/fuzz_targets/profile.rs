//! Run with `scripts/fuzz.sh profile 60`.
//!
//! The load-test profile parser (Artillery-shaped YAML) and the template engine on
//! arbitrary text: errors are fine, panics and hangs are not.
#![no_main]

use chatops_loadtest::profile::Profile;
use chatops_loadtest::template::{ProcessEnv, Template};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(mut profile) = Profile::parse(text, "fuzz.yml", &ProcessEnv) {
        let _ = profile.scale(2.0, 0.5);
        let _ = profile.total_duration();
    }
    if let Ok(template) = Template::compile(text, &ProcessEnv) {
        let rendered = template.render();
        // Rendering is bounded by the template: no template expands without limit.
        assert!(rendered.len() <= text.len().saturating_mul(64) + 4096, "{} -> {}", text.len(), rendered.len());
    }
});
