//! Why an EC-SRP5 exchange was refused.

use std::fmt;

/// The four EC-SRP5 messages, numbered as in protocol-reference §5.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message {
    /// Message 1, client → server: username, NUL, client public key.
    ClientHello = 1,
    /// Message 2, server → client: server public key and salt.
    ServerHello = 2,
    /// Message 3, client → server: the client's confirmation code.
    ClientProof = 3,
    /// Message 4, server → client: the server's confirmation code.
    ServerProof = 4,
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Message::ClientHello => "client hello",
            Message::ServerHello => "server hello",
            Message::ClientProof => "client proof",
            Message::ServerProof => "server proof",
        };
        write!(f, "message {} ({name})", *self as u8)
    }
}

/// A refused EC-SRP5 exchange. None of these carry secrets, so all may be
/// logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EcSrpError {
    /// Fewer bytes than the message layout needs. For message 1, `expected`
    /// and `got` count the bytes after the username's NUL.
    Truncated { message: Message, expected: usize, got: usize },
    /// More bytes than the message layout allows (counted as for
    /// `Truncated`); trailing bytes mean the peer frames differently.
    BadLength { message: Message, expected: usize, got: usize },
    /// Message 1 has no NUL after the username.
    MissingNul,
    /// The username does not fit a 255-byte message 1.
    UsernameTooLong { len: usize },
    /// A username with a NUL byte cannot be sent: NUL terminates it on the wire.
    UsernameContainsNul,
    /// A point's parity byte is neither 0 nor 1.
    BadParity { message: Message, value: u8 },
    /// The public key in this message is not the u-coordinate of a curve point.
    NotOnCurve { message: Message },
    /// The public key's u is p or more: no honest peer encodes a point so.
    NotCanonical { message: Message },
    /// The public key is a point of order 1, 2, 4 or 8, which would make the
    /// shared secret take one of a few values.
    SmallOrder { message: Message },
    /// The stored validator is not a curve point or has a parity other than 0/1.
    BadValidator,
    /// The confirmation code in this message is wrong.
    ProofMismatch { message: Message },
    /// `verify_server` was called before `on_server_hello`.
    OutOfOrder,
}

impl fmt::Display for EcSrpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EcSrpError::Truncated { message: Message::ClientHello, expected, got } => write!(
                f,
                "EC-SRP5 {}: {got} bytes after the username, need {expected} (truncated)",
                Message::ClientHello
            ),
            EcSrpError::Truncated { message, expected, got } => {
                write!(f, "EC-SRP5 {message}: {got} bytes, need {expected} (truncated)")
            }
            EcSrpError::BadLength { message: Message::ClientHello, expected, got } => write!(
                f,
                "EC-SRP5 {}: {got} bytes after the username, expected exactly {expected} \
                 (peer uses a different framing?)",
                Message::ClientHello
            ),
            EcSrpError::BadLength { message, expected, got } => write!(
                f,
                "EC-SRP5 {message}: {got} bytes, expected exactly {expected} \
                 (peer uses a different framing?)"
            ),
            EcSrpError::MissingNul => write!(f, "EC-SRP5 {}: no NUL byte ends the username", Message::ClientHello),
            EcSrpError::UsernameTooLong { len } => write!(
                f,
                "EC-SRP5 username is {len} bytes; at most {} fit in {}",
                super::MAX_USERNAME_LEN,
                Message::ClientHello
            ),
            EcSrpError::UsernameContainsNul => {
                write!(f, "EC-SRP5 username contains a NUL byte and cannot be sent")
            }
            EcSrpError::BadParity { message, value } => {
                write!(f, "EC-SRP5 {message}: parity byte is {value:#04x}, must be 0 or 1")
            }
            EcSrpError::NotOnCurve { message } => write!(
                f,
                "EC-SRP5 {message}: public key is not a curve point of Curve25519 \
                 (corrupt or forged message)"
            ),
            EcSrpError::NotCanonical { message } => write!(
                f,
                "EC-SRP5 {message}: public key is not reduced modulo 2^255 - 19 \
                 (forged or corrupt message)"
            ),
            EcSrpError::SmallOrder { message } => write!(
                f,
                "EC-SRP5 {message}: public key is a point of small order (a forged key, \
                 never sent by an honest peer)"
            ),
            EcSrpError::BadValidator => write!(
                f,
                "EC-SRP5 stored validator is not a curve point or has a bad parity byte; \
                 re-create the user's credentials"
            ),
            EcSrpError::ProofMismatch { message: Message::ClientProof } => write!(
                f,
                "EC-SRP5 client proof mismatch: wrong password, or the stored validator \
                 was derived from a different password"
            ),
            EcSrpError::ProofMismatch { message } => write!(
                f,
                "EC-SRP5 {message} mismatch: the peer does not hold this user's validator \
                 (wrong password on our side, or an impostor)"
            ),
            EcSrpError::OutOfOrder => write!(f, "EC-SRP5 server proof checked before the server hello was processed"),
        }
    }
}

impl EcSrpError {
    /// Whether this refuses the peer's public key itself (not on the curve,
    /// not canonical, small order) rather than the message's layout: a
    /// well-formed message only a forged or broken peer sends.
    pub fn is_invalid_key(&self) -> bool {
        matches!(self, EcSrpError::NotOnCurve { .. } | EcSrpError::NotCanonical { .. } | EcSrpError::SmallOrder { .. })
    }
}

impl std::error::Error for EcSrpError {}
