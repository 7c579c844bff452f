//! The EC-SRP5 exchange (protocol-reference §5.5–5.7): validators, message 1
//! parsing, and the server's and the client's computations.

use std::fmt;

use super::point::{KeyDefect, Point, redp1};
use super::{EcSrpError, Message, ct, scalar, sha256};

/// Bytes after the username's NUL in message 1: u-coordinate and parity.
const PUBLIC_KEY_LEN: usize = 33;
/// Message 2 payload: server u-coordinate, parity, salt.
const SERVER_HELLO_LEN: usize = 49;
/// Messages 3 and 4: one SHA-256 value.
const PROOF_LEN: usize = 32;

/// Longest username that keeps message 1 within a 255-byte payload.
pub const MAX_USERNAME_LEN: usize = 255 - 1 - PUBLIC_KEY_LEN;

/// A user's stored password verifier, in RouterOS' `user.dat` layout.
///
/// Holding it lets a server authenticate the user but not log in as them;
/// it still allows an offline dictionary attack on the password, so treat
/// it as a secret (its `Debug` output omits `x_gamma`).
#[derive(Clone, PartialEq, Eq)]
pub struct Validator {
    /// Random per-user salt, sent to the client in message 2.
    pub salt: [u8; 16],
    /// Montgomery u of Γ = i·G, 32 bytes big-endian.
    pub x_gamma: [u8; 32],
    /// Parity of Γ's y (0 or 1); the server must lift Γ with this value.
    pub parity: u8,
}

impl Validator {
    /// i = SHA256(salt || SHA256(user ":" password)); Γ = i·G.
    pub fn derive(username: &[u8], password: &[u8], salt: [u8; 16]) -> Validator {
        let i = validator_scalar(&salt, &credentials_hash(username, password));
        Validator::from_scalar(salt, &i)
    }

    /// The decoy that stands in for an unknown user, derived from
    /// SHA-256 over (server_secret, username): repeated probes of a name see
    /// the same genuine-looking salt, and the handshake fails only at the
    /// confirmation, as for a wrong password.
    ///
    /// Two SHA-256 and no curve arithmetic: the server derives it for every
    /// client hello, existing user or not (see [`ServerHandshake::start`]),
    /// so it must be cheap. Its `x_gamma` is hash output with the top bit
    /// cleared and lifts only about half the time; the server then uses G for
    /// Γ by a mask, so whether it lifts does not show either. The salt's
    /// derivation must never change: a name probed before and after an
    /// upgrade would show a new salt, which a stored user's never does.
    fn decoy(server_secret: &[u8; 32], username: &[u8]) -> Validator {
        let salt_hash = sha256(&[b"btestd EC-SRP5 decoy salt\0", server_secret, username]);
        let mut x_gamma = sha256(&[b"btestd EC-SRP5 decoy x\0", server_secret, username]);
        let parity = x_gamma[0] >> 7;
        x_gamma[0] &= 0x7f;
        let mut salt = [0u8; 16];
        salt.copy_from_slice(&salt_hash[..16]);
        Validator { salt, x_gamma, parity }
    }

    fn from_scalar(salt: [u8; 16], i: &[u8; 32]) -> Validator {
        let (x_gamma, parity) = Point::mul_base(i).encode();
        Validator { salt, x_gamma, parity }
    }
}

impl fmt::Debug for Validator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Validator").field("salt", &self.salt).field("parity", &self.parity).finish_non_exhaustive()
    }
}

/// SHA256(username ":" password): all the client keeps of the password.
fn credentials_hash(username: &[u8], password: &[u8]) -> [u8; 32] {
    sha256(&[username, b":", password])
}

/// The validator's private scalar i = SHA256(salt || SHA256(user ":" password)).
fn validator_scalar(salt: &[u8; 16], credentials: &[u8; 32]) -> [u8; 32] {
    sha256(&[salt, credentials])
}

/// Message 1 payload (after the length byte): username, NUL, x_WA, parity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientHello<'a> {
    /// The username as sent (RouterOS sends UTF-8), without the NUL.
    pub username: &'a [u8],
    /// Client public key's Montgomery u, exactly as received (hashed into j).
    pub pub_x: [u8; 32],
    /// Parity of the client public key's y, 0 or 1.
    pub parity: u8,
}

/// Parses message 1.
///
/// Exactly 33 bytes must follow the NUL: the length byte delimits the
/// payload exactly, RouterOS sends exactly 33, and tolerating extra bytes
/// would hide a framing mismatch (such as Winbox's handler byte) behind a
/// confusing proof mismatch later.
pub fn parse_client_hello(payload: &[u8]) -> Result<ClientHello<'_>, EcSrpError> {
    if payload.is_empty() {
        return Err(EcSrpError::Truncated { message: Message::ClientHello, expected: PUBLIC_KEY_LEN, got: 0 });
    }
    let nul = payload.iter().position(|&b| b == 0).ok_or(EcSrpError::MissingNul)?;
    let (username, rest) = payload.split_at(nul);
    if username.len() > MAX_USERNAME_LEN {
        return Err(EcSrpError::UsernameTooLong { len: username.len() });
    }
    let key = rest.get(1..).unwrap_or_default();
    let key: [u8; PUBLIC_KEY_LEN] = exact(key, Message::ClientHello)?;
    let mut pub_x = [0u8; 32];
    pub_x.copy_from_slice(&key[..32]);
    let parity = check_parity(key[32], Message::ClientHello)?;
    Ok(ClientHello { username, pub_x, parity })
}

