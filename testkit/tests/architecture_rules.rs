//! ARCHITECTURE.md's dependency rules are true of the Cargo.toml files: every dependency
//! between the workspace's crates is one its table allows (and every edge the table draws
//! exists), and the libraries it reserves to some crates appear in no other crate's
//! `[dependencies]`, nor in its sources (reached through another crate's re-export or type).
//! Like the OpenAPI drift test: change the table and the manifests together.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit sits in the workspace")
        .to_path_buf()
}

/// A dependency section of a manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Section {
    Normal,
    Dev,
}

/// The dependencies each section of `manifest` names (their keys).
fn dependencies(manifest: &str) -> BTreeMap<Section, BTreeSet<String>> {
    let mut found: BTreeMap<Section, BTreeSet<String>> = BTreeMap::new();
    let mut section = None;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            let header = line.trim_matches(|c| c == '[' || c == ']');
            section = match header {
                "dependencies" | "build-dependencies" => Some(Section::Normal),
                "dev-dependencies" => Some(Section::Dev),
                _ => None,
            };
            continue;
        }
        let Some(section) = section else { continue };
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        // `name = …`, `name.workspace = true`, `name = { … }`
        let key = line
            .split(['=', '.'])
            .next()
            .unwrap_or_default()
            .trim()
            .trim_matches('"');
        if !key.is_empty() {
            found.entry(section).or_default().insert(key.to_owned());
        }
    }
    found
}

