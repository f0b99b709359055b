//! Artillery's `config.variables` and `config.payload`: the values a `{{ name }}` template
//! reads. Both are loaded once with the profile; a virtual user draws its values with
//! [`Bindings::new_vu`], so every request of one user sees the same row.
//!
//! A list variable cycles over the users (user n gets element n mod len), a scalar is a
//! constant and is folded into the template when it compiles. A payload is a CSV file read
//! whole into memory, bounded by [`MAX_PAYLOAD_BYTES`] and [`MAX_PAYLOAD_ROWS`] so a wrong
//! path (a log file, a dump) fails at load time with its size instead of eating the
//! generator's memory; with `order: sequence` user n gets row n mod rows, with `random`
//! (Artillery's default) a random row.
//!
//! A [`Vu`] also carries the values its flow captured from answers (`capture: … as:
//! name`), by capture slot, for the later requests of that flow.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Largest payload file read.
pub const MAX_PAYLOAD_BYTES: u64 = 100 * 1024 * 1024;
/// Most rows read from one payload file.
pub const MAX_PAYLOAD_ROWS: usize = 1_000_000;
/// Most names (variables and payload fields together).
pub const MAX_NAMES: usize = 1000;
/// Most values of one list variable.
pub const MAX_LIST_VALUES: usize = 100_000;

/// How a payload's rows are handed to virtual users.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// A random row per user (Artillery's default).
    Random,
    /// User n gets row n mod rows.
    Sequence,
}

/// What a payload entry of the profile asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadSpec {
    /// As written (relative to the profile file).
    pub path: String,
    pub fields: Vec<String>,
    pub order: Order,
    pub skip_header: bool,
    pub delimiter: u8,
}

/// A payload file, loaded.
#[derive(Debug)]
pub struct Payload {
    pub path: String,
    pub fields: Vec<String>,
    pub order: Order,
    rows: Vec<Box<[Box<str>]>>,
}

impl Payload {
    pub fn rows(&self) -> usize {
        self.rows.len()
    }

    /// One value (None out of range).
    pub fn get(&self, row: usize, column: usize) -> Option<&str> {
        self.rows.get(row)?.get(column).map(|v| &**v)
    }
}

#[derive(Debug)]
enum Source {
    Constant(Box<str>),
    List(Vec<Box<str>>),
    Column { payload: usize, column: usize },
}

/// Every name a template may use, and where its value comes from.
#[derive(Debug, Default)]
pub struct Bindings {
    names: Vec<String>,
    sources: Vec<Source>,
    payloads: Vec<Payload>,
    next_vu: AtomicU64,
}

/// Identity: templates hold the same `Arc<Bindings>`, and two profiles' bindings are never
/// interchangeable even when their values are equal.
impl PartialEq for Bindings {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
    }
}

/// One virtual user's draw: its number and its row of each payload, and what its flow has
/// captured so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vu {
    n: u64,
    rows: Vec<usize>,
    captured: Vec<Option<Box<str>>>,
}

impl Vu {
    /// A user of a profile without variables or payloads, for a flow that captures.
    pub fn without_bindings() -> Vu {
        Vu::default()
    }

    /// The value captured into `slot`, once a step has captured it.
    pub fn captured(&self, slot: usize) -> Option<&str> {
        self.captured.get(slot)?.as_deref()
    }

    /// Stores a captured value; a later capture into the same slot replaces it.
    pub fn set_captured(&mut self, slot: usize, value: String) {
        if self.captured.len() <= slot {
            self.captured.resize(slot + 1, None);
        }
        self.captured[slot] = Some(value.into_boxed_str());
    }
}

impl Bindings {
    /// Adds a scalar (a constant) or list variable; false when the name is taken.
    pub fn add_variable(&mut self, name: &str, values: Vec<String>) -> Result<(), String> {
        let source = match values.len() {
            0 => return Err(format!("variable `{name}` is an empty list")),
            1 => Source::Constant(values.into_iter().next().unwrap_or_default().into()),
            n if n > MAX_LIST_VALUES => {
                return Err(format!("variable `{name}` has more than {MAX_LIST_VALUES} values"));
            }
            _ => Source::List(values.into_iter().map(String::into_boxed_str).collect()),
        };
        self.add(name, source)
    }

    /// Adds a loaded payload and its fields as names.
    pub fn add_payload(&mut self, payload: Payload) -> Result<(), String> {
        let index = self.payloads.len();
        for (column, field) in payload.fields.iter().enumerate() {
            self.add(field, Source::Column { payload: index, column })?;
        }
        self.payloads.push(payload);
        Ok(())
    }

