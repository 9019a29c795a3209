//! Runs a service binary that should refuse to start, and says what it printed.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `command` (the `what` binary) until it exits, at most `within`: what it printed
/// (stdout, stderr). Fails the test if it exited successfully, or if it still runs then (it
/// started when it should have refused: stopped with SIGTERM so that its log is flushed, and
/// shown).
pub fn refused_start(mut command: Command, what: &str, within: Duration) -> (String, String) {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run the {what}: {e}"));
    // Read as it comes: a full pipe would stall the process.
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > within {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
    match status {
        None => panic!(
            "the {what} did not refuse to start within {within:?}\nstdout:\n{stdout}\nstderr:\n{stderr}"
        ),
        Some(status) => assert!(
            !status.success(),
            "the {what} exited successfully\nstdout:\n{stdout}\nstderr:\n{stderr}"
        ),
    }
    (stdout, stderr)
}
