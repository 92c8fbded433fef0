//! The one confirmation prompt for destructive commands: the operator types a word that
//! names what goes (the environment, the database, "yes"), or passes `--yes`. Without a
//! terminal and without `--yes`, the command refuses: CI never waits on a prompt.

use std::io::{IsTerminal, Write};

/// Asks before `action` (a phrase such as "delete 3 backups"); the operator confirms by
/// typing `expected`. `yes` skips the question.
pub fn by_typing(action: &str, expected: &str, yes: bool) -> anyhow::Result<()> {
    if yes {
        return Ok(());
    }
    prompt(action, expected, "--yes")
}

/// The question itself, for commands confirmed by a flag other than `--yes` (`infra
/// destroy --confirm <env>`): the refusal without a terminal names that flag.
pub fn prompt(action: &str, expected: &str, flag: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        std::io::stdin().is_terminal(),
        "this would {action}; add {flag} to confirm non-interactively"
    );
    eprint!("{action}? type `{expected}` to confirm: ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    anyhow::ensure!(answer.trim() == expected, "not confirmed; nothing changed");
    Ok(())
}

/// Asks before `action` on environment `env`, confirmed by typing its name (as with
/// deleting a repository).
pub fn by_typing_the_name(env: &str, action: &str, yes: bool) -> anyhow::Result<()> {
    by_typing(action, env, yes)
}