    fn add(&mut self, name: &str, source: Source) -> Result<(), String> {
        if !is_name(name) {
            return Err(format!("`{name}` is not a usable variable name (letters, digits, `_`, `-`, `.`)"));
        }
        if self.names.iter().any(|n| n == name) {
            return Err(format!("`{name}` is defined twice (config.variables and payload fields share one namespace)"));
        }
        if self.names.len() >= MAX_NAMES {
            return Err(format!("more than {MAX_NAMES} variables and payload fields"));
        }
        self.names.push(name.to_owned());
        self.sources.push(source);
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The names, in definition order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    pub fn payloads(&self) -> &[Payload] {
        &self.payloads
    }

    /// The slot of a name, for a template to keep.
    pub fn slot(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    /// The value when it is the same for every user.
    pub fn constant(&self, slot: usize) -> Option<&str> {
        match self.sources.get(slot)? {
            Source::Constant(v) => Some(v),
            _ => None,
        }
    }

    /// The next virtual user: number n, its rows drawn.
    pub fn new_vu(&self) -> Vu {
        let n = self.next_vu.fetch_add(1, Ordering::Relaxed);
        let rows = self
            .payloads
            .iter()
            .map(|p| match (p.order, p.rows()) {
                (_, 0) => 0,
                (Order::Sequence, len) => (n % len as u64) as usize,
                (Order::Random, len) => fastrand::usize(..len),
            })
            .collect();
        Vu { n, rows, captured: Vec::new() }
    }

    /// A name's value for one user ("" for a slot or a user from other bindings).
    pub fn value(&self, slot: usize, vu: &Vu) -> &str {
        match self.sources.get(slot) {
            Some(Source::Constant(v)) => v,
            Some(Source::List(values)) => values.get((vu.n % values.len() as u64) as usize).map_or("", |v| v),
            Some(Source::Column { payload, column }) => {
                vu.rows.get(*payload).and_then(|row| self.payloads.get(*payload)?.get(*row, *column)).unwrap_or("")
            }
            None => "",
        }
    }
}

/// Artillery names: identifiers, plus `-` and `.` which CSV headers often have.
pub(crate) fn is_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        && name.len() <= 128
}

/// Reads a payload CSV. `base_dir` is the profile file's folder; an absolute path stays as
/// it is (the file is the user's own, so no path is off limits, but it must be a readable
/// regular file within the bounds).
pub fn load_payload(spec: &PayloadSpec, base_dir: &Path) -> Result<Payload, String> {
    let path = base_dir.join(&spec.path);
    let shown = path.display();
    let meta = std::fs::metadata(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!("payload file {shown} does not exist"),
        _ => format!("payload file {shown}: {e}"),
    })?;
    if meta.is_dir() {
        return Err(format!("payload file {shown} is a directory, not a CSV file"));
    }
    if !meta.is_file() {
        return Err(format!("payload file {shown} is not a regular file"));
    }
    if meta.len() > MAX_PAYLOAD_BYTES {
        return Err(format!(
            "payload file {shown} is {} MB, more than the {} MB accepted",
            meta.len() / (1024 * 1024),
            MAX_PAYLOAD_BYTES / (1024 * 1024)
        ));
    }
    let file = std::fs::File::open(&path).map_err(|e| format!("payload file {shown}: {e}"))?;
    // The file may grow between the check and the read: never read past the bound.
    let reader = std::io::Read::take(file, MAX_PAYLOAD_BYTES + 1);
    let rows = read_rows(reader, spec).map_err(|e| format!("payload file {shown}: {e}"))?;
    if rows.is_empty() {
        return Err(format!("payload file {shown} has no rows"));
    }
    Ok(Payload { path: spec.path.clone(), fields: spec.fields.clone(), order: spec.order, rows })
}

fn read_rows(reader: impl std::io::Read, spec: &PayloadSpec) -> Result<Vec<Box<[Box<str>]>>, String> {
    let mut csv =
        csv::ReaderBuilder::new().has_headers(false).flexible(true).delimiter(spec.delimiter).from_reader(reader);
    let mut record = csv::StringRecord::new();
    let mut rows = Vec::new();
    let mut first = true;
    loop {
        let more = csv.read_record(&mut record).map_err(|e| match e.position() {
            Some(p) => format!("line {}: {}", p.line(), csv_error_text(&e)),
            None => csv_error_text(&e),
        })?;
        if !more {
            break;
        }
        if std::mem::take(&mut first) && spec.skip_header {
            continue;
        }
        if rows.len() == MAX_PAYLOAD_ROWS {
            return Err(format!("more than {MAX_PAYLOAD_ROWS} rows"));
        }
        if record.len() < spec.fields.len() {
            let line = record.position().map_or(0, csv::Position::line);
            return Err(format!("line {line} has {} columns, `fields` names {}", record.len(), spec.fields.len()));
        }
        rows.push(record.iter().take(spec.fields.len()).map(Box::from).collect());
    }
    Ok(rows)
}

