//! The fast path of the line parser: a single pass over one JSON object that picks out the
//! fields the analyzer wants and skips the rest without building anything, about three times
//! faster than serde_json's derive on the service's lines.
//!
//! It returns `None` whenever the line is not of the common shape (a string with escapes in
//! a wanted field or in a key, invalid UTF-8 in a wanted field, broken structure), and the
//! caller then hands the line to serde_json, which decides. So the scanner only has to be
//! right on what it accepts; `tests::agrees_with_serde_on_every_line_it_accepts` checks that
//! against the slow path.
//!
//! Where it is more lenient than serde_json (and harmlessly so): values of keys it skips are
//! only checked for balanced brackets and terminated strings; a duplicate key keeps the last
//! value; a number too large for f64 reads as absent.

use std::borrow::Cow;

use chatops_core::time::parse_rfc3339_ns;

use crate::fields::{Fields, epoch_to_ns};
use crate::metric::Metric;

/// Scans one JSON object (the whole slice, surrounding whitespace allowed).
pub(crate) fn scan(json: &[u8]) -> Option<Fields<'_>> {
    let mut s = Scanner { b: json, i: 0 };
    let mut f = Fields::default();
    s.ws();
    s.eat(b'{')?;
    s.ws();
    if s.peek()? == b'}' {
        s.i += 1;
    } else {
        loop {
            s.ws();
            let key = s.plain_string()?;
            s.ws();
            s.eat(b':')?;
            s.ws();
            match key {
                b"message" => f.message = s.text()?,
                b"timestamp" => f.timestamp = s.timestamp()?,
                b"@timestamp" => f.at_timestamp = s.timestamp()?,
                b"correlationId" => f.correlation_id = s.text()?,
                b"command" => f.command = s.text()?,
                b"component" => f.component = s.text()?,
                b"quadrant" => f.quadrant = s.text()?,
                b"errorType" => f.error_type = s.text()?,
                b"statusCode" => f.status_code = s.num()?,
                b"success" => f.success = s.flag()?,
                b"attempt" => f.attempt = s.num()?,
                b"responses" => f.responses = s.num()?,
                // The timed fields come from the log contract's one table.
                other => match Metric::from_field_bytes(other) {
                    Some(m) => f.values[m.index()] = s.num()?,
                    None => s.skip_value()?,
                },
            }
            s.ws();
            match s.next()? {
                b',' => continue,
                b'}' => break,
                _ => return None,
            }
        }
    }
    s.ws();
    (s.i == s.b.len()).then_some(f)
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
}

