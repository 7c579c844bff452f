//! A small JSON writer for the `--format json` outputs and the control
//! channel: one document built into a `String`, commas placed by the writer,
//! strings escaped per RFC 8259. Small on purpose: no serde in the binary.

use crate::quota::Date;
use std::fmt::Write;

/// A JSON document being written. Call the methods in document order; a
/// value inside an object must follow its [`Json::key`].
#[derive(Default)]
pub struct Json {
    out: String,
    /// The next value needs a comma before it.
    comma: bool,
}

impl Json {
    pub fn new() -> Json {
        Json::default()
    }

    fn sep(&mut self) {
        if self.comma {
            self.out.push(',');
        }
        self.comma = false;
    }

    pub fn begin_object(&mut self) -> &mut Json {
        self.sep();
        self.out.push('{');
        self
    }

    pub fn end_object(&mut self) -> &mut Json {
        self.out.push('}');
        self.comma = true;
        self
    }

    pub fn begin_array(&mut self) -> &mut Json {
        self.sep();
        self.out.push('[');
        self
    }

    pub fn end_array(&mut self) -> &mut Json {
        self.out.push(']');
        self.comma = true;
        self
    }

    /// An object member's name; its value comes next.
    pub fn key(&mut self, k: &str) -> &mut Json {
        self.sep();
        escape_into(&mut self.out, k);
        self.out.push(':');
        self
    }

    pub fn str(&mut self, v: &str) -> &mut Json {
        self.sep();
        escape_into(&mut self.out, v);
        self.comma = true;
        self
    }

    pub fn u64(&mut self, v: u64) -> &mut Json {
        self.sep();
        let _ = write!(self.out, "{v}");
        self.comma = true;
        self
    }

    pub fn i64(&mut self, v: i64) -> &mut Json {
        self.sep();
        let _ = write!(self.out, "{v}");
        self.comma = true;
        self
    }

    pub fn bool(&mut self, v: bool) -> &mut Json {
        self.sep();
        self.out.push_str(if v { "true" } else { "false" });
        self.comma = true;
        self
    }

    pub fn null(&mut self) -> &mut Json {
        self.sep();
        self.out.push_str("null");
        self.comma = true;
        self
    }

    /// A string, or null.
    pub fn opt_str(&mut self, v: Option<&str>) -> &mut Json {
        match v {
            Some(s) => self.str(s),
            None => self.null(),
        }
    }

    /// A number, or null.
    pub fn opt_u64(&mut self, v: Option<u64>) -> &mut Json {
        match v {
            Some(n) => self.u64(n),
            None => self.null(),
        }
    }

    /// A Unix time as an RFC 3339 UTC string.
    pub fn time(&mut self, unix: i64) -> &mut Json {
        self.str(&rfc3339(unix))
    }

    /// The document, with a final newline.
    pub fn finish(mut self) -> String {
        self.out.push('\n');
        self.out
    }
}

/// Writes `s` as a quoted JSON string: quote, backslash and control
/// characters escaped; everything else (valid UTF-8) as is.
fn escape_into(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `2026-11-24T06:30:00Z`.
pub fn rfc3339(unix: i64) -> String {
    let s = unix.rem_euclid(86_400);
    format!("{}T{:02}:{:02}:{:02}Z", Date::from_days(unix.div_euclid(86_400)), s / 3600, s / 60 % 60, s % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_documents_get_their_commas() {
        let mut j = Json::new();
        j.begin_object();
        j.key("a").u64(1).key("b").begin_array().str("x").null().bool(false).end_array();
        j.key("c").begin_object().end_object().key("d").i64(-5).key("e").begin_array().end_array();
        j.key("f").begin_array().begin_object().key("g").opt_u64(None).end_object().begin_object().end_object();
        j.end_array().end_object();
        assert_eq!(
            j.finish(),
            "{\"a\":1,\"b\":[\"x\",null,false],\"c\":{},\"d\":-5,\"e\":[],\"f\":[{\"g\":null},{}]}\n"
        );
    }

    #[test]
    fn strings_are_escaped() {
        let mut j = Json::new();
        j.str("q\"b\\n\nt\tc\u{1}\u{7f}é\u{2028}");
        assert_eq!(j.finish(), "\"q\\\"b\\\\n\\nt\\tc\\u0001\\u007fé\\u2028\"\n");
        let mut k = Json::new();
        k.begin_object().key("we\"ird").str("").end_object();
        assert_eq!(k.finish(), "{\"we\\\"ird\":\"\"}\n");
    }

    #[test]
    fn a_real_parser_reads_back_every_character() {
        let all: String = (0u32..0x3000).filter_map(char::from_u32).collect();
        let mut j = Json::new();
        j.begin_object().key(&all).str(&all).end_object();
        let v: serde_json::Value = serde_json::from_str(&j.finish()).unwrap();
        assert_eq!(v[all.as_str()].as_str(), Some(all.as_str()));
    }

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339(1_795_478_400 + 3661), "2026-11-24T01:01:01Z");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        let mut j = Json::new();
        j.time(86_399);
        assert_eq!(j.finish(), "\"1970-01-01T23:59:59Z\"\n");
    }
}
