//! Text for the page and the charts: escaping of everything that came from a file, and the
//! number formats. Formatting only: no figure is derived here.
//!
//! One escaper serves HTML and SVG alike, because the same chart markup is inlined in the
//! HTML page and parsed as XML by `usvg` for the PNG: it must be valid in both.

use std::fmt::Write as _;

/// Escapes text for HTML/XML content and double- or single-quoted attributes. Control
/// characters (not allowed in XML 1.0, even as references) become U+FFFD, so a hostile
/// name can neither inject markup nor break the PNG's SVG parse.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' | '\r' => out.push(' '),
            c if c.is_control() || matches!(c, '\u{fffe}' | '\u{ffff}') => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// At most `max` characters, with an ellipsis when cut (for chart labels; tables show all).
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
    t.push('…');
    t
}

/// Milliseconds with the analyzer's precision rules (`4.987`, `19.73`, `319.2`, `1000`), so
/// the report and `chatops analyze`'s table show the same digits.
pub fn ms(v: f64) -> String {
    chatops_analyze::table::fmt_ms(v)
}

/// `12.3 ms`, or `1.235 s` from one second on.
pub fn ms_unit(v: f64) -> String {
    if v.abs() >= 1000.0 { format!("{:.3} s", v / 1000.0) } else { format!("{} ms", ms(v)) }
}

/// A count with thin-space thousands separators: `1 700`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('\u{202f}');
        }
        out.push(c);
    }
    out
}

/// A ratio in 0..1 as a percentage: `0.59%`.
pub fn ratio_pct(r: f64) -> String {
    pct(r * 100.0)
}

/// A percentage given in percent: `82.77%`.
pub fn pct(p: f64) -> String {
    if p != 0.0 && p.abs() < 0.01 { format!("{p:.3}%") } else { format!("{p:.2}%") }
}

/// A rate per second: `27.9/s`.
pub fn rate(r: f64) -> String {
    if r.abs() >= 100.0 { format!("{r:.0}/s") } else { format!("{r:.1}/s") }
}

/// A raw number as stored in the JSON (shortest round-trip form), for the appendix.
pub fn raw(v: f64) -> String {
    let mut s = String::new();
    let _ = write!(s, "{v}");
    s
}

/// Seconds of a test for axis labels and phase tables: `90 s`, `1.5 s`.
pub fn secs(ms: u64) -> String {
    if ms.is_multiple_of(1000) { format!("{} s", ms / 1000) } else { format!("{:.1} s", ms as f64 / 1000.0) }
}

/// A duration in words for the configuration table: `1 min 30 s`.
pub fn duration(ms: i64) -> String {
    if ms < 0 {
        return format!("{ms} ms");
    }
    let s = ms / 1000;
    match (s / 3600, s % 3600 / 60, s % 60) {
        (0, 0, _) if ms < 10_000 => format!("{:.1} s", ms as f64 / 1000.0),
        (0, 0, sec) => format!("{sec} s"),
        (0, m, 0) => format!("{m} min"),
        (0, m, sec) => format!("{m} min {sec} s"),
        (h, m, _) => format!("{h} h {m} min"),
    }
}

/// An epoch-milliseconds instant as RFC 3339 UTC.
pub fn instant(ms: i64) -> String {
    chatops_core::time::format_rfc3339_ms(ms)
}

/// An axis tick: no trailing zeros, `k` from ten thousand on.
pub fn tick(v: f64) -> String {
    if v.abs() >= 10_000.0 {
        return format!("{}k", trim_zeros(&format!("{:.1}", v / 1000.0)));
    }
    trim_zeros(&format!("{v:.3}"))
}

fn trim_zeros(s: &str) -> String {
    if !s.contains('.') {
        return s.to_owned();
    }
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_quotes_and_control_characters() {
        assert_eq!(esc(r#"<script>alert("x")</script>"#), "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;");
        assert_eq!(esc("a'b&c"), "a&#39;b&amp;c");
        assert_eq!(esc("bell\u{7}nul\u{0}"), "bell\u{fffd}nul\u{fffd}");
        assert_eq!(esc("line\nbreak"), "line break");
        assert_eq!(esc("ünïcödé →"), "ünïcödé →");
    }

    #[test]
    fn truncates_long_labels_with_an_ellipsis() {
        assert_eq!(truncate("/check-status", 20), "/check-status");
        assert_eq!(truncate("abcdefghij", 5), "abcd…");
    }

    #[test]
    fn formats_numbers_for_people() {
        assert_eq!(count(0), "0");
        assert_eq!(count(1700), "1\u{202f}700");
        assert_eq!(count(1_234_567), "1\u{202f}234\u{202f}567");
        assert_eq!(ms(4.987), "4.987");
        assert_eq!(ms(319.165), "319.2");
        assert_eq!(ms_unit(1399.891), "1.400 s");
        assert_eq!(ratio_pct(0.0059), "0.59%");
        assert_eq!(pct(0.001), "0.001%");
        assert_eq!(rate(27.94), "27.9/s");
        assert_eq!(raw(0.1), "0.1");
        assert_eq!(secs(90_000), "90 s");
        assert_eq!(duration(60_000), "1 min");
        assert_eq!(duration(5_500), "5.5 s");
        assert_eq!(duration(3_723_000), "1 h 2 min");
        assert_eq!(tick(2.5), "2.5");
        assert_eq!(tick(200.0), "200");
        assert_eq!(tick(25_000.0), "25k");
        assert_eq!(instant(0), "1970-01-01T00:00:00.000Z");
    }
}