fn csv_error_text(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::Utf8 { .. } => "not UTF-8 text".into(),
        csv::ErrorKind::Io(io) => io.to_string(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(fields: &[&str], order: Order, skip_header: bool) -> PayloadSpec {
        PayloadSpec {
            path: "data.csv".into(),
            fields: fields.iter().map(|f| (*f).to_owned()).collect(),
            order,
            skip_header,
            delimiter: b',',
        }
    }

    fn load(text: &[u8], s: &PayloadSpec) -> Result<Payload, String> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(&s.path), text).unwrap();
        load_payload(s, dir.path())
    }

    #[test]
    fn reads_quoted_fields_escaped_quotes_and_crlf() {
        let text = b"user,text\r\nU1,\"hello, world\"\r\nU2,\"say \"\"hi\"\"\"\r\n\"U3\",\"two\r\nlines\"\r\n";
        let p = load(text, &spec(&["user", "text"], Order::Sequence, true)).unwrap();
        assert_eq!(p.rows(), 3);
        assert_eq!(p.get(0, 1), Some("hello, world"));
        assert_eq!(p.get(1, 1), Some("say \"hi\""));
        assert_eq!((p.get(2, 0), p.get(2, 1)), (Some("U3"), Some("two\r\nlines")));
        let with_header = load(text, &spec(&["user", "text"], Order::Sequence, false)).unwrap();
        assert_eq!((with_header.rows(), with_header.get(0, 0)), (4, Some("user")));
    }

    #[test]
    fn sequence_order_gives_user_n_row_n_and_lists_cycle() {
        let p = load(b"a\nb\nc\n", &spec(&["letter"], Order::Sequence, false)).unwrap();
        let mut b = Bindings::default();
        b.add_payload(p).unwrap();
        b.add_variable("color", vec!["red".into(), "blue".into()]).unwrap();
        b.add_variable("team", vec!["T1".into()]).unwrap();
        let (letter, color, team) = (b.slot("letter").unwrap(), b.slot("color").unwrap(), b.slot("team").unwrap());
        let users: Vec<(String, String)> = (0..4)
            .map(|_| {
                let vu = b.new_vu();
                (b.value(letter, &vu).to_owned(), b.value(color, &vu).to_owned())
            })
            .collect();
        let want = [("a", "red"), ("b", "blue"), ("c", "red"), ("a", "blue")];
        assert_eq!(users, want.map(|(l, c)| (l.to_owned(), c.to_owned())));
        assert_eq!(b.constant(team), Some("T1"));
        assert_eq!(b.constant(color), None);
    }

    #[test]
    fn random_order_reaches_every_row() {
        let p = load(b"1\n2\n3\n", &spec(&["n"], Order::Random, false)).unwrap();
        let mut b = Bindings::default();
        b.add_payload(p).unwrap();
        let seen: std::collections::BTreeSet<String> = (0..300).map(|_| b.value(0, &b.new_vu()).to_owned()).collect();
        assert_eq!(seen.len(), 3, "{seen:?}");
    }

    #[test]
    fn refuses_bad_files_with_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let s = spec(&["a"], Order::Random, false);
        let missing = load_payload(&s, dir.path()).unwrap_err();
        assert!(missing.contains("does not exist") && missing.contains("data.csv"), "{missing}");
        std::fs::create_dir(dir.path().join("data.csv")).unwrap();
        let is_dir = load_payload(&s, dir.path()).unwrap_err();
        assert!(is_dir.contains("is a directory"), "{is_dir}");
        let device = PayloadSpec { path: "/dev/null".into(), ..s.clone() };
        assert!(load_payload(&device, dir.path()).unwrap_err().contains("not a regular file"));
        assert!(load(b"", &s).unwrap_err().contains("no rows"));
        assert!(
            load(b"only,header\n", &PayloadSpec { skip_header: true, ..s.clone() }).unwrap_err().contains("no rows")
        );
        let short = load(b"a,b\nc\n", &spec(&["x", "y"], Order::Random, false)).unwrap_err();
        assert!(short.contains("line 2 has 1 columns"), "{short}");
        let bad_utf8 = load(b"ok\n\xff\xfe\n", &s).unwrap_err();
        assert!(bad_utf8.contains("UTF-8"), "{bad_utf8}");
    }

    #[test]
    fn refuses_oversized_files_before_reading_and_too_many_rows() {
        let dir = tempfile::tempdir().unwrap();
        let s = spec(&["a"], Order::Random, false);
        // A sparse file: its size is checked from the metadata, nothing is read.
        let f = std::fs::File::create(dir.path().join("data.csv")).unwrap();
        f.set_len(MAX_PAYLOAD_BYTES + 1).unwrap();
        let big = load_payload(&s, dir.path()).unwrap_err();
        assert!(big.contains("more than the 100 MB"), "{big}");
        let many = "x\n".repeat(MAX_PAYLOAD_ROWS + 1);
        let err = load(many.as_bytes(), &s).unwrap_err();
        assert!(err.contains("more than 1000000 rows"), "{err}");
    }

    #[test]
    fn refuses_duplicate_and_odd_names() {
        let mut b = Bindings::default();
        b.add_variable("user", vec!["a".into(), "b".into()]).unwrap();
        assert!(b.add_variable("user", vec!["c".into()]).unwrap_err().contains("twice"));
        assert!(b.add_variable("has space", vec!["c".into()]).is_err());
        assert!(b.add_variable("$uuid", vec!["c".into()]).is_err());
        assert!(b.add_variable("empty", vec![]).unwrap_err().contains("empty list"));
        assert!(b.add_variable("user-id.v2", vec!["c".into()]).is_ok());
    }
}
