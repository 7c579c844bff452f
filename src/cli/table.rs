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

/// A text table with aligned columns, or CSV.
pub(super) struct Table {
    pub(super) csv: bool,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub(super) fn new(csv: bool) -> Table {
        Table { csv, rows: Vec::new() }
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
        let cols = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..cols)
            .map(|c| self.rows.iter().filter_map(|r| r.get(c)).map(|f| f.chars().count()).max().unwrap_or(0))
            .collect();
        for r in &self.rows {
            let mut line = String::new();
            for (c, f) in r.iter().enumerate() {
                line.push_str(f);
                if c + 1 < r.len() {
                    let pad = widths[c].saturating_sub(f.chars().count()) + 2;
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            writeln!(out, "{line}").map_err(w)?;
        }
        Ok(())
    }
}

/// Writes one JSON document to standard output.
pub(super) fn print_json(j: crate::json::Json) -> Result<(), String> {
    std::io::stdout().lock().write_all(j.finish().as_bytes()).map_err(|e| format!("cannot write the output: {e}"))
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
    fn times_format_as_utc_and_csv_quotes() {
        assert_eq!(iso_time(1_795_478_400 + 3661), "2026-11-24T01:01:01Z");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("plain"), "plain");
    }
}
