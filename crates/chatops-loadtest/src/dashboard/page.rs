//! The dashboard's one page: static HTML with the report's stylesheet and tooltip script
//! plus its own ([`SCRIPT`]), all inline. It holds no figure: everything arrives over the
//! event stream. Its Content-Security-Policy lets it run exactly those two scripts and
//! connect only to its own origin, so nothing is fetched from elsewhere and the page works
//! offline.

use std::sync::LazyLock;

use bytes::Bytes;

const CSS: &str = include_str!("../../assets/dashboard.css");
/// The page's own script, static (no data is ever written into it).
pub const SCRIPT: &str = include_str!("../../assets/dashboard.js");
/// The policy, sent as a header and repeated in the page. It names the two scripts by hash
/// (the report's tooltips, `chatops_report::html::SCRIPT_SHA256`, and [`SCRIPT`]); a unit
/// test recomputes both: after editing dashboard.js, run
/// `cargo test -p chatops-loadtest --lib csp` and paste the hash it prints.
pub const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; \
     script-src 'sha256-sdfsUqm6d/WvF7u/EiMzIMzZJQIE712CCI0Th4i113A=' 'sha256-AfVtrwXuYwgMuEl6UksPYQT+iburED3GaoGJ0X6nonQ='; connect-src 'self'; \
     img-src data:; base-uri 'none'; form-action 'none'";

static PAGE: LazyLock<Bytes> = LazyLock::new(|| {
    let report_css = chatops_report::html::CSS;
    let tooltips = chatops_report::html::SCRIPT;
    Bytes::from(format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">\
<meta name=\"generator\" content=\"chatops-loadtest {version}\">\
<link rel=\"icon\" href=\"data:,\"><title>chatops loadtest · live dashboard</title><style>{report_css}{CSS}</style></head><body data-kind=\"connecting\">\n\
<header class=\"top\"><h1>Load test <span id=\"profile\">…</span> <span class=\"badge nodata\" id=\"status\">CONNECTING</span></h1>\
<p class=\"sub\"><span id=\"target\"></span> · phase <strong id=\"phase\">–</strong> · <span id=\"clock\">0:00</span> · \
<span id=\"conn\">connecting…</span></p>\
<div class=\"bar\" id=\"progress\" role=\"progressbar\" aria-label=\"test progress\" aria-valuemin=\"0\" aria-valuemax=\"100\" \
aria-valuenow=\"0\"><div id=\"progress-fill\"></div></div></header>\n<main>\n\
<section class=\"card\" id=\"verdict\" hidden><h2>Verdict <span class=\"badge\" id=\"verdict-badge\"></span></h2>\
<div class=\"table-wrap\"><table id=\"thresholds\"><thead><tr><th>threshold</th><th>limit</th><th>measured</th>\
<th>result</th></tr></thead><tbody></tbody></table></div>\
<p class=\"empty\" id=\"no-thresholds\" hidden>No thresholds were set (the profile's <code>ensure</code>, or flags such as \
<code>--p99</code> and <code>--max-lost</code>).</p>\
<p>Results file: <code id=\"results-path\"></code> · <a id=\"results-link\" href=\"results.json\" download>download the \
results JSON</a> · <a id=\"report-link\" href=\"report.html\" target=\"_blank\" rel=\"noopener\">open the HTML report</a></p>\
<p class=\"sub\">For the report with the bot's side (from its log), run <code id=\"analyze-command\"></code> and then \
<code id=\"report-command\"></code>.</p><div id=\"notes\"></div></section>\n\
<section class=\"card\" id=\"failure\" hidden><h2>The run failed</h2><p id=\"failure-text\"></p></section>\n\
<section class=\"card\" id=\"numbers\"><h2>Numbers</h2><div class=\"cards big\" id=\"cards-load\"></div>\
<div class=\"cards lat\" id=\"cards-latency\"></div>\
<p class=\"sub\">ack = scheduled send → HTTP answer; E2E = scheduled send → first answer at the generator's receiver, as \
Slack's user would see it. While the test runs, E2E counts answers as they arrive; at the end every number is the \
results file's.</p></section>\n\
<section class=\"card\" id=\"charts\"><h2>Over time</h2><div class=\"grid\">\
<figure id=\"fig-rate\"><figcaption>Target vs achieved request rate</figcaption><div class=\"slot\" id=\"slot-rate\">\
<p class=\"empty\">Waiting for the first interval…</p></div></figure>\
<figure id=\"fig-ack\"><figcaption>Ack latency over time</figcaption><div class=\"slot\" id=\"slot-ack\">\
<p class=\"empty\">Waiting for the first interval…</p></div></figure>\
<figure id=\"fig-e2e\"><figcaption>E2E latency (first response) over time</figcaption><div class=\"slot\" id=\"slot-e2e\">\
<p class=\"empty\">Waiting for the first interval…</p></div></figure>\
<figure id=\"fig-server\" hidden><figcaption>Server: queue depth, in flight, DLQ</figcaption>\
<div class=\"slot\" id=\"slot-server\"></div></figure>\
</div><p class=\"sub\" id=\"points-note\"></p></section>\n</main>\n\
<footer><p>chatops loadtest dashboard. Self-contained: nothing is fetched but this page's own event stream.</p></footer>\n\
<noscript><p class=\"note\">The dashboard needs JavaScript for its live updates; the results file has every figure.</p></noscript>\
<script>{tooltips}</script><script>{SCRIPT}</script>\n</body></html>\n",
        version = env!("CARGO_PKG_VERSION"),
    ))
});

/// The page's bytes.
pub fn html() -> Bytes {
    PAGE.clone()
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use sha2::Digest as _;

    use super::*;

    fn csp_hash(script: &str) -> String {
        format!("sha256-{}", base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(script)))
    }

    #[test]
    fn csp_allows_exactly_the_two_inline_scripts() {
        let ours = csp_hash(SCRIPT);
        println!("dashboard.js: {ours}");
        assert_eq!(chatops_report::html::SCRIPT_SHA256, csp_hash(chatops_report::html::SCRIPT));
        let allowed = CSP.split(';').find_map(|d| d.trim().strip_prefix("script-src ")).unwrap();
        let mut hashes: Vec<&str> = allowed.split_whitespace().map(|h| h.trim_matches('\'')).collect();
        hashes.sort_unstable();
        let mut want = vec![ours.as_str(), chatops_report::html::SCRIPT_SHA256];
        want.sort_unstable();
        assert_eq!(hashes, want, "dashboard.js changed: paste its printed hash into CSP");
    }

    #[test]
    fn the_page_is_self_contained() {
        let page = String::from_utf8(html().to_vec()).unwrap();
        for outside in ["http://", "https://", "src=", "<link rel=\"stylesheet"] {
            assert!(!page.contains(outside), "the page refers outside itself: {outside}");
        }
        assert_eq!(page.matches("<script>").count(), 2);
        assert!(page.contains(CSP));
    }
}
