//! The web listener's request side and its page, pure over bytes:
//! [`parse`] turns a request head into a [`Request`] (httparse does the
//! HTTP; this module enforces our bounds and picks out what we use), and
//! [`response`] frames a reply. One request per connection, then close.

use std::fmt;

/// Largest request head accepted.
pub const MAX_REQUEST: usize = 4096;
/// Most header lines accepted.
pub const MAX_HEADERS: usize = 24;

/// The embedded page: HTML, CSS and script in one file, no external assets.
pub const PAGE: &str = include_str!("page.html");

/// What a client asked for, as far as we care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub route: Route,
    /// `?token=` or `Authorization: Bearer`, whichever was given.
    pub token: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Page,
    Status,
    Metrics,
    NotFound,
}

/// Why a request gets an error status instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpError {
    /// Malformed HTTP.
    Bad,
    /// The head is longer than [`MAX_REQUEST`].
    TooLarge,
    /// More than [`MAX_HEADERS`] headers.
    TooManyHeaders,
    /// Not GET.
    Method,
}

impl HttpError {
    pub fn status(self) -> (u16, &'static str) {
        match self {
            HttpError::Bad => (400, "Bad Request"),
            HttpError::TooLarge => (413, "Content Too Large"),
            HttpError::TooManyHeaders => (431, "Request Header Fields Too Large"),
            HttpError::Method => (405, "Method Not Allowed"),
        }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.status().1)
    }
}

/// The request in `buf` once its head is complete; `Ok(None)` while more may come.
pub fn parse(buf: &[u8]) -> Result<Option<Request>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Partial) if buf.len() >= MAX_REQUEST => Err(HttpError::TooLarge),
        Ok(httparse::Status::Partial) => Ok(None),
        Ok(httparse::Status::Complete(n)) if n > MAX_REQUEST => Err(HttpError::TooLarge),
        Ok(httparse::Status::Complete(_)) => {
            if req.method != Some("GET") {
                return Err(HttpError::Method);
            }
            let target = req.path.ok_or(HttpError::Bad)?;
            let (path, query) = target.split_once('?').unwrap_or((target, ""));
            let route = match path {
                "/" | "/index.html" => Route::Page,
                "/api/status" => Route::Status,
                "/metrics" => Route::Metrics,
                _ => Route::NotFound,
            };
            let from_query =
                query.split('&').find_map(|kv| kv.strip_prefix("token=")).filter(|t| !t.is_empty()).map(str::to_string);
            let from_header = req.headers.iter().find(|h| h.name.eq_ignore_ascii_case("authorization")).and_then(|h| {
                let v = std::str::from_utf8(h.value).ok()?;
                v.strip_prefix("Bearer ").map(|t| t.trim().to_string())
            });
            Ok(Some(Request { route, token: from_header.or(from_query) }))
        }
        Err(httparse::Error::TooManyHeaders) => Err(HttpError::TooManyHeaders),
        Err(_) => Err(HttpError::Bad),
    }
}

/// A complete response that closes the connection.
pub fn response(code: u16, reason: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let head = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nContent-Security-Policy: default-src 'self'; \
         script-src 'unsafe-inline'; style-src 'unsafe-inline'\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    out
}

/// A plain-text error response.
pub fn error(code: u16, reason: &str) -> Vec<u8> {
    response(code, reason, "text/plain; charset=utf-8", format!("{code} {reason}\n").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_into_routes_and_tokens() {
        assert_eq!(parse(b"GET / HTTP/1.1\r\nHost: x\r\n"), Ok(None), "head not complete yet");
        let r = parse(b"GET /api/status?x=1&token=abc HTTP/1.1\r\nHost: x\r\n\r\n").unwrap().unwrap();
        assert_eq!(r, Request { route: Route::Status, token: Some("abc".into()) });
        let r = parse(b"GET /metrics HTTP/1.0\r\nAuthorization: Bearer s3 \r\n\r\n").unwrap().unwrap();
        assert_eq!(r, Request { route: Route::Metrics, token: Some("s3".into()) });
        assert_eq!(parse(b"GET /x HTTP/1.1\r\n\r\n").unwrap().unwrap().route, Route::NotFound);
        assert_eq!(parse(b"GET / HTTP/1.1\r\n\r\n").unwrap().unwrap(), Request { route: Route::Page, token: None });
    }

    #[test]
    fn bounds_and_garbage_are_errors() {
        assert_eq!(parse(b"POST / HTTP/1.1\r\n\r\n"), Err(HttpError::Method));
        assert_eq!(parse(b"\x00\x01garbage\r\n\r\n"), Err(HttpError::Bad));
        let many = format!("GET / HTTP/1.1\r\n{}\r\n", "A: b\r\n".repeat(MAX_HEADERS + 1));
        assert_eq!(parse(many.as_bytes()), Err(HttpError::TooManyHeaders));
        let long = format!("GET /{} HTTP/1.1\r\n", "a".repeat(MAX_REQUEST));
        assert_eq!(parse(long.as_bytes()), Err(HttpError::TooLarge));
        let r = response(404, "Not Found", "text/plain", b"no");
        assert!(r.starts_with(b"HTTP/1.1 404 Not Found\r\n") && r.ends_with(b"\r\n\r\nno"));
        assert!(String::from_utf8(r).unwrap().contains("Content-Length: 2\r\n"));
    }
}
