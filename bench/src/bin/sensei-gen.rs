//! `sensei-gen`: writes the legacy retail SQLite database.

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "sensei-gen",
    about = "Generate the legacy retail SQLite database (deterministic)"
)]
struct Args {
    /// Output file.
    #[arg(long, default_value = "examples/retail/retail.db")]
    out: std::path::PathBuf,
    /// Size factor: 1 is a few thousand rows, 1000 is millions.
    #[arg(long, default_value_t = 1)]
    scale: u64,
    /// Seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    if let Some(dir) = a.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let rows = sensei_bench::retail::generate(
        &a.out,
        sensei_bench::retail::RetailSize::scaled(a.scale),
        a.seed,
    )?;
    println!("wrote {rows} rows to {}", a.out.display());
    Ok(())
}
