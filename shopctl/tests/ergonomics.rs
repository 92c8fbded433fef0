//! What an operator's terminal gets: completion scripts that load in their shells and
//! offer shopctl's own names, manual pages that render, tables that fit the width they
//! are given, and progress drawn on a terminal but never into a pipe.

mod support;

use std::process::Command;

use shopmicro_common::testing::TestDatabase;
use support::{Scratch, Shopctl};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `shopctl completion SHELL` written to a file in `scratch`.
fn completion(scratch: &Scratch, shell: &str) -> std::path::PathBuf {
    let output = Shopctl::new(&["completion", shell]).output();
    assert!(output.status.success(), "{}", text(&output.stderr));
    let path = scratch.path(&format!("shopctl.{shell}"));
    std::fs::write(&path, &output.stdout).unwrap();
    path
}

/// What bash offers for the words typed so far (the last one being completed).
fn bash_offers(script: &std::path::Path, words: &[&str]) -> Vec<String> {
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let program = format!(
        r#"source '{script}'
COMP_WORDS=({words})
COMP_CWORD={cword}
COMP_LINE="${{COMP_WORDS[*]}}"
COMP_POINT=${{#COMP_LINE}}
_shopctl shopctl "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
printf '%s\n' "${{COMPREPLY[@]}}""#,
        script = script.display(),
        words = quoted.join(" "),
        cword = words.len() - 1,
    );
    let output = Command::new("bash")
        .arg("-c")
        .arg(program)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    text(&output.stdout).lines().map(str::to_owned).collect()
}

#[test]
fn bash_completes_subcommands_environments_runbooks_and_services() {
    let scratch = Scratch::new();
    let script = completion(&scratch, "bash");
    let registered = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source '{}' && complete -p shopctl",
            script.display()
        ))
        .output()
        .unwrap();
    assert!(
        registered.status.success(),
        "the script registers a completion for shopctl: {}",
        text(&registered.stderr)
    );

    let subcommands = bash_offers(&script, &["shopctl", "ro"]);
    assert_eq!(subcommands, ["rollback"], "{subcommands:?}");
    let environments = bash_offers(&script, &["shopctl", "status", "--env", ""]);
    for env in ["local", "dev", "prod"] {
        assert!(environments.contains(&env.to_owned()), "{environments:?}");
    }
    let runbooks = bash_offers(&script, &["shopctl", "runbook", "run", "back"]);
    assert_eq!(runbooks, ["backend-outage"], "{runbooks:?}");
    let services = bash_offers(&script, &["shopctl", "restart", ""]);
    assert!(
        ["frontend", "backend", "ml"]
            .iter()
            .all(|s| services.contains(&(*s).to_owned())),
        "{services:?}"
    );
}

#[test]
fn zsh_fish_and_powershell_scripts_are_generated_and_zsh_parses_its_own() {
    let scratch = Scratch::new();
    let zsh = completion(&scratch, "zsh");
    let parsed = Command::new("zsh")
        .arg("-n")
        .arg(&zsh)
        .output()
        .expect("zsh is installed (the README's test command installs it)");
    assert!(parsed.status.success(), "{}", text(&parsed.stderr));
    let loaded = Command::new("zsh")
        .arg("-c")
        .arg(format!(
            "autoload -U compinit && compinit -u && source '{}' && whence -w _shopctl",
            zsh.display()
        ))
        .env("HOME", scratch.path(""))
        .output()
        .unwrap();
    assert!(
        text(&loaded.stdout).contains("_shopctl: function"),
        "{}{}",
        text(&loaded.stdout),
        text(&loaded.stderr)
    );
    let script = std::fs::read_to_string(&zsh).unwrap();
    assert!(script.contains("backend-outage"), "runbooks are offered");
    for shell in ["fish", "powershell"] {
        let script = std::fs::read_to_string(completion(&scratch, shell)).unwrap();
        assert!(
            script.contains("shopctl") && script.contains("rollback"),
            "{shell}"
        );
    }
}

