//! OpenSSL, the relying party of the certificate-status tests: its command line run off the
//! test's runtime (the api under test is served on it).

use std::path::Path;

/// Runs `openssl args…` off the runtime (the api is served on this test's runtime);
/// returns whether it succeeded and what it printed (stdout, then stderr).
pub(crate) async fn openssl(args: Vec<String>) -> (bool, String) {
    tokio::task::spawn_blocking(move || {
        let output = std::process::Command::new("openssl")
            .args(&args)
            .output()
            .expect("the openssl command line must be installed");
        (
            output.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        )
    })
    .await
    .unwrap()
}

pub(crate) fn path(p: &Path) -> String {
    p.display().to_string()
}