/// Outer `None`: give up (slow path). Inner `None`: the field is absent or of another type.
type Field<T> = Option<Option<T>>;

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\r' | b'\n') = self.peek() {
            self.i += 1;
        }
    }

    /// A string without escapes or control characters, as raw bytes (the opening quote is
    /// next). Strings in log lines are short, so instead of memchr (whose setup costs more than
    /// such a string) this looks at eight bytes at a time.
    fn plain_string(&mut self) -> Option<&'a [u8]> {
        self.eat(b'"')?;
        let rest = self.b.get(self.i..)?;
        let end = find_special(rest)?;
        // Escapes need decoding, and control characters are invalid JSON: slow path.
        if rest[end] != b'"' {
            return None;
        }
        self.i += end + 1;
        Some(&rest[..end])
    }

    fn skip_string(&mut self) -> Option<()> {
        self.eat(b'"')?;
        loop {
            // An escape at the very end of the line leaves the cursor past it.
            let rest = self.b.get(self.i..)?;
            let at = find_special(rest)?;
            match rest[at] {
                b'"' => {
                    self.i += at + 1;
                    return Some(());
                }
                b'\\' => self.i += at + 2,
                // A control character in a skipped value: tolerated.
                _ => self.i += at + 1,
            }
        }
    }

    /// Skips any value: strings honour escapes, objects and arrays are matched by depth.
    fn skip_value(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.skip_string(),
            b'{' | b'[' => {
                let mut depth = 0usize;
                loop {
                    match self.peek()? {
                        b'"' => {
                            self.skip_string()?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                self.i += 1;
                                return Some(());
                            }
                        }
                        _ => {}
                    }
                    self.i += 1;
                }
            }
            _ => {
                let start = self.i;
                while let Some(c) = self.peek() {
                    if matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\r' | b'\n') {
                        break;
                    }
                    self.i += 1;
                }
                let token = &self.b[start..self.i];
                let valid = matches!(token, b"true" | b"false" | b"null")
                    || (!token.is_empty()
                        && token.iter().all(|c| matches!(c, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')));
                valid.then_some(())
            }
        }
    }

    /// A bare literal or number token (not a string, object or array).
    fn token(&mut self) -> &'a [u8] {
        let start = self.i;
        while let Some(c) = self.peek() {
            if !matches!(c, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E' | b'a'..=b'z') {
                break;
            }
            self.i += 1;
        }
        &self.b[start..self.i]
    }

    fn text(&mut self) -> Field<Cow<'a, str>> {
        match self.peek()? {
            b'"' => {
                let bytes = self.plain_string()?;
                Some(Some(Cow::Borrowed(std::str::from_utf8(bytes).ok()?)))
            }
            b'{' | b'[' => self.skip_value().map(|()| None),
            _ => {
                let t = self.token();
                (matches!(t, b"true" | b"false" | b"null") || number(t).is_some()).then_some(None)
            }
        }
    }

    fn num(&mut self) -> Field<f64> {
        match self.peek()? {
            b'"' => {
                let bytes = self.plain_string()?;
                let s = std::str::from_utf8(bytes).ok()?;
                Some(s.trim().parse::<f64>().ok().filter(|v| v.is_finite()))
            }
            b'{' | b'[' => self.skip_value().map(|()| None),
            _ => {
                let t = self.token();
                match t {
                    b"true" | b"false" | b"null" => Some(None),
                    _ => number(t),
                }
            }
        }
    }

    fn flag(&mut self) -> Field<bool> {
        match self.peek()? {
            b'"' => {
                let bytes = self.plain_string()?;
                let s = std::str::from_utf8(bytes).ok()?.trim();
                Some(if s.eq_ignore_ascii_case("true") || s == "1" {
                    Some(true)
                } else if s.eq_ignore_ascii_case("false") || s == "0" {
                    Some(false)
                } else {
                    None
                })
            }
            b'{' | b'[' => self.skip_value().map(|()| None),
            _ => match self.token() {
                b"true" | b"1" => Some(Some(true)),
                b"false" | b"0" => Some(Some(false)),
                b"null" => Some(None),
                t if number(t).is_some() => Some(None),
                _ => None,
            },
        }
    }

    fn timestamp(&mut self) -> Field<i64> {
        match self.peek()? {
            b'"' => {
                let bytes = self.plain_string()?;
                let s = std::str::from_utf8(bytes).ok()?;
                Some(parse_rfc3339_ns(s).or_else(|| epoch_to_ns(s.trim().parse().ok()?)))
            }
            b'{' | b'[' => self.skip_value().map(|()| None),
            _ => {
                let t = self.token();
                match t {
                    b"true" | b"false" | b"null" => Some(None),
                    _ => number(t).map(|v| v.and_then(epoch_to_ns)),
                }
            }
        }
    }
}

