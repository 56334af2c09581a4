//! Integration tests of the helper binary: a hostile client on a socket
//! pair, and the dependency rules of a binary that runs as root.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod suite;
