//! `lqctl seed`: write a NoCloud seed image.

/// Arguments of `lqctl seed`.
#[derive(Debug, clap::Args)]
pub struct SeedArgs {}

/// Runs `lqctl seed`.
pub fn run(_args: SeedArgs) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
