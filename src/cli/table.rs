//! Output of the listing commands: aligned text tables for people, CSV for
//! scripts, and the two time formats their cells use.

use crate::quota::Date;
use crate::quota::period::Zone;
use std::io::Write;
use std::str::FromStr;

/// The `--format` of a command that prints records.
#[derive(PartialEq, Eq, Clone, Copy)]
pub(super) enum Format {
    Text,
    Csv,
    /// One JSON document; field names are documented in the README.
    Json,
}

impl FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Format, String> {
        match s {
            "text" => Ok(Format::Text),
            "csv" => Ok(Format::Csv),
            "json" => Ok(Format::Json),
            _ => Err(format!("invalid --format '{s}': use text, csv or json")),
        }
    }
}

/// A text table with aligned columns, or CSV, or JSON. CSV and JSON get
/// the same machine-readable rows: the CSV header names the JSON fields.
pub(super) struct Table {
    /// Rows are machine-readable (CSV or JSON), not for people.
    pub(super) csv: bool,
    json: Option<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table printed as `format`; as JSON it is `{"<name>":[{...},...]}`.
    pub(super) fn new(format: Format, name: &'static str) -> Table {
        let json = (format == Format::Json).then_some(name);
        Table { csv: format != Format::Text, json, rows: Vec::new() }
    }

    pub(super) fn header(&mut self, h: Vec<String>) {
        self.rows.insert(0, h);
    }

    pub(super) fn row(&mut self, r: Vec<String>) {
        self.rows.push(r);
    }

    /// Writes the table to standard output; a text table with no rows
    /// prints nothing, not even its header.
    pub(super) fn print(&self) -> Result<(), String> {
        let mut out = std::io::stdout().lock();
        let w = |e: std::io::Error| format!("cannot write the output: {e}");
        if let Some(name) = self.json {
            return out.write_all(self.json(name).as_bytes()).map_err(w);
        }
        if self.csv {
            for r in &self.rows {
                let line: Vec<String> = r.iter().map(|f| csv_field(f)).collect();
                writeln!(out, "{}", line.join(",")).map_err(w)?;
            }
            return Ok(());
        }
        if self.rows.len() <= 1 {
            return Ok(());
        }
        let mut text = String::new();
        crate::observe::status::aligned(&mut text, &self.rows);
        out.write_all(text.as_bytes()).map_err(w)?;
        Ok(())
    }
}

impl Table {
    /// The rows as one JSON object: a field per header; counts and bytes as
    /// numbers, yes/no as booleans, empty cells as null.
    fn json(&self, name: &str) -> String {
        let mut j = crate::json::Json::new();
        j.begin_object().key(name).begin_array();
        let head = self.rows.first().map_or(&[][..], Vec::as_slice);
        for r in self.rows.iter().skip(1) {
            j.begin_object();
            for (h, v) in head.iter().zip(r) {
                j.key(h);
                match (kind(h), v.as_str()) {
                    (_, "") => j.null(),
                    (Kind::Number, n) => match n.parse::<u64>() {
                        Ok(n) => j.u64(n),
                        Err(_) => j.str(n),
                    },
                    (Kind::Bool, b) => j.bool(b == "yes"),
                    (Kind::Text, s) => j.str(s),
                };
            }
            j.end_object();
        }
        j.end_array().end_object();
        j.finish()
    }
}

enum Kind {
    Number,
    Bool,
    Text,
}

/// A column's JSON type, by its name.
fn kind(header: &str) -> Kind {
    let budget_cell = ["day_", "week_", "month_"].iter().any(|p| header.starts_with(p));
    match header {
        "enabled" | "md5" => Kind::Bool,
        "id" | "bytes" | "sessions" => Kind::Number,
        h if budget_cell || h.ends_with("_bytes") || h.ends_with("_packets") => Kind::Number,
        _ => Kind::Text,
    }
}

/// Quotes a CSV field only when it needs it (RFC 4180).
fn csv_field(f: &str) -> String {
    if f.contains([',', '"', '\n', '\r']) { format!("\"{}\"", f.replace('"', "\"\"")) } else { f.to_string() }
}

/// `2026-11-24 06:30:00` in the server's local time.
pub(super) fn local_time(unix: i64) -> String {
    let off = Zone::Local.offset_at(unix);
    let t = unix.saturating_add(i64::from(off));
    let s = t.rem_euclid(86_400);
    format!("{} {:02}:{:02}:{:02}", Date::from_days(t.div_euclid(86_400)), s / 3600, s / 60 % 60, s % 60)
}

/// `2026-11-24T06:30:00Z`.
pub(super) fn iso_time(unix: i64) -> String {
    crate::json::rfc3339(unix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_rows_are_typed_by_column() {
        let mut t = Table::new(Format::Json, "things");
        t.header(["id", "name", "enabled", "rx_bytes", "day_total", "note"].map(String::from).to_vec());
        t.row(["7", "a\"b", "yes", "123", "0", ""].map(String::from).to_vec());
        t.row(["8", "42", "no", "x", "5", "n"].map(String::from).to_vec());
        let v: serde_json::Value = serde_json::from_str(&t.json("things")).unwrap();
        let want = serde_json::json!({"things": [
            {"id": 7, "name": "a\"b", "enabled": true, "rx_bytes": 123, "day_total": 0, "note": null},
            {"id": 8, "name": "42", "enabled": false, "rx_bytes": "x", "day_total": 5, "note": "n"}]});
        assert_eq!(v, want);
        assert_eq!(Table::new(Format::Json, "none").json("none"), "{\"none\":[]}\n");
    }

    #[test]
    fn times_format_as_utc_and_csv_quotes() {
        assert_eq!(iso_time(1_795_478_400 + 3661), "2026-11-24T01:01:01Z");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("plain"), "plain");
    }
}
