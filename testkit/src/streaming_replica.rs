//! A Postgres primary and a streaming replica of it, both private to one test: a cluster made
//! with `initdb` on a free loopback port, and a second one made from it with `pg_basebackup`
//! (`-R`: it follows the primary), on another port. The machine's Postgres is not touched
//! (its `pg_hba.conf` allows no replication). Postgres refuses to run as root, so as root the
//! clusters belong to, and run as, the `postgres` user.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub struct StreamingReplica {
    dir: PathBuf,
    pub primary_url: String,
    pub replica_url: String,
    clusters: Vec<PathBuf>,
}

/// The newest installed server binaries (Debian: `/usr/lib/postgresql/<major>/bin`).
fn postgres_bin(tool: &str) -> PathBuf {
    let mut majors: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL's server binaries are installed (scripts/services)")
        .flatten()
        .map(|e| e.path())
        .collect();
    majors.sort();
    majors
        .pop()
        .expect("a PostgreSQL version")
        .join("bin")
        .join(tool)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Runs a server tool, as `postgres` when we are root; panics with its output on failure.
fn run(tool: &str, args: &[&str]) {
    let binary = postgres_bin(tool);
    let output = if is_root() {
        Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(&binary)
            .args(args)
            .output()
    } else {
        Command::new(&binary).args(args).output()
    }
    .unwrap_or_else(|e| panic!("{}: {e}", binary.display()));
    assert!(
        output.status.success(),
        "{tool} {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(cluster: &Path, port: u16) {
    let socket_dir = cluster.to_str().unwrap();
    let options = format!("-p {port} -c listen_addresses=127.0.0.1 -k {socket_dir}");
    let log = cluster.with_extension("log");
    run(
        "pg_ctl",
        &[
            "-D",
            cluster.to_str().unwrap(),
            "-o",
            &options,
            "-l",
            log.to_str().unwrap(),
            "-w",
            "start",
        ],
    );
}

impl StreamingReplica {
    /// Both clusters, running: the primary's URL and the replica's (database `postgres`,
    /// user `postgres`, trust).
    pub fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("dp-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        if is_root() {
            let status = Command::new("chown")
                .args(["postgres:postgres", dir.to_str().unwrap()])
                .status()
                .unwrap();
            assert!(status.success());
        }
        let (primary, replica) = (dir.join("primary"), dir.join("replica"));
        let (primary_port, replica_port) = (free_port(), free_port());
        run(
            "initdb",
            &[
                "-D",
                primary.to_str().unwrap(),
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
            ],
        );
        start(&primary, primary_port);
        let primary_port_text = primary_port.to_string();
        run(
            "pg_basebackup",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &primary_port_text,
                "-U",
                "postgres",
                "-D",
                replica.to_str().unwrap(),
                "-R",
                "-X",
                "stream",
                "--no-sync",
            ],
        );
        start(&replica, replica_port);
        let url =
            |port: u16| format!("postgres://postgres@127.0.0.1:{port}/postgres?sslmode=disable");
        Self {
            dir,
            primary_url: url(primary_port),
            replica_url: url(replica_port),
            clusters: vec![replica, primary],
        }
    }

    /// Until the replica has replayed everything the primary wrote so far.
    pub async fn caught_up(&self, primary: &sqlx::PgPool, replica: &sqlx::PgPool) {
        let target: String = sqlx::query_scalar("SELECT pg_current_wal_lsn()::text")
            .fetch_one(primary)
            .await
            .unwrap();
        let started = Instant::now();
        loop {
            let replayed: bool =
                sqlx::query_scalar("SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn")
                    .bind(&target)
                    .fetch_one(replica)
                    .await
                    .unwrap();
            if replayed {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the replica never caught up"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for StreamingReplica {
    fn drop(&mut self) {
        for cluster in &self.clusters {
            let _ = std::panic::catch_unwind(|| {
                run(
                    "pg_ctl",
                    &["-D", cluster.to_str().unwrap(), "-m", "immediate", "stop"],
                )
            });
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
