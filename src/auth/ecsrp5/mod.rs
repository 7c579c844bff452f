//! EC-SRP5 (RouterOS 6.43+) authentication.