#[test]
fn manual_pages_render_for_shopctl_and_each_subcommand() {
    let scratch = Scratch::new();
    let dir = scratch.path("man");
    let written = Shopctl::new(&["man", "--out", dir.to_str().unwrap()]).output();
    assert!(written.status.success(), "{}", text(&written.stderr));
    for page in [
        "shopctl.1",
        "shopctl-backup.1",
        "shopctl-runbook.1",
        "shopctl-completion.1",
    ] {
        assert!(dir.join(page).is_file(), "{page}");
    }
    let rendered = Command::new("man")
        .args(["-P", "cat", "-l"])
        .arg(dir.join("shopctl-rollback.1"))
        .env("MANWIDTH", "80")
        .output()
        .unwrap();
    assert!(rendered.status.success(), "{}", text(&rendered.stderr));
    let page = text(&rendered.stdout);
    for section in ["NAME", "SYNOPSIS", "OPTIONS", "--service"] {
        assert!(page.contains(section), "{section}:\n{page}");
    }
    let printed = Shopctl::new(&["man"]).output();
    assert!(
        text(&printed.stdout).contains(".TH shopctl 1"),
        "shopctl(1) in roff on stdout"
    );
}

#[test]
fn tables_fit_the_width_they_are_given_and_use_the_content_width_in_a_pipe() {
    let widest = |columns: Option<&str>| {
        let shopctl = Shopctl::new(&["runbook", "list"]);
        let output = match columns {
            Some(width) => shopctl.env("COLUMNS", width),
            None => shopctl.env_remove("COLUMNS"),
        }
        .output();
        assert!(output.status.success(), "{}", text(&output.stderr));
        text(&output.stdout)
            .lines()
            .map(|line| line.chars().count())
            .max()
            .unwrap()
    };
    let natural = widest(None);
    assert!(
        natural > 60,
        "the list is wider than 60 columns unwrapped: {natural}"
    );
    assert!(widest(Some("60")) <= 60);
    assert!(widest(Some("100")) <= 100);
}

/// The output of `shopctl ARGS` run on a pseudo-terminal (`script` gives it one), with
/// `NO_COLOR` set or not.
fn on_a_terminal(args: &[&str], no_color: bool) -> String {
    let line = std::iter::once(env!("CARGO_BIN_EXE_shopctl"))
        .chain(args.iter().copied())
        .map(|word| format!("'{word}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut script = Command::new("script");
    script
        .args(["-qec", &line, "/dev/null"])
        .env_remove("NO_COLOR")
        .env_remove("DATABASE_URL");
    if no_color {
        script.env("NO_COLOR", "1");
    }
    let output = script.output().expect("script (util-linux) runs");
    assert!(output.status.success(), "{}", text(&output.stdout));
    text(&output.stdout)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_draws_progress_on_a_terminal_and_plain_lines_in_a_pipe() {
    let database = TestDatabase::create().await;
    let scratch = Scratch::new();
    let into = |name: &str| scratch.path(name).to_str().unwrap().to_owned();

    let piped = Shopctl::new(&[
        "db",
        "backup",
        "--database-url",
        database.url(),
        "--to",
        &into("piped"),
    ])
    .output();
    assert!(piped.status.success(), "{}", text(&piped.stderr));
    let stderr = text(&piped.stderr);
    assert!(
        stderr.contains("… dumping (pg_dump)"),
        "a line per phase: {stderr}"
    );
    assert!(
        !stderr.contains('\r') && !stderr.contains('\x1b'),
        "no control characters in a pipe: {stderr:?}"
    );

    let backup_into = |dir: &str| {
        [
            "db".to_owned(),
            "backup".to_owned(),
            "--database-url".to_owned(),
            database.url().to_owned(),
            "--to".to_owned(),
            into(dir),
        ]
    };
    let drawn = on_a_terminal(&backup_into("drawn").each_ref().map(String::as_str), false);
    assert!(drawn.contains("dumping (pg_dump)"), "{drawn:?}");
    assert!(
        drawn.contains("\x1b[2K"),
        "a spinner is drawn and cleared on a terminal: {drawn:?}"
    );
    assert!(
        !drawn.contains("… dumping"),
        "no plain lines on a terminal: {drawn:?}"
    );

    // NO_COLOR asks for plain output, on a terminal too.
    let plain = on_a_terminal(&backup_into("plain").each_ref().map(String::as_str), true);
    assert!(plain.contains("… dumping (pg_dump)"), "{plain:?}");
    assert!(!plain.contains("\x1b[2K"), "{plain:?}");
}
