//! OpenSSL, the relying party of the certificate-status tests: its command line run off the
//! test's runtime (the api under test is served on it).

use std::path::Path;

/// Runs `openssl args…` off the runtime (the api is served on this test's runtime);
/// returns whether it succeeded and what it printed (stdout, then stderr).
pub(crate) async fn openssl(args: Vec<String>) -> (bool, String) {
    let mut command = std::process::Command::new("openssl");
    command.args(args);
    run(command).await
}

/// Runs `script` with `sh` in `dir`, off the runtime, as [`openssl`] runs OpenSSL: for
/// recipes that pipe OpenSSL and curl together as a user would.
pub(crate) async fn shell(dir: &Path, script: String) -> (bool, String) {
    let mut command = std::process::Command::new("sh");
    command.args(["-c", &script]).current_dir(dir);
    run(command).await
}

async fn run(mut command: std::process::Command) -> (bool, String) {
    tokio::task::spawn_blocking(move || {
        let output = command
            .output()
            .expect("openssl, curl and sh must be installed");
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
