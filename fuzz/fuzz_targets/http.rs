//! Fuzz target `http`: the web listener's request path and the control
//! socket's request line, on arbitrary bytes (any client controls them).
//!
//! Properties checked:
//! - `http::parse` never asks for more bytes once `MAX_REQUEST` are buffered,
//!   so a connection can never grow without bound or wait forever; fed the
//!   input as the loop reads it (arbitrary splits), the first answer is the
//!   answer for that prefix.
//! - An accepted request is a GET (after any empty lines) whose token, if any, holds no CR, LF or
//!   space (it came from one header value or one query parameter).
//! - `http::response` frames any body with the right Content-Length.
//! - `observe::request::parse` likewise never waits past `MAX_REQUEST`, and
//!   an accepted request re-encodes to a line that parses back to it.
#![no_main]

use btestd::http;
use btestd::observe::request;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    check_http(data);
    check_control(data);
});

fn check_http(data: &[u8]) {
    // The first byte picks the read size the loop would see.
    let step = usize::from(data.first().copied().unwrap_or(1)).max(1);
    let mut end = 0;
    let first = loop {
        end = (end + step).min(data.len());
        match http::parse(&data[..end]) {
            Ok(None) if end < data.len() => continue,
            r => break r,
        }
    };
    assert_eq!(first, http::parse(&data[..end]));
    if data.len() >= http::MAX_REQUEST {
        assert_ne!(http::parse(&data[..http::MAX_REQUEST]), Ok(None), "waits past the limit");
    }
    if let Ok(Some(req)) = &first {
        let start = data.iter().position(|&b| b != b'\r' && b != b'\n').unwrap_or(0);
        assert!(data[start..].starts_with(b"GET "), "only GET is accepted (after empty lines RFC 9112 lets a server skip)");
        if let Some(t) = &req.token {
            assert!(!t.is_empty() && !t.contains(['\r', '\n']), "token {t:?}");
        }
    }
    let resp = http::response(200, "OK", "text/plain", data);
    let head = std::str::from_utf8(&resp[..resp.len() - data.len()]).unwrap();
    assert!(head.contains(&format!("Content-Length: {}\r\n", data.len())) && head.ends_with("\r\n\r\n"));
}

fn check_control(data: &[u8]) {
    if data.len() >= request::MAX_REQUEST {
        assert!(request::parse(data).is_some(), "waits past the limit");
    }
    if let Some(Ok(r)) = request::parse(data) {
        assert_eq!(request::parse(r.line()), Some(Ok(r)));
    }
}
