//! Wire formats of the btest protocol: pure parsers and emitters over byte
//! slices, one module per message. Sockets never index raw buffers; they go
//! through these types.
//!
//! All multi-byte fields are little-endian unless a type says otherwise; no
//! code here depends on the host's byte order.

pub mod command;
pub mod frame;
pub mod reply;
pub mod status;
pub mod udp;

pub use command::{Command, Direction, Protocol};
pub use frame::FrameError;
pub use reply::Reply;
pub use status::{Status, StatusScanner};

use std::fmt;

/// The default TCP port of RouterOS's bandwidth server.
pub const DEFAULT_PORT: u16 = 2000;

/// Why a message could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtoError {
    /// Fewer bytes than the message needs.
    Truncated { need: usize, got: usize },
    /// Command byte 0 is neither 0 (UDP) nor 1 (TCP).
    BadProtocol(u8),
    /// Command byte 1 is not 1, 2 or 3.
    BadDirection(u8),
    /// A status message does not start with 0x07 or has non-zero padding.
    BadStatus,
    /// A 4-byte server reply that is not HELLO/OK/challenge/failure.
    BadReply([u8; 4]),
}

impl fmt::Display for ProtoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ProtoError::Truncated { need, got } => {
                write!(f, "message truncated: need {need} bytes, got {got}")
            }
            ProtoError::BadProtocol(b) => {
                write!(f, "invalid command: protocol byte {b:#04x} (expected 0 = UDP or 1 = TCP)")
            }
            ProtoError::BadDirection(b) => {
                write!(f, "invalid command: direction byte {b:#04x} (expected 1 = receive, 2 = transmit, 3 = both)")
            }
            ProtoError::BadStatus => write!(f, "invalid status message"),
            ProtoError::BadReply(b) => write!(f, "unexpected server reply {:02x?}", b),
        }
    }
}

impl std::error::Error for ProtoError {}

/// Returns the first `N` bytes of `buf` or a `Truncated` error.
pub(crate) fn take<const N: usize>(buf: &[u8]) -> Result<[u8; N], ProtoError> {
    buf.get(..N).and_then(|b| b.try_into().ok()).ok_or(ProtoError::Truncated { need: N, got: buf.len() })
}