/// Copies a payload that must be exactly `N` bytes long.
fn exact<const N: usize>(payload: &[u8], message: Message) -> Result<[u8; N], EcSrpError> {
    let (expected, got) = (N, payload.len());
    if got < expected {
        return Err(EcSrpError::Truncated { message, expected, got });
    }
    payload.try_into().map_err(|_| EcSrpError::BadLength { message, expected, got })
}

fn check_parity(value: u8, message: Message) -> Result<u8, EcSrpError> {
    if value > 1 {
        return Err(EcSrpError::BadParity { message, value });
    }
    Ok(value)
}

/// A peer's public key from its wire form (protocol-reference §5.2):
/// canonical, on the curve, not of small order.
fn public_key(u: &[u8; 32], parity: u8, message: Message) -> Result<Point, EcSrpError> {
    Point::decode_public(u, parity).map_err(|defect| match defect {
        KeyDefect::NotCanonical => EcSrpError::NotCanonical { message },
        KeyDefect::NotOnCurve => EcSrpError::NotOnCurve { message },
        KeyDefect::SmallOrder => EcSrpError::SmallOrder { message },
    })
}

/// Server state between message 2 and message 3.
pub struct ServerHandshake {
    /// SHA256(j || z): the only message 3 we accept.
    client_cc: [u8; 32],
    /// SHA256(j || client_cc || z): message 4, released only after message 3 matched.
    server_cc: [u8; 32],
}

/// What the server derives from message 1; j and z stay inside this module.
struct ServerKeys {
    msg2: [u8; SERVER_HELLO_LEN],
    j: [u8; 32],
    z: [u8; 32],
}

impl ServerHandshake {
    /// Validates the client key, computes W_B = s_B·G + redp1(x_γ, 0), and
    /// returns the state and the 49-byte message 2 payload (x_WB, parity,
    /// salt).
    ///
    /// `stored` is the user's validator, `None` for an unknown user, who gets
    /// a decoy derived from `decoy_secret` and the username. Both take the
    /// same operations in the same order: the decoy is derived and Γ lifted
    /// (a square root) either way, and a decoy Γ that does not lift is
    /// replaced by a mask, so the answer's timing does not tell whether the
    /// user exists. What
    /// still varies is inherent to the protocol and distributed alike for
    /// real and decoy validators: redp1's number of rounds, fixed per
    /// validator.
    ///
    /// `s_b` is a fresh random secret; it is used unreduced and unclamped.
    pub fn start(
        stored: Option<&Validator>,
        decoy_secret: &[u8; 32],
        hello: &ClientHello,
        s_b: &[u8; 32],
    ) -> Result<(ServerHandshake, [u8; SERVER_HELLO_LEN]), EcSrpError> {
        let keys = server_keys(stored, decoy_secret, hello, s_b)?;
        let client_cc = sha256(&[&keys.j, &keys.z]);
        let server_cc = sha256(&[&keys.j, &client_cc, &keys.z]);
        Ok((ServerHandshake { client_cc, server_cc }, keys.msg2))
    }

    /// Checks message 3 (exactly 32 bytes, compared in constant time) and
    /// returns the message 4 payload.
    pub fn finish(&self, client_cc: &[u8]) -> Result<[u8; 32], EcSrpError> {
        let got: [u8; PROOF_LEN] = exact(client_cc, Message::ClientProof)?;
        if !crate::auth::ct_eq(&got, &self.client_cc) {
            return Err(EcSrpError::ProofMismatch { message: Message::ClientProof });
        }
        Ok(self.server_cc)
    }
}

impl fmt::Debug for ServerHandshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerHandshake").finish_non_exhaustive()
    }
}

