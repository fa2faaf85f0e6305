#![forbid(unsafe_code)]
//! What every subcommand of the `coldchain` binary shares: printing to stdout when the
//! reader may have gone ([`say!`]), the exit code of a configuration problem, and the
//! network file the commands read by default.

/// Exit code for a configuration problem.
pub const EXIT_CONFIG: u8 = 2;

/// The default network file.
pub const DEFAULT_NETWORK: &str = "deploy/network.toml";

/// Prints a line to stdout, ignoring a closed pipe (`coldchain sites | head` must not panic).
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}
