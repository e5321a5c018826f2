//! What a stress run prints: [`Record`]s of named figures, one per
//! measurement, gathered in a [`Report`] that prints as JSON lines (one
//! object per record, fields in the order they were added, as the Wasmtime
//! peer prints them) or as a readable table of a workload's main columns.
//!
//! The JSON is written by hand: values are numbers, strings, booleans,
//! `null` and nested objects (the `options` field), which is all the
//! peer's lines hold.

use std::fmt::Write as _;

/// One JSON value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A string.
    Str(String),
    /// An integer.
    Int(i128),
    /// A number; printed as `null` if not finite.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// `null`.
    Null,
    /// A nested object.
    Object(Record),
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Str(v.to_string())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Str(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}
impl From<Record> for Value {
    fn from(v: Record) -> Self {
        Value::Object(v)
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}
macro_rules! int_value {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Self {
                Value::Int(v as i128)
            }
        }
    )*};
}
int_value!(u8, u16, u32, u64, usize, i8, i16, i32, i64, isize);

impl Value {
    /// The value as a number, if it is one.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(v) => Some(*v as f64),
            Value::Float(v) => Some(*v),
            _ => None,
        }
    }

    /// The value as a string, if it is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    fn write_json(&self, out: &mut String) {
        match self {
            Value::Str(s) => write_json_string(s, out),
            Value::Int(v) => {
                let _ = write!(out, "{v}");
            }
            Value::Float(v) if v.is_finite() => {
                let _ = write!(out, "{v}");
            }
            Value::Float(_) | Value::Null => out.push_str("null"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Object(r) => r.write_json(out),
        }
    }

    /// The value for a table cell: numbers with a few significant
    /// decimals, strings as they are.
    fn cell(&self) -> String {
        match self {
            Value::Str(s) => s.clone(),
            Value::Int(v) => group_thousands(&v.to_string()),
            Value::Float(v) if !v.is_finite() => "-".into(),
            Value::Float(v) => {
                let a = v.abs();
                let text = if a >= 1000.0 || (a.fract() == 0.0 && a < 1e15) {
                    format!("{v:.0}")
                } else if a >= 10.0 {
                    format!("{v:.1}")
                } else if a >= 0.1 {
                    format!("{v:.2}")
                } else {
                    format!("{v:.4}")
                };
                group_thousands(&text)
            }
            Value::Bool(b) => b.to_string(),
            Value::Null => "-".into(),
            Value::Object(_) => "{..}".into(),
        }
    }
}

/// `1234567.5` as `1 234 567.5` (a thin readable grouping).
fn group_thousands(text: &str) -> String {
    let (sign, rest) = match text.strip_prefix('-') {
        Some(r) => ("-", r),
        None => ("", text),
    };
    let (int, frac) = match rest.find('.') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if int.len() <= 4 || !int.bytes().all(|b| b.is_ascii_digit()) {
        return text.to_string();
    }
    let mut grouped = String::with_capacity(int.len() + int.len() / 3);
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(' ');
        }
        grouped.push(c);
    }
    format!("{sign}{grouped}{frac}")
}

fn write_json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Named values in the order they were added: one JSON object.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Record {
    fields: Vec<(String, Value)>,
}

impl Record {
    /// An empty record.
    pub fn new() -> Record {
        Record::default()
    }

    /// Adds (or replaces, keeping its place) the field `key`.
    pub fn set(&mut self, key: &str, value: impl Into<Value>) -> &mut Record {
        let value = value.into();
        match self.fields.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.fields.push((key.to_string(), value)),
        }
        self
    }

    /// [`set`](Self::set), by value.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Record {
        self.set(key, value);
        self
    }

    /// Appends every field of `other`.
    pub fn extend(&mut self, other: Record) {
        for (k, v) in other.fields {
            self.set(&k, v);
        }
    }

    /// The field `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.fields.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The fields, in order.
    pub fn fields(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.fields.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Whether the record has no field.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The record as one JSON object, without a newline.
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(64 * self.fields.len());
        self.write_json(&mut out);
        out
    }

    fn write_json(&self, out: &mut String) {
        out.push('{');
        for (i, (k, v)) in self.fields.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            write_json_string(k, out);
            out.push(':');
            v.write_json(out);
        }
        out.push('}');
    }
}

