//! Wire formats of the btest protocol.
