//! Who may log in: the database's users plus one from the command line.
//! Authentication is required exactly when there is someone to log in as.

use super::handshake::AuthConfig;
use crate::auth::{Scheme, User, Users};

pub struct Logins {
    /// The challenge sent when authentication is on.
    scheme: Scheme,
    users: Users,
    /// Always required, kept across reloads.
    cli_user: Option<User>,
    /// Seeds EC-SRP5 decoys for unknown users.
    secret: [u8; 32],
}

impl Logins {
    pub fn new(scheme: Scheme, users: Users, cli_user: Option<User>, secret: [u8; 32]) -> Logins {
        let mut l = Logins { scheme, users: Users::default(), cli_user, secret };
        l.set_users(users);
        l
    }

    /// Installs a user table (at start and on reloads).
    pub fn set_users(&mut self, mut users: Users) {
        if let Some(u) = &self.cli_user {
            users.insert(u.clone());
        }
        self.users = users;
    }

    /// The scheme in force; None while there is no user: tests are anonymous.
    pub fn active(&self) -> Option<Scheme> {
        (!self.users.is_empty()).then_some(self.scheme)
    }

    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    pub fn auth_config(&self) -> AuthConfig<'_> {
        AuthConfig { scheme: self.active(), users: &self.users, secret: &self.secret }
    }

    /// "off" or the scheme, for log lines.
    pub fn describe(&self) -> String {
        match self.active() {
            Some(s) => s.to_string(),
            None => "off".to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authentication_follows_the_user_table_and_keeps_the_command_line_user() {
        let mut l = Logins::new(Scheme::Md5, Users::default(), None, [0; 32]);
        assert_eq!(l.active(), None);
        assert_eq!(l.describe(), "off");
        let mut users = Users::default();
        users.insert(User::with_password("alice", "pw", true));
        l.set_users(users);
        assert_eq!(l.active(), Some(Scheme::Md5));

        let mut l =
            Logins::new(Scheme::EcSrp5, Users::default(), Some(User::with_password("op", "pw", false)), [0; 32]);
        assert_eq!(l.active(), Some(Scheme::EcSrp5), "the command-line user needs a login");
        l.set_users(Users::default());
        assert_eq!(l.user_count(), 1, "a reload keeps the command-line user");
    }
}
