//! `ketacare synth`.

use ketacare::Config;

/// Options of `ketacare synth`.
#[derive(clap::Args)]
pub struct SynthArgs {}

/// Runs `ketacare synth`.
pub async fn run(_config: &Config, _args: &SynthArgs) -> anyhow::Result<()> {
    anyhow::bail!("ketacare synth is not available in this build")
}
