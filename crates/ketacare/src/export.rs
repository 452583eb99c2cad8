//! `ketacare export`.

use ketacare::Config;

/// Options of `ketacare export`.
#[derive(clap::Args)]
pub struct ExportArgs {}

/// Runs `ketacare export`.
pub async fn run(_config: &Config, _args: &ExportArgs) -> anyhow::Result<()> {
    anyhow::bail!("ketacare export is not available in this build")
}
