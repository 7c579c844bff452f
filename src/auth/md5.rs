//! MD5 challenge-response (RouterOS before 6.43, still answered by newer
//! clients). The server needs the plaintext password for this scheme.

use md5::{Digest, Md5};

pub const CHALLENGE_LEN: usize = 16;
pub const RESPONSE_LEN: usize = 48;
const USERNAME_FIELD: usize = 32;

/// `MD5(password || MD5(password || challenge))`.
pub fn response_hash(password: &[u8], challenge: &[u8; CHALLENGE_LEN]) -> [u8; 16] {
    let inner = Md5::new().chain_update(password).chain_update(challenge).finalize();
    Md5::new().chain_update(password).chain_update(inner).finalize().into()
}

/// The client's 48-byte answer: hash, then the username NUL-padded to 32.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response<'a> {
    pub hash: [u8; 16],
    /// Up to the first NUL of the 32-byte field.
    pub username: &'a [u8],
}

impl<'a> Response<'a> {
    /// Splits a response; `None` when it is not exactly 48 bytes.
    pub fn parse(buf: &'a [u8]) -> Option<Response<'a>> {
        if buf.len() != RESPONSE_LEN {
            return None;
        }
        let (hash, name) = buf.split_at(16);
        let end = memchr::memchr(0, name).unwrap_or(name.len());
        Some(Response { hash: hash.try_into().ok()?, username: &name[..end] })
    }
}

/// Builds the client's answer; names longer than 32 bytes are truncated as
/// RouterOS does.
pub fn emit_response(username: &[u8], password: &[u8], challenge: &[u8; CHALLENGE_LEN]) -> [u8; RESPONSE_LEN] {
    let mut out = [0u8; RESPONSE_LEN];
    out[..16].copy_from_slice(&response_hash(password, challenge));
    let n = username.len().min(USERNAME_FIELD);
    out[16..16 + n].copy_from_slice(&username[..n]);
    out
}

/// Whether `response` proves knowledge of `password` (constant time).
pub fn verify(response: &Response<'_>, password: &[u8], challenge: &[u8; CHALLENGE_LEN]) -> bool {
    super::ct_eq(&response.hash, &response_hash(password, challenge))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    #[test]
    fn all_shared_vectors_pass() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/md5.json");
        let text = std::fs::read_to_string(path).expect("shared MD5 vectors");
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        let vectors = doc["vectors"].as_array().unwrap();
        assert!(vectors.len() >= 3);
        for v in vectors {
            let user = v["username"].as_str().unwrap().as_bytes();
            let pass = v["password"].as_str().unwrap().as_bytes();
            let challenge: [u8; 16] = unhex(v["challenge"].as_str().unwrap()).try_into().unwrap();
            let hash = unhex(v["hash"].as_str().unwrap());
            assert_eq!(response_hash(pass, &challenge).to_vec(), hash, "vector {v}");
            let wire = emit_response(user, pass, &challenge);
            if let Some(w) = v.get("wire_response").and_then(|w| w.as_str()) {
                assert_eq!(wire.to_vec(), unhex(w), "vector {v}");
            }
            let parsed = Response::parse(&wire).unwrap();
            assert_eq!(parsed.username, &user[..user.len().min(32)]);
            assert!(verify(&parsed, pass, &challenge));
            assert!(!verify(&parsed, b"wrong", &challenge));
        }
    }

    #[test]
    fn response_must_be_48_bytes() {
        assert!(Response::parse(&[0u8; 47]).is_none());
        assert!(Response::parse(&[0u8; 49]).is_none());
        let r = Response::parse(&[0u8; 48]).unwrap();
        assert_eq!(r.username, b"");
    }

    #[test]
    fn full_width_username_has_no_nul() {
        let wire = emit_response(&[b'x'; 40], b"p", &[0; 16]);
        assert_eq!(Response::parse(&wire).unwrap().username, &[b'x'; 32]);
    }
}