/// The workspace's members, from the root manifest.
fn members(root: &Path) -> Vec<String> {
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let line = manifest
        .lines()
        .find(|l| l.trim_start().starts_with("members"))
        .expect("a members list");
    line.split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// The rows of the Markdown table whose header's first cell is `first_header`: for each row,
/// the backticked names in each cell (`—` is none).
fn table(document: &str, first_header: &str) -> Vec<Vec<BTreeSet<String>>> {
    let mut lines = document.lines().skip_while(|l| {
        !l.trim_start()
            .strip_prefix('|')
            .is_some_and(|rest| rest.trim_start().starts_with(first_header))
    });
    assert!(
        lines.next().is_some(),
        "ARCHITECTURE.md has no table headed {first_header:?}"
    );
    lines
        .skip(1) // the |---| line
        .take_while(|l| l.trim_start().starts_with('|'))
        .map(|row| {
            row.trim()
                .trim_matches('|')
                .split('|')
                .map(|cell| {
                    cell.split('`')
                        .skip(1)
                        .step_by(2)
                        .map(str::to_owned)
                        .collect()
                })
                .collect()
        })
        .collect()
}

fn single(cell: &BTreeSet<String>) -> String {
    assert_eq!(
        cell.len(),
        1,
        "one name in the first cell of a row: {cell:?}"
    );
    cell.iter().next().unwrap().clone()
}

#[test]
fn the_crates_depend_on_each_other_and_on_libraries_only_as_architecture_md_allows() {
    let root = workspace_root();
    let architecture = std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap();
    let members = members(&root);
    let workspace: BTreeSet<String> = members.iter().cloned().collect();
    let manifests: BTreeMap<&String, BTreeMap<Section, BTreeSet<String>>> = members
        .iter()
        .map(|m| {
            let manifest = std::fs::read_to_string(root.join(m).join("Cargo.toml")).unwrap();
            (m, dependencies(&manifest))
        })
        .collect();

    // | crate | depends on | and in its tests on | …
    let mut allowed: BTreeMap<String, BTreeMap<Section, BTreeSet<String>>> = BTreeMap::new();
    for row in table(&architecture, "crate") {
        allowed.insert(
            single(&row[0]),
            BTreeMap::from([
                (Section::Normal, row[1].clone()),
                (Section::Dev, row[2].clone()),
            ]),
        );
    }
    assert_eq!(
        allowed.keys().cloned().collect::<BTreeSet<_>>(),
        workspace,
        "ARCHITECTURE.md's crate table must have one row per workspace crate"
    );

    let mut problems = Vec::new();
    for (member, found) in &manifests {
        for section in [Section::Normal, Section::Dev] {
            let on_workspace: BTreeSet<String> = found
                .get(&section)
                .into_iter()
                .flatten()
                .filter(|d| workspace.contains(*d))
                .cloned()
                .collect();
            let drawn = &allowed[*member][&section];
            for edge in on_workspace.difference(drawn) {
                problems.push(format!(
                    "{member} depends on {edge} ({section:?}), which ARCHITECTURE.md does not allow"
                ));
            }
            for edge in drawn.difference(&on_workspace) {
                problems.push(format!(
                    "ARCHITECTURE.md says {member} depends on {edge} ({section:?}); its Cargo.toml does not"
                ));
            }
        }
    }

    // | library | only in |
    for row in table(&architecture, "library") {
        let library = single(&row[0]);
        let holders = &row[1];
        for (member, found) in &manifests {
            let normal = found.get(&Section::Normal);
            if normal.is_some_and(|n| n.contains(&library)) && !holders.contains(*member) {
                problems.push(format!(
                    "{member} depends on {library}, which ARCHITECTURE.md reserves to {holders:?}"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_manifest_reader_sees_every_form_of_dependency() {
    let found = dependencies(
        "[package]\nname = \"x\"\n\n[dependencies]\napp.workspace = true\n\
         app2 = { workspace = true, features = [\"openapi\"] }\nserde = \"1\"\n\n\
         [dev-dependencies]\n# a comment\ntestkit.workspace = true\n\n[features]\nopenapi = []\n",
    );
    assert_eq!(
        found[&Section::Normal],
        BTreeSet::from(["app".into(), "app2".into(), "serde".into()])
    );
    assert_eq!(found[&Section::Dev], BTreeSet::from(["testkit".into()]));
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return files;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// Whether `code` has `verb` directly followed by `table` (and then something that cannot
/// continue its name), for any of `verbs`.
fn names_after(code: &str, verbs: &[&str], table: &str) -> bool {
    verbs.iter().any(|verb| {
        let statement = format!("{verb}{table}");
        code.match_indices(&statement).any(|(at, _)| {
            code[at + statement.len()..]
                .chars()
                .next()
                .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_'))
        })
    })
}

/// Whether `code` writes `table`: `INSERT INTO`, `UPDATE`, `DELETE FROM` or `TRUNCATE` it.
fn writes(code: &str, table: &str) -> bool {
    names_after(
        code,
        &["INSERT INTO ", "UPDATE ", "DELETE FROM ", "TRUNCATE "],
        table,
    )
}

/// Whether `code` reads `table`: selects `FROM` it or `JOIN`s it (a write's own `FROM`, e.g.
/// `DELETE FROM`, counts as the write). SQL keywords are upper case in this code base, which
/// keeps prose ("folded from events") out.
fn reads(code: &str, table: &str) -> bool {
    let without_deletes = code.replace("DELETE FROM ", "DELETE ");
    names_after(&without_deletes, &["FROM ", "JOIN "], table)
}

#[test]
fn each_table_is_written_and_read_by_the_one_crate_architecture_md_names() {
    let root = workspace_root();
    let architecture = std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap();
    let members = members(&root);
    let rows = table(&architecture, "table");
    assert!(!rows.is_empty());
    let mut problems = Vec::new();
    for row in rows {
        let (table, owner) = (single(&row[0]), single(&row[1]));
        for member in members.iter().filter(|m| **m != owner) {
            for file in rust_files(&root.join(member).join("src")) {
                let code = std::fs::read_to_string(&file).unwrap();
                if writes(&code, &table) {
                    problems.push(format!(
                        "{} writes {table}, which only {owner} may write",
                        file.display()
                    ));
                }
                if reads(&code, &table) {
                    problems.push(format!(
                        "{} reads {table}, which only {owner} may read (others go through its API)",
                        file.display()
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Whether `code` names the crate `library` (`async-nats` is `async_nats` in code): a path
/// through it (`async_nats::…`), not a longer name that ends with it (`tokio_async_nats::`).
fn names_crate(code: &str, library: &str) -> bool {
    let path = format!("{}::", library.replace('-', "_"));
    code.match_indices(&path).any(|(at, _)| {
        code[..at]
            .chars()
            .next_back()
            .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_'))
    })
}

/// `code` up to its unit tests (a `#[cfg(test)]` module comes last, by convention): in tests
/// any crate may use any library.
fn outside_unit_tests(code: &str) -> &str {
    code.find("#[cfg(test)]").map_or(code, |at| &code[..at])
}

#[test]
fn a_library_reserved_to_some_crates_is_named_in_no_other_crates_sources() {
    let root = workspace_root();
    let architecture = std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap();
    let members = members(&root);
    let mut problems = Vec::new();
    // | library | only in |
    for row in table(&architecture, "library") {
        let (library, holders) = (single(&row[0]), &row[1]);
        for member in members.iter().filter(|m| !holders.contains(*m)) {
            for file in rust_files(&root.join(member).join("src")) {
                let code = std::fs::read_to_string(&file).unwrap();
                if names_crate(outside_unit_tests(&code), &library) {
                    problems.push(format!(
                        "{} uses {library}, which ARCHITECTURE.md reserves to {holders:?}",
                        file.display()
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn a_crate_path_is_told_from_a_longer_name() {
    assert!(names_crate("use async_nats::jetstream;", "async-nats"));
    assert!(names_crate("(async_nats::Client)", "async-nats"));
    assert!(!names_crate("use tokio_rustls::TlsAcceptor;", "rustls"));
    assert!(!names_crate("no async-nats here", "async-nats"));
}

#[test]
fn the_sql_reader_tells_reads_from_writes() {
    assert!(reads("SELECT count(*) FROM events WHERE", "events"));
    assert!(reads("FROM device_view v JOIN events e ON", "events"));
    assert!(!reads("SELECT 1 FROM events_by_type", "events"));
    assert!(!reads("DELETE FROM events WHERE", "events"));
    assert!(writes("DELETE FROM events WHERE", "events"));
    assert!(writes("INSERT INTO events (", "events"));
    assert!(!writes("INSERT INTO events_x (", "events"));
}

#[test]
fn a_write_is_told_from_a_longer_table_name() {
    assert!(writes("INSERT INTO events (a)", "events"));
    assert!(writes("UPDATE dead_letters SET", "dead_letters"));
    assert!(!writes("INSERT INTO events_archive (a)", "events"));
    assert!(!writes("SELECT * FROM events", "events"));
}