/// Index of the first `"`, `\\` or control character (< 0x20), eight bytes at a time.
fn find_special(s: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let mut at = 0;
    while at + 8 <= s.len() {
        let w = u64::from_le_bytes(s[at..at + 8].try_into().expect("eight bytes"));
        // The classic "has zero byte" trick, applied to w ^ '"', w ^ '\\' and w - 0x20: the
        // lowest flagged byte is always a true match (false positives only sit above one).
        let q = w ^ (LO * u64::from(b'"'));
        let b = w ^ (LO * u64::from(b'\\'));
        let mask = (q.wrapping_sub(LO) & !q | b.wrapping_sub(LO) & !b | w.wrapping_sub(LO * 0x20) & !w) & HI;
        if mask != 0 {
            return Some(at + (mask.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    s[at..].iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20).map(|p| at + p)
}

/// JSON number grammar: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
fn is_number(t: &[u8]) -> bool {
    let mut i = usize::from(t.first() == Some(&b'-'));
    let int_start = i;
    while t.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    let int_len = i - int_start;
    if int_len == 0 || (int_len > 1 && t[int_start] == b'0') {
        return false;
    }
    if t.get(i) == Some(&b'.') {
        i += 1;
        let s = i;
        while t.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == s {
            return false;
        }
    }
    if matches!(t.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(t.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let s = i;
        while t.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == s {
            return false;
        }
    }
    i == t.len()
}

/// Parses a JSON number token: `None` when it is not one, `Some(None)` when it is but does not
/// fit an f64. Plain decimals with at most 15 significant digits take Clinger's fast path:
/// mantissa and power of ten are both exact doubles, so one division is correctly rounded.
/// Everything else goes to the standard library.
fn number(t: &[u8]) -> Option<Option<f64>> {
    const POW10: [f64; 16] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15];
    let (neg, d) = match t.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, t),
    };
    let mut mantissa = 0u64;
    let mut i = 0;
    while i < d.len() && d[i].is_ascii_digit() {
        mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(d[i] - b'0'));
        i += 1;
    }
    let int_len = i;
    if int_len == 0 || (int_len > 1 && d[0] == b'0') {
        return None;
    }
    let mut frac_len = 0;
    if d.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < d.len() && d[i].is_ascii_digit() {
            mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(d[i] - b'0'));
            i += 1;
        }
        frac_len = i - start;
        if frac_len == 0 {
            return None;
        }
    }
    if i == d.len() && int_len + frac_len <= 15 {
        let v = mantissa as f64 / POW10[frac_len];
        return Some(Some(if neg { -v } else { v }));
    }
    if !is_number(t) {
        return None;
    }
    let v: f64 = std::str::from_utf8(t).ok()?.parse().ok()?;
    Some(v.is_finite().then_some(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_escape_at_the_end_of_a_line_is_not_read_past() {
        // Found by `scripts/fuzz.sh log_line`: a backslash as the last byte of a skipped
        // string moved the cursor past the end of the line.
        let line: &[u8] = &[
            116, 104, 116, 111, 107, 105, 111, 45, 114, 117, 110, 116, 105, 109, 101, 45, 119, 123, 34, 116, 105, 109,
            101, 115, 116, 97, 88, 109, 47, 112, 34, 58, 49, 55, 49, 52, 53, 53, 55, 54, 48, 50, 48, 48, 48, 44, 34,
            109, 101, 115, 115, 97, 103, 101, 34, 58, 91, 34, 80, 101, 114, 102, 111, 114, 109, 97, 110, 99, 101, 32,
            109, 101, 116, 114, 105, 99, 115, 34, 44, 34, 99, 111, 114, 114, 97, 110, 99, 101, 32, 109, 101, 116, 114,
            105, 99, 115, 34, 44, 34, 58, 44, 34, 34, 92, 92, 92, 92, 92, 92, 92, 92, 92, 92, 92, 92, 92, 92, 92, 92,
            92, 111, 92, 114, 92, 92, 107, 92, 92, 92,
        ];
        let _ = crate::line::LineParser::new().parse(line);
        let _ = crate::line::LineParser::new().parse(br#"{"message":"Performance metrics","x":"\"#);
    }

    #[test]
    fn parses_numbers_exactly_like_the_standard_library() {
        for t in [
            "0",
            "-0",
            "1",
            "12.5",
            "0.001",
            "1.234",
            "-3.25",
            "123456789012345",
            "1234567.89012345",
            "0.1",
            "0.7",
            "5.1",
            "4.8",
            "1e3",
            "1.5E-2",
            "12345678901234567890",
            "0.30000000000000004",
            "9007199254740993",
        ] {
            let want: f64 = t.parse().unwrap();
            assert_eq!(number(t.as_bytes()), Some(Some(want)), "{t}");
        }
        assert_eq!(number(b"1e400"), Some(None));
        for bad in ["01", "1.", "-", "", "1.2.3", "0x10"] {
            assert_eq!(number(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn finds_the_first_quote_backslash_or_control_character() {
        let naive = |s: &[u8]| s.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20);
        let mut cases: Vec<Vec<u8>> = vec![b"".to_vec(), b"abc".to_vec(), "héllo wörld, no end".into()];
        for len in 0..40 {
            for special in [b'"', b'\\', b'\n', 0x00, 0x1f] {
                for at in 0..len {
                    let mut v: Vec<u8> = (0..len).map(|i| b"a\x7f\x80\xffz "[i % 6]).collect();
                    v[at] = special;
                    cases.push(v.clone());
                    // A second special after the first must not shadow it.
                    if at + 1 < len {
                        v[at + 1] = b'"';
                        cases.push(v);
                    }
                }
            }
        }
        for c in &cases {
            assert_eq!(find_special(c), naive(c), "{c:?}");
        }
    }

    #[test]
    fn recognises_the_json_number_grammar() {
        for ok in ["0", "-1", "1.5", "1e5", "1E+5", "-0.5e-3"] {
            assert!(is_number(ok.as_bytes()), "{ok}");
        }
        for bad in ["", "-", "01", "1.", ".5", "1e", "+1", "1.2.3", "--1", "1e+"] {
            assert!(!is_number(bad.as_bytes()), "{bad}");
        }
    }

    /// Lines of every shape the tests know, valid and not.
    const CORPUS: &[&str] = &[
        r#"{"timestamp":"2026-11-28T12:00:00.123456Z","level":"INFO","message":"Router performance metrics","correlationId":"0193-a","command":"/echo","statusCode":200,"duration":1.234,"success":true,"enqueueMs":0.9,"quadrant":"short-read","target":"chatops_service::ingress"}"#,
        r#"{"timestamp":"2026-11-28T12:00:00.5Z","message":"Performance metrics","correlationId":"a","command":"/echo","component":"sr-worker","quadrant":"short-read","totalE2eMs":5.1,"workerDurationMs":2.0,"queueWaitMs":1.5,"syncResponseMs":0.7,"asyncResponseMs":0.6,"success":true,"attempt":1,"routerMs":0.2,"enqueueMs":0.9,"handlerMs":1.6,"firstResponseE2eMs":4.0,"lastResponseE2eMs":4.8,"responses":2,"span":{"name":"job","x":[1,{"y":"}"}]},"spans":[{"name":"x\"]"}]}"#,
        r#"{"timestamp":"2026-11-28T12:01:30Z","message":"Performance metrics","correlationId":"b","command":"/deploy","totalE2eMs":90015.2,"workerDurationMs":3,"approvalWaitMs":90000,"queueWaitMs":7,"routerMs":2.1,"enqueueMs":3.1,"handlerMs":2.5,"attempt":1,"success":true}"#,
        r#"{"message":"Performance metrics","totalE2eMs":1,"approvalWaitMs":"12.5"}"#,
        r#"{"@timestamp":"2024-05-01T10:00:00.000Z","message":"Router performance metrics","statusCode":"500","duration":"12.5","success":"false","errorType":"DynamoDBError"}"#,
        r#"{"timestamp":1714557600123,"message":"Performance metrics","totalE2eMs":3,"success":0}"#,
        r#" { "timestamp" : "1714557600123" , "message" : "Performance metrics" , "totalE2eMs" : -3e2 } "#,
        r#"{"message":"Performance metrics","command":{"name":"/echo"},"component":7,"totalE2eMs":[1,2],"queueWaitMs":"n/a","workerDurationMs":2,"attempt":"x","success":"maybe","errorType":null}"#,
        r#"{"message":"Performance metrics","command":true,"component":null,"totalE2eMs":false,"success":null,"timestamp":null}"#,
        r#"{"message":"Router performance metrics","duration":1,"timestamp":{"s":1},"attempt":[],"statusCode":{}}"#,
        r#"{}"#,
        r#"{"message":"other metrics","nested":{"deep":[[[["metrics\""]]]]}}"#,
    ];

    #[test]
    fn agrees_with_serde_on_every_line_it_accepts() {
        for line in CORPUS {
            let fast = scan(line.as_bytes()).unwrap_or_else(|| panic!("fast path refused {line}"));
            let slow = serde_json::from_str::<serde_json::Value>(line).map(|_| ());
            assert!(slow.is_ok(), "corpus line is valid JSON: {line}");
            let via_serde = crate::line::slow_fields(line.as_bytes()).unwrap();
            assert_eq!(fast, via_serde, "{line}");
        }
    }

    #[test]
    fn hands_unusual_lines_to_the_slow_path() {
        let lines: [&[u8]; 12] = [
            br#"{"message":"Perf\u006frmance metrics","totalE2eMs":1}"#,
            br#"{"mess\"age":"x"}"#,
            b"{\"message\":\"\xff\"}",
            br#"{"message":"Performance metrics","totalE2eMs":1"#,
            br#"{"message":"Performance metrics" "totalE2eMs":1}"#,
            br#"{"message":"Performance metrics","totalE2eMs":1}trailing"#,
            br#"{"message":"Performance metrics","totalE2eMs":01}"#,
            br#"{"message":"Performance metrics","x":nope}"#,
            br#"{"message":"Performance metrics","x":{"unterminated":"}"#,
            b"{\"message\":\"tab\there\"}",
            b"",
            b"{",
        ];
        for line in lines {
            assert_eq!(scan(line), None, "{}", String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn the_last_duplicate_key_wins() {
        let f = scan(br#"{"totalE2eMs":1,"totalE2eMs":2}"#).unwrap();
        assert_eq!(f.values[Metric::TotalE2e.index()], Some(2.0));
    }
}