/// Server side of protocol-reference §5.6: W_A is lifted with the client's
/// parity and Γ with the stored one; Z = s_B·(W_A + j·Γ).
fn server_keys(
    stored: Option<&Validator>,
    decoy_secret: &[u8; 32],
    hello: &ClientHello,
    s_b: &[u8; 32],
) -> Result<ServerKeys, EcSrpError> {
    let parity = check_parity(hello.parity, Message::ClientHello)?;
    let w_a = public_key(&hello.pub_x, parity, Message::ClientHello)?;
    // From here on the work is the same for an existing and an unknown user.
    // black_box: the optimiser must not sink the decoy into the unknown-user
    // path, where alone it is used.
    let decoy = std::hint::black_box(Validator::decoy(decoy_secret, hello.username));
    let v = stored.unwrap_or(&decoy);
    if v.parity > 1 {
        return Err(EcSrpError::BadValidator);
    }
    let (gamma, lifts) = Point::lift_x_masked(&v.x_gamma, v.parity);
    // A stored validator must lift; a decoy that does not uses G instead.
    if (!lifts & ct::bit_mask(u32::from(stored.is_some()))) != 0 {
        return Err(EcSrpError::BadValidator);
    }
    let gamma = Point::GENERATOR.select(&gamma, lifts);
    let w_b = Point::mul_base(s_b).add(&redp1(&v.x_gamma, 0));
    let (x_wb, parity_wb) = w_b.encode();
    let j = sha256(&[&hello.pub_x, &x_wb]);
    let (z, _) = w_a.add(&gamma.mul(&j)).mul(s_b).encode();

    let mut msg2 = [0u8; SERVER_HELLO_LEN];
    msg2[..32].copy_from_slice(&x_wb);
    msg2[32] = parity_wb;
    msg2[33..].copy_from_slice(&v.salt);
    Ok(ServerKeys { msg2, j, z })
}

/// Client state from message 1 until message 4 is checked.
pub struct ClientHandshake {
    /// SHA256(username ":" password); the salt arrives only in message 2.
    credentials: [u8; 32],
    /// Ephemeral secret s_A, as given.
    s_a: [u8; 32],
    /// Our public key's u as sent in message 1 (hashed into j).
    x_wa: [u8; 32],
    /// The expected message 4, once message 2 has been processed.
    server_cc: Option<[u8; 32]>,
}

/// What the client derives from message 2.
struct ClientKeys {
    j: [u8; 32],
    z: [u8; 32],
}

impl ClientHandshake {
    /// Computes W_A = s_A·G and returns the state and the message 1 payload.
    ///
    /// Fails for usernames that cannot be sent: longer than
    /// [`MAX_USERNAME_LEN`] or containing a NUL byte (which ends the username
    /// on the wire).
    pub fn start(username: &[u8], password: &[u8], s_a: &[u8; 32]) -> Result<(ClientHandshake, Vec<u8>), EcSrpError> {
        if username.len() > MAX_USERNAME_LEN {
            return Err(EcSrpError::UsernameTooLong { len: username.len() });
        }
        if username.contains(&0) {
            return Err(EcSrpError::UsernameContainsNul);
        }
        let (x_wa, parity) = Point::mul_base(s_a).encode();
        let mut msg1 = Vec::with_capacity(username.len() + 1 + PUBLIC_KEY_LEN);
        msg1.extend_from_slice(username);
        msg1.push(0);
        msg1.extend_from_slice(&x_wa);
        msg1.push(parity);
        let state =
            ClientHandshake { credentials: credentials_hash(username, password), s_a: *s_a, x_wa, server_cc: None };
        Ok((state, msg1))
    }

    /// Processes the message 2 payload (exactly 49 bytes) and returns the
    /// message 3 payload.
    pub fn on_server_hello(&mut self, payload: &[u8]) -> Result<[u8; 32], EcSrpError> {
        let keys = self.client_keys(payload)?;
        let client_cc = sha256(&[&keys.j, &keys.z]);
        self.server_cc = Some(sha256(&[&keys.j, &client_cc, &keys.z]));
        Ok(client_cc)
    }

    /// Checks the message 4 payload in constant time.
    pub fn verify_server(&self, server_cc: &[u8]) -> Result<(), EcSrpError> {
        let expected = self.server_cc.ok_or(EcSrpError::OutOfOrder)?;
        let got: [u8; PROOF_LEN] = exact(server_cc, Message::ServerProof)?;
        if !crate::auth::ct_eq(&got, &expected) {
            return Err(EcSrpError::ProofMismatch { message: Message::ServerProof });
        }
        Ok(())
    }

    /// Client side of protocol-reference §5.6:
    /// Z = ((i·j + s_A) mod r)·(W_B + redp1(x_γ, 1)).
    fn client_keys(&self, payload: &[u8]) -> Result<ClientKeys, EcSrpError> {
        let msg2: [u8; SERVER_HELLO_LEN] = exact(payload, Message::ServerHello)?;
        let mut x_wb = [0u8; 32];
        x_wb.copy_from_slice(&msg2[..32]);
        let parity = check_parity(msg2[32], Message::ServerHello)?;
        let mut salt = [0u8; 16];
        salt.copy_from_slice(&msg2[33..]);

        let w_b = public_key(&x_wb, parity, Message::ServerHello)?;
        let i = validator_scalar(&salt, &self.credentials);
        let (x_gamma, _) = Point::mul_base(&i).encode();
        let unblinded = w_b.add(&redp1(&x_gamma, 1));
        let j = sha256(&[&self.x_wa, &x_wb]);
        let k = scalar::mul_add(&i, &j, &self.s_a);
        let (z, _) = unblinded.mul(&k).encode();
        Ok(ClientKeys { j, z })
    }
}

impl fmt::Debug for ClientHandshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientHandshake").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
