//! The suite's modules, and the macro that runs a security test as both
//! callers.

/// For each `fn name(id: &Identity)`, a module `name` with the tests
/// `as_root` and `as_user`; attributes (e.g. `#[ignore = "..."]`) written
/// before the name apply to both.
macro_rules! as_root_and_user {
    ($($(#[$meta:meta])* $name:ident),+ $(,)?) => {$(
        mod $name {
            use crate::suite::harness::Who;

            $(#[$meta])*
            #[test]
            fn as_root() {
                if let Some(id) = Who::Root.resolve() {
                    super::$name(&id);
                }
            }

            $(#[$meta])*
            #[test]
            fn as_user() {
                if let Some(id) = Who::User.resolve() {
                    super::$name(&id);
                }
            }
        }
    )+};
}

mod agent;
mod bad_input;
mod defaults;
mod escape;
mod filesystem;
mod harness;
mod host_view;
mod modes;
mod network;
mod options;
mod policy;
mod process;
mod seccomp_trace;
mod tty;
mod violations;
