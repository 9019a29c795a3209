//! `api projections …` against a fresh database: status prints one JSON object per line,
//! verify and replay work for every registered read model (here `device_stats`, which the
//! live projector never filled), and every action is recorded in `operator_actions`.

use std::process::Output;

use serde_json::Value;

use crate::helpers::*;

fn projections_command(database_url: &str, args: &[&str]) -> Output {
    let args: Vec<&str> = std::iter::once("projections")
        .chain(args.iter().copied())
        .collect();
    crate::helpers::operator_command(database_url, &args)
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

#[tokio::test]
async fn the_operators_commands_verify_and_replay_device_stats_and_are_recorded() {
    let app = spawn_app().await;
    for _ in 0..3 {
        app.registered_device().await;
    }
    let url = &app.database_url;

    let status = projections_command(url, &["status"]);
    assert!(status.status.success(), "{status:?}");
    let lines: Vec<Value> = stdout(&status)
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect();
    let names: Vec<&str> = lines.iter().map(|s| s["name"].as_str().unwrap()).collect();
    let registered: Vec<&str> = projections::registered().map(|p| p.name()).collect();
    assert_eq!(names, registered);
    assert_eq!(&names[..2], ["device_view", "device_stats"]);
    assert_eq!(lines[1]["lag_events"], 3);

    // Nothing projected device_stats yet: verify says so, a replay from the start fills it.
    let verify = projections_command(url, &["verify", "device_stats"]);
    assert_eq!(verify.status.code(), Some(1), "{verify:?}");
    assert!(
        stdout(&verify).contains("device_stats: 3 devices, 3 events, 4 differences"),
        "{verify:?}"
    );
    let replay = projections_command(
        url,
        &["replay", "device_stats", "--from", "2000-01-01T00:00:00Z"],
    );
    assert!(replay.status.success(), "{replay:?}");
    assert_eq!(
        stdout(&replay).trim(),
        "device_stats: replayed 3 devices (3 events), repaired 3"
    );
    let verify = projections_command(url, &["verify", "device_stats"]);
    assert!(verify.status.success(), "{verify:?}");
    let counts: Vec<(String, i64)> = sqlx::query_as("SELECT status, devices FROM device_stats")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(counts, [("pending".to_owned(), 3)]);

    let rebuild = projections_command(url, &["rebuild", "device_view", "--batch", "2"]);
    assert!(rebuild.status.success(), "{rebuild:?}");
    assert!(stdout(&rebuild).contains("device_view: rebuilt from 3 events"));
    let cancel = projections_command(url, &["cancel", "device_view"]);
    assert!(!cancel.status.success());
    assert!(
        stderr(&cancel).contains("no rebuild of device_view is running"),
        "{cancel:?}"
    );
    let unknown = projections_command(url, &["verify", "no_such_view"]);
    assert!(!unknown.status.success());
    assert!(
        stderr(&unknown)
            .contains("no projection named \"no_such_view\"; known: device_view, device_stats"),
        "{unknown:?}"
    );

    let actions: Vec<(String, String, String)> =
        sqlx::query_as("SELECT actor, action, target FROM operator_actions ORDER BY at, id")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    let expected = [
        ("verify", "projection:device_stats"),
        ("replay", "projection:device_stats"),
        ("verify", "projection:device_stats"),
        ("rebuild", "projection:device_view"),
        ("cancel_rebuild", "projection:device_view"),
    ]
    .map(|(action, target)| {
        (
            "cli:tester".to_owned(),
            action.to_owned(),
            target.to_owned(),
        )
    });
    assert_eq!(actions, expected);
}
