//! The docs are a promise: every configuration key is documented in
//! `docs/operations.md` and every documented key exists (the documented
//! blocks parse as a configuration, unknown keys refused), and every
//! signalling method and event is in `docs/protocol.md`'s tables, and the
//! tables list nothing else.

use std::collections::BTreeSet;

use mafalda::config::Config;
use mafalda::signalling::{EVENTS, METHODS};

fn doc(name: &str) -> String {
    let path = format!("{}/docs/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The ```toml blocks of a Markdown document.
fn toml_blocks(md: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in md.lines() {
        match (&mut current, line.trim_start()) {
            (None, l) if l.starts_with("```toml") => current = Some(String::new()),
            (Some(_), l) if l.starts_with("```") => blocks.extend(current.take()),
            (Some(b), _) => {
                b.push_str(line);
                b.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

/// `section.key` of every key a block documents, commented-out ones
/// (`# key = value`) included.
fn documented_keys(block: &str) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    let mut section = String::new();
    for line in block.lines() {
        let l = line.trim();
        if let Some(s) = l.strip_prefix('[').and_then(|s| s.split(']').next()) {
            section = s.to_owned();
            continue;
        }
        let l = l.strip_prefix('#').map_or(l, str::trim_start);
        if let Some((key, _)) = l.split_once('=') {
            let key = key.trim();
            if !key.is_empty() && key.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                keys.insert(format!("{section}.{key}"));
            }
        }
    }
    keys
}

/// `section.key` of every key the configuration struct writes out.
fn config_keys() -> BTreeSet<String> {
    let text = toml::to_string(&Config::default()).expect("the default config serialises");
    let value: toml::Table = text.parse().expect("it parses back");
    let mut keys = BTreeSet::new();
    for (section, table) in value {
        if let toml::Value::Table(t) = table {
            for key in t.keys() {
                keys.insert(format!("{section}.{key}"));
            }
        }
    }
    keys
}

#[test]
fn the_generated_default_file_is_the_default_config() {
    // What `mafalda config default` prints.
    let text = toml::to_string_pretty(&Config::default()).expect("serialises");
    assert_eq!(Config::from_toml(&text).expect("parses"), Config::default());
}

#[test]
fn every_config_key_is_documented_and_every_documented_key_exists() {
    let md = doc("operations.md");
    let blocks = toml_blocks(&md);
    assert!(!blocks.is_empty(), "operations.md has no ```toml block");
    let mut documented = BTreeSet::new();
    for block in &blocks {
        // Every block is a valid configuration: an unknown or misspelt key
        // (or a wrong type) fails here. Commented-out keys are checked by
        // uncommenting them.
        let uncommented: String = block
            .lines()
            .map(|l| match l.trim_start().strip_prefix("# ") {
                Some(rest)
                    if rest.split_once('=').is_some_and(|(k, _)| {
                        k.trim().chars().all(|c| c.is_ascii_lowercase() || c == '_')
                    }) =>
                {
                    rest.to_owned()
                }
                _ => l.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("\n");
        if let Err(e) = Config::from_toml(&uncommented) {
            panic!("a configuration block of operations.md does not parse: {e}\n{uncommented}");
        }
        documented.extend(documented_keys(block));
    }
    let missing: Vec<_> = config_keys().difference(&documented).cloned().collect();
    assert!(
        missing.is_empty(),
        "configuration keys missing from docs/operations.md: {missing:?}"
    );
}

/// The first cell of every row of the table under `heading`.
fn table_names(md: &str, heading: &str) -> BTreeSet<String> {
    let start = md
        .find(heading)
        .unwrap_or_else(|| panic!("no `{heading}` in docs/protocol.md"));
    let mut names = BTreeSet::new();
    let mut in_table = false;
    for line in md[start..].lines().skip(1) {
        if line.starts_with("#") {
            break;
        }
        if !line.starts_with('|') {
            if in_table {
                break;
            }
            continue;
        }
        in_table = true;
        let first = line.split('|').nth(1).unwrap_or("");
        for part in first.split('/') {
            let name = part.trim().trim_matches('`');
            if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric()) {
                names.insert(name.to_owned());
            }
        }
    }
    names
}

#[test]
fn every_signalling_method_and_event_is_documented_and_nothing_else() {
    let md = doc("protocol.md");
    let methods: BTreeSet<String> = METHODS.iter().map(|(m, _)| m.to_string()).collect();
    let documented = table_names(&md, "### Methods");
    // The header row's first cell ("method") is not a method.
    let documented: BTreeSet<String> = documented.into_iter().filter(|m| m != "method").collect();
    assert_eq!(
        methods, documented,
        "signalling methods in the code vs docs/protocol.md's Methods table"
    );
    let events: BTreeSet<String> = EVENTS.iter().map(|e| e.to_string()).collect();
    let documented: BTreeSet<String> = table_names(&md, "### Events")
        .into_iter()
        .filter(|e| e != "event")
        .collect();
    assert_eq!(
        events, documented,
        "signalling events in the code vs docs/protocol.md's Events table"
    );
}

#[test]
fn the_architecture_picture_is_rendered_from_its_checked_in_source() {
    let dot = format!("{}/docs/architecture.dot", env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new("sha256sum")
        .arg(&dot)
        .output()
        .expect("sha256sum runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let sum = text.split_whitespace().next().expect("a checksum");
    let svg = doc("architecture.svg");
    assert!(
        svg.contains(&format!("sha256 {sum}")),
        "docs/architecture.svg is not rendered from the current docs/architecture.dot: run `make docs`"
    );
    let readme = std::fs::read_to_string(format!("{}/README.md", env!("CARGO_MANIFEST_DIR")))
        .expect("README");
    assert!(
        readme.contains("docs/architecture.svg"),
        "the README shows the picture"
    );
}
