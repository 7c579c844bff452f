//! Requests on the control socket: one short line, answered with one
//! document, then the server closes.

use std::fmt;

/// Longest request line, newline included; longer ones are refused.
pub const MAX_REQUEST: usize = 64;

/// What a control client asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// `status text` or `status json`.
    Status { json: bool },
    /// `metrics`: the Prometheus text exposition.
    Metrics,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
    /// No newline within [`MAX_REQUEST`] bytes.
    TooLong,
    Unknown,
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::TooLong => write!(f, "request longer than {MAX_REQUEST} bytes"),
            RequestError::Unknown => f.write_str("unknown request: use 'status text', 'status json' or 'metrics'"),
        }
    }
}

/// The request in `buf` once its line is complete: `None` while more bytes
/// may still come.
pub fn parse(buf: &[u8]) -> Option<Result<Request, RequestError>> {
    let Some(end) = memchr::memchr(b'\n', buf) else {
        return (buf.len() >= MAX_REQUEST).then_some(Err(RequestError::TooLong));
    };
    if end >= MAX_REQUEST {
        return Some(Err(RequestError::TooLong));
    }
    Some(line(&buf[..end]))
}

/// The request in `buf` once the client has stopped sending: a last line
/// without its newline counts, as `printf status | nc -U` sends it.
pub fn parse_at_eof(buf: &[u8]) -> Result<Request, RequestError> {
    parse(buf).unwrap_or_else(|| line(buf))
}

fn line(line: &[u8]) -> Result<Request, RequestError> {
    match line.strip_suffix(b"\r").unwrap_or(line) {
        b"status" | b"status text" => Ok(Request::Status { json: false }),
        b"status json" => Ok(Request::Status { json: true }),
        b"metrics" => Ok(Request::Metrics),
        _ => Err(RequestError::Unknown),
    }
}

impl Request {
    /// The line a client sends.
    pub fn line(self) -> &'static [u8] {
        match self {
            Request::Status { json: false } => b"status text\n",
            Request::Status { json: true } => b"status json\n",
            Request::Metrics => b"metrics\n",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_parse_once_complete() {
        assert_eq!(parse(b"status"), None);
        assert_eq!(parse(b"status json\n"), Some(Ok(Request::Status { json: true })));
        assert_eq!(parse(b"status\r\n"), Some(Ok(Request::Status { json: false })));
        assert_eq!(parse(b"metrics\nextra"), Some(Ok(Request::Metrics)));
        assert_eq!(parse(b"stat\n"), Some(Err(RequestError::Unknown)));
        assert_eq!(parse(&[b'x'; MAX_REQUEST]), Some(Err(RequestError::TooLong)));
        let mut long = vec![b' '; MAX_REQUEST + 3];
        long[MAX_REQUEST + 1] = b'\n';
        assert_eq!(parse(&long), Some(Err(RequestError::TooLong)));
        for r in [Request::Status { json: false }, Request::Status { json: true }, Request::Metrics] {
            assert_eq!(parse(r.line()), Some(Ok(r)));
        }
    }

    #[test]
    fn the_end_of_the_stream_ends_the_line() {
        assert_eq!(parse_at_eof(b"status json"), Ok(Request::Status { json: true }));
        assert_eq!(parse_at_eof(b"metrics\r"), Ok(Request::Metrics));
        assert_eq!(parse_at_eof(b"metrics\nstatus"), Ok(Request::Metrics), "the first line decides");
        assert_eq!(parse_at_eof(b""), Err(RequestError::Unknown), "nothing asked");
        assert_eq!(parse_at_eof(b"stat"), Err(RequestError::Unknown));
        assert_eq!(parse_at_eof(&[b'x'; MAX_REQUEST]), Err(RequestError::TooLong));
    }
}
