//! EC-SRP5 (RouterOS 6.43+) authentication: the math of the four-message
//! exchange (protocol-reference §5), without I/O.
//!
//! The caller frames each payload with its one length byte
//! ([`crate::proto::frame`]), looks up the user's [`Validator`] (none for an
//! unknown user, who gets a decoy that costs the same) and supplies fresh
//! random ephemeral secrets. Server side:
//! [`parse_client_hello`] → [`ServerHandshake::start`] (message 2) →
//! [`ServerHandshake::finish`] (checks message 3, returns message 4). Client
//! side: [`ClientHandshake::start`] (message 1) →
//! [`ClientHandshake::on_server_hello`] (message 3) →
//! [`ClientHandshake::verify_server`].
//!
//! Public keys are refused unless canonical, on the curve and not of small
//! order. The curve arithmetic is our own, on fixed 32-bit limbs and
//! constant-time with respect to secrets; see `field`, `point` and `scalar`.

mod ct;
mod error;
mod field;
mod handshake;
mod point;
mod scalar;

pub use error::{EcSrpError, Message};
pub use handshake::{ClientHandshake, ClientHello, MAX_USERNAME_LEN, ServerHandshake, Validator, parse_client_hello};

use sha2::{Digest, Sha256};

/// SHA-256 over the concatenation of `parts`.
fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in parts {
        h.update(part);
    }
    h.finalize().into()
}
