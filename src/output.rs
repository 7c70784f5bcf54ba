//! Standard output for the commands' reports. A reader that goes away (`camsync plan | head -1`)
//! ends the output quietly instead of a panic; the command still runs to its own exit code.

use std::io::{ErrorKind, Write};

/// Writes `text` to standard output. A closed pipe is ignored; any other failure is said once
/// on standard error.
pub fn emit(text: &str) {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != ErrorKind::BrokenPipe => {
            eprintln!("error: cannot write to standard output: {e}");
        }
        _ => {}
    }
}

/// `print!` through [`emit`].
macro_rules! out {
    ($($arg:tt)*) => { $crate::output::emit(&format!($($arg)*)) };
}

/// `println!` through [`emit`].
macro_rules! outln {
    () => { $crate::output::emit("\n") };
    ($($arg:tt)*) => { $crate::output::emit(&format!("{}\n", format_args!($($arg)*))) };
}

pub(crate) use {out, outln};
