//! Authentication schemes of the btest control connection and the in-memory
//! user table the event loop authenticates against.

pub mod ecsrp5;
pub mod md5;

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

/// Which challenge the server sends after a command when authentication is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// EC-SRP5 (RouterOS 6.43+): the server stores only a validator.
    EcSrp5,
    /// MD5 challenge-response: needs the plaintext password; for old clients.
    Md5,
}

impl FromStr for Scheme {
    type Err = String;
    fn from_str(s: &str) -> Result<Scheme, String> {
        match s {
            "ecsrp5" | "ec-srp5" => Ok(Scheme::EcSrp5),
            "md5" => Ok(Scheme::Md5),
            other => Err(format!("unknown auth scheme '{other}': use ecsrp5 or md5")),
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scheme::EcSrp5 => "ecsrp5",
            Scheme::Md5 => "md5",
        })
    }
}

/// What the server knows about one user.
#[derive(Clone)]
pub struct User {
    pub name: String,
    /// Plaintext-equivalent secret, present only when MD5 logins are allowed.
    pub md5_password: Option<Vec<u8>>,
    pub validator: ecsrp5::Validator,
    pub enabled: bool,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print secrets.
        f.debug_struct("User").field("name", &self.name).field("enabled", &self.enabled).finish()
    }
}

impl User {
    /// A user from a plaintext password, with a fresh random salt.
    pub fn with_password(name: &str, password: &str, allow_md5: bool) -> User {
        let salt = crate::sysrand::bytes::<16>();
        User {
            name: name.to_string(),
            md5_password: allow_md5.then(|| password.as_bytes().to_vec()),
            validator: ecsrp5::Validator::derive(name.as_bytes(), password.as_bytes(), salt),
            enabled: true,
        }
    }
}

/// Users by name, as the event loop sees them.
#[derive(Debug, Clone, Default)]
pub struct Users {
    by_name: HashMap<Vec<u8>, User>,
}

impl Users {
    pub fn insert(&mut self, user: User) {
        self.by_name.insert(user.name.as_bytes().to_vec(), user);
    }

    pub fn get(&self, name: &[u8]) -> Option<&User> {
        self.by_name.get(name)
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // black_box keeps the optimiser from turning the fold into an early exit.
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ct_eq_compares_whole_strings() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
        assert!(ct_eq(b"", b""));
    }

    #[test]
    fn scheme_parses_operator_spellings() {
        assert_eq!("md5".parse::<Scheme>(), Ok(Scheme::Md5));
        assert_eq!("ecsrp5".parse::<Scheme>(), Ok(Scheme::EcSrp5));
        assert!("sha1".parse::<Scheme>().unwrap_err().contains("ecsrp5 or md5"));
    }
}
