//! An error with its causes on one line (`outer: inner: root`), for logs, dead letters and
//! error messages: the outermost message alone ("a dependency is unavailable", "error sending
//! request") does not tell an operator what to fix.

/// `error` and each of its sources, `: `-separated; a cause whose text the previous one
/// already ends with is not repeated.
pub fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
