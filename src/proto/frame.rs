//! The frame EC-SRP5 messages travel in on the control connection: one
//! length byte, then that many payload bytes (`[len: u8][payload]`).
//!
//! A server that answers with the failure reply `00 00 00 00` where a frame
//! was expected looks, to this parser, like an empty frame; the caller
//! decides what an empty payload means.

use std::fmt;

/// Bytes before the payload: the length byte.
pub const HEADER_LEN: usize = 1;
/// The largest payload one length byte can announce.
pub const MAX_PAYLOAD: usize = u8::MAX as usize;
/// The largest frame on the wire, header included.
pub const MAX_LEN: usize = HEADER_LEN + MAX_PAYLOAD;

/// Why a frame could not be emitted or parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// The payload is longer than a length byte can announce.
    TooLong { len: usize },
    /// The buffer holds only the start of a frame; at least `more` bytes
    /// are missing: the length byte while it is absent, then all the rest.
    /// Reading exactly that many never consumes bytes past the frame.
    Incomplete { more: usize },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            FrameError::TooLong { len } => {
                write!(f, "payload of {len} bytes does not fit a frame (at most {MAX_PAYLOAD})")
            }
            FrameError::Incomplete { more } => write!(f, "frame incomplete: {more} more bytes needed"),
        }
    }
}

impl std::error::Error for FrameError {}

/// Appends the frame of `payload` to `out`. A payload longer than
/// [`MAX_PAYLOAD`] is refused and `out` is left as it was.
pub fn emit(payload: &[u8], out: &mut Vec<u8>) -> Result<(), FrameError> {
    let len = u8::try_from(payload.len()).map_err(|_| FrameError::TooLong { len: payload.len() })?;
    out.reserve(HEADER_LEN + payload.len());
    out.push(len);
    out.extend_from_slice(payload);
    Ok(())
}

/// Parses the frame at the start of `buf` and returns its payload and the
/// bytes after it, or [`FrameError::Incomplete`] with how many more bytes the
/// frame needs.
pub fn parse(buf: &[u8]) -> Result<(&[u8], &[u8]), FrameError> {
    let Some((&len, rest)) = buf.split_first() else {
        return Err(FrameError::Incomplete { more: HEADER_LEN });
    };
    let len = usize::from(len);
    if rest.len() < len {
        return Err(FrameError::Incomplete { more: len - rest.len() });
    }
    Ok(rest.split_at(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        emit(payload, &mut out).unwrap();
        out
    }

    #[test]
    fn empty_payload() {
        assert_eq!(framed(&[]), [0]);
        assert_eq!(parse(&[0]), Ok((&[][..], &[][..])));
    }

    #[test]
    fn largest_payload_round_trips() {
        let payload: Vec<u8> = (0..MAX_PAYLOAD).map(|i| i as u8).collect();
        let wire = framed(&payload);
        assert_eq!(wire.len(), MAX_LEN);
        assert_eq!(wire[0], 255);
        assert_eq!(&wire[1..], &payload[..]);
        assert_eq!(parse(&wire), Ok((&payload[..], &[][..])));
    }

    #[test]
    fn too_long_payload_is_refused_and_out_untouched() {
        let mut out = vec![7];
        assert_eq!(emit(&[0; MAX_PAYLOAD + 1], &mut out), Err(FrameError::TooLong { len: 256 }));
        assert_eq!(out, [7]);
        assert_eq!(emit(&[0; 1000], &mut out), Err(FrameError::TooLong { len: 1000 }));
        assert_eq!(out, [7]);
    }

    #[test]
    fn emit_appends() {
        let mut out = vec![0xaa];
        emit(b"xy", &mut out).unwrap();
        assert_eq!(out, [0xaa, 2, b'x', b'y']);
    }

    #[test]
    fn partial_input_tells_what_is_missing() {
        assert_eq!(parse(&[]), Err(FrameError::Incomplete { more: 1 }));
        assert_eq!(parse(&[3]), Err(FrameError::Incomplete { more: 3 }));
        assert_eq!(parse(&[3, 1]), Err(FrameError::Incomplete { more: 2 }));
        assert_eq!(parse(&[3, 1, 2]), Err(FrameError::Incomplete { more: 1 }));
        assert_eq!(parse(&[255]), Err(FrameError::Incomplete { more: 255 }));
        // Once the length byte is in, every prefix asks for exactly the rest.
        let wire = framed(b"hello");
        for cut in 1..wire.len() {
            let more = match parse(&wire[..cut]) {
                Err(FrameError::Incomplete { more }) => more,
                other => panic!("{cut}: {other:?}"),
            };
            assert_eq!(cut + more, wire.len(), "cut at {cut}");
        }
    }

    #[test]
    fn bytes_after_the_frame_are_returned_untouched() {
        assert_eq!(parse(&[2, 9, 8, 7, 6]), Ok((&[9, 8][..], &[7, 6][..])));
        // The failure reply where a frame was expected: an empty frame, then 00 00 00.
        assert_eq!(parse(&[0, 0, 0, 0]), Ok((&[][..], &[0, 0, 0][..])));
    }

    #[test]
    fn errors_are_printable() {
        assert_eq!(
            FrameError::TooLong { len: 300 }.to_string(),
            "payload of 300 bytes does not fit a frame (at most 255)"
        );
        assert_eq!(FrameError::Incomplete { more: 2 }.to_string(), "frame incomplete: 2 more bytes needed");
    }
}
