//! How a binary ends: success, or the error and its causes on stderr and a failure status.

use std::process::ExitCode;

/// Prints `error: …` and each `caused by: …` (operators read these before logging is set up,
/// e.g. for a bad configuration) and returns the matching exit code.
pub fn exit_code(result: Result<(), Box<dyn std::error::Error>>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            let mut source = e.source();
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            ExitCode::FAILURE
        }
    }
}