/// A column of a workload's summary table: the record field it shows and
/// its title.
pub type Column = (&'static str, &'static str);

/// Every record of one workload's run, with the columns its table shows
/// and notes printed under the table.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// The workload (`spawn`, `yield`, ...).
    pub workload: &'static str,
    /// One per measurement (a concurrency level, a kernel, ...).
    pub records: Vec<Record>,
    /// The table's columns.
    pub columns: &'static [Column],
    /// Lines printed under the table (settings, what a figure covers,
    /// targets).
    pub notes: Vec<String>,
}

impl Report {
    /// A report with no records yet.
    pub fn new(workload: &'static str, columns: &'static [Column]) -> Report {
        Report {
            workload,
            records: Vec::new(),
            columns,
            notes: Vec::new(),
        }
    }

    /// One JSON object per record, each on its own line.
    pub fn to_json_lines(&self) -> String {
        let mut out = String::new();
        for r in &self.records {
            out.push_str(&r.to_json());
            out.push('\n');
        }
        out
    }

    /// A readable table of the report's columns, then its notes.
    pub fn to_table(&self) -> String {
        let header: Vec<String> = self.columns.iter().map(|c| c.1.to_string()).collect();
        let rows: Vec<Vec<String>> = self
            .records
            .iter()
            .map(|r| {
                self.columns
                    .iter()
                    .map(|(key, _)| r.get(key).map_or_else(|| "-".to_string(), Value::cell))
                    .collect()
            })
            .collect();
        let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let _ = writeln!(out, "{}", self.workload);
        let line = |cells: &[String], out: &mut String| {
            for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
                let pad = w - cell.chars().count();
                if i == 0 {
                    let _ = write!(out, "  {cell}{}", " ".repeat(pad));
                } else {
                    let _ = write!(out, "  {}{cell}", " ".repeat(pad));
                }
            }
            out.push('\n');
        };
        line(&header, &mut out);
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        line(&rule, &mut out);
        for row in &rows {
            line(row, &mut out);
        }
        for note in &self.notes {
            let _ = writeln!(out, "  {note}");
        }
        out
    }
}

/// `ns` in microseconds, rounded to 0.01 (the peer's `us`).
pub fn us(ns: u64) -> f64 {
    (ns as f64 / 10.0).round() / 100.0
}

/// A duration in milliseconds, rounded to 0.001 (the peer's `ms`).
pub fn ms(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// Mean and coefficient of variation (standard deviation ÷ mean, 0 when
/// the mean is not positive) of `values`; `(0, 0)` for none.
pub fn mean_and_cv<I>(values: I) -> (f64, f64)
where
    I: IntoIterator<Item = f64>,
    I::IntoIter: Clone,
{
    let values = values.into_iter();
    let (sum, count) = values
        .clone()
        .fold((0.0, 0usize), |(s, c), x| (s + x, c + 1));
    let n = count.max(1) as f64;
    let mean = sum / n;
    let var = values.map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    (mean, if mean > 0.0 { var.sqrt() / mean } else { 0.0 })
}

/// `v` rounded to `decimals` decimals.
pub fn round(v: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (v * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_in_order_and_escaped() {
        let r = Record::new()
            .with("workload", "spawn")
            .with("n", 3usize)
            .with("x", 1.5)
            .with("bad", f64::NAN)
            .with("s", "a\"b\n")
            .with("o", Record::new().with("k", true))
            .with("none", None::<u64>);
        assert_eq!(
            r.to_json(),
            r#"{"workload":"spawn","n":3,"x":1.5,"bad":null,"s":"a\"b\n","o":{"k":true},"none":null}"#
        );
    }

    #[test]
    fn set_replaces_in_place() {
        let mut r = Record::new().with("a", 1u32).with("b", 2u32);
        r.set("a", 5u32);
        assert_eq!(r.to_json(), r#"{"a":5,"b":2}"#);
    }

    #[test]
    fn table_aligns() {
        let mut rep = Report::new("t", &[("name", "name"), ("v", "value")]);
        rep.records
            .push(Record::new().with("name", "a").with("v", 1234567.0));
        rep.records
            .push(Record::new().with("name", "long").with("v", 0.5));
        let t = rep.to_table();
        assert!(t.contains("1 234 567"), "{t}");
        assert!(t.contains("0.50"), "{t}");
    }
}
