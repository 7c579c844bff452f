//! The 4-byte messages the server sends on the control connection.

use super::{ProtoError, take};

/// Sent by the server as soon as a connection is accepted.
pub const HELLO: [u8; 4] = [1, 0, 0, 0];
/// Authentication (or admission) failed; the server closes next.
pub const FAILED: [u8; 4] = [0, 0, 0, 0];
/// MD5 challenge follows (16 bytes).
pub const MD5_CHALLENGE: [u8; 4] = [2, 0, 0, 0];
/// EC-SRP5 exchange follows.
pub const ECSRP5: [u8; 4] = [3, 0, 0, 0];

/// The OK reply; multi-connection TCP tests carry the session token.
pub fn ok(token: Option<u16>) -> [u8; 4] {
    let t = token.unwrap_or(0).to_be_bytes();
    [1, t[0], t[1], 0]
}

/// What a client makes of a 4-byte server reply after its command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// OK, with the session token when non-zero.
    Ok(Option<u16>),
    Md5Challenge,
    EcSrp5,
    Failed,
}

impl Reply {
    pub fn parse(buf: &[u8]) -> Result<Reply, ProtoError> {
        let b: [u8; 4] = take(buf)?;
        match b {
            [1, hi, lo, 0] => {
                let t = u16::from_be_bytes([hi, lo]);
                Ok(Reply::Ok((t != 0).then_some(t)))
            }
            MD5_CHALLENGE => Ok(Reply::Md5Challenge),
            ECSRP5 => Ok(Reply::EcSrp5),
            FAILED => Ok(Reply::Failed),
            other => Err(ProtoError::BadReply(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ok_with_captured_token() {
        assert_eq!(ok(Some(0xbc04)), [0x01, 0xbc, 0x04, 0x00]);
        assert_eq!(Reply::parse(&[0x01, 0xbc, 0x04, 0x00]), Ok(Reply::Ok(Some(0xbc04))));
        assert_eq!(Reply::parse(&ok(None)), Ok(Reply::Ok(None)));
    }

    #[test]
    fn parses_auth_replies_and_rejects_others() {
        assert_eq!(Reply::parse(&MD5_CHALLENGE), Ok(Reply::Md5Challenge));
        assert_eq!(Reply::parse(&ECSRP5), Ok(Reply::EcSrp5));
        assert_eq!(Reply::parse(&FAILED), Ok(Reply::Failed));
        assert_eq!(Reply::parse(&[9, 0, 0, 0]), Err(ProtoError::BadReply([9, 0, 0, 0])));
        assert!(Reply::parse(&[1, 0]).is_err());
    }
}
