//! `shopctl`: one binary to operate ShopMicro. Subcommands arrive with the issues that
//! build them; for now it identifies itself.

use clap::Parser;

/// Operate the ShopMicro platform: provision, render, apply, validate, back up, restore,
/// roll back and run runbooks.
#[derive(Debug, Parser)]
#[command(name = "shopctl", version, about, long_about = None)]
struct Cli {}

fn main() {
    Cli::parse();
}
