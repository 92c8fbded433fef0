//! The one confirmation prompt for destructive commands: the operator types the
//! environment's name (as with deleting a repository), or passes `--yes`. Without a
//! terminal and without `--yes`, the command refuses: CI never waits on a prompt.

use std::io::IsTerminal;

/// Asks before `action` (a sentence such as "delete all local data in …") on environment
/// `env`. `yes` skips the question.
pub fn by_typing_the_name(env: &str, action: &str, yes: bool) -> anyhow::Result<()> {
    if yes {
        return Ok(());
    }
    anyhow::ensure!(
        std::io::stdin().is_terminal(),
        "this would {action}; add --yes to confirm non-interactively"
    );
    eprint!("{action}? type the environment name to confirm: ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    anyhow::ensure!(answer.trim() == env, "not confirmed; nothing changed");
    Ok(())
}
