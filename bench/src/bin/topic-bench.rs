//! `topic-bench`: appends N event documents (the scheduler's shape) to a
//! topic backend and reads them back, printing appends per second and reads
//! per second as one JSON line; `bench/kafka/run` runs it on the embedded
//! log and on a Kafka broker side by side.

use std::time::Instant;

use clap::Parser;
use sensei_runtime::topic::Topic;

#[derive(Parser)]
#[command(
    name = "topic-bench",
    about = "Append and read throughput of a topic backend"
)]
struct Args {
    /// `embedded` or `kafka://HOST:PORT`.
    #[arg(long, default_value = "embedded")]
    topics: String,
    /// Folder of the embedded log.
    #[arg(long, default_value = "topic-bench")]
    dir: std::path::PathBuf,
    /// Records to append.
    #[arg(long, default_value_t = 2000)]
    n: u64,
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let settings = sensei_runtime::config::TopicsSection {
        replication: 1,
        min_insync_replicas: 1,
        ..Default::default()
    };
    let log = sensei_runtime::topic::open(&a.topics, &settings, &a.dir)?;
    let key = format!("bench-{}", std::process::id());
    let start = log.read(Topic::MigrationEvents, 0, usize::MAX)?.len() as u64;
    let t0 = Instant::now();
    let mut first = None;
    for i in 0..a.n {
        let doc = serde_json::json!({"migration_id": key, "level": "info",
            "message": format!("task {i} (ingestion orders partition {i}) done"), "time_ms": i});
        let offset =
            sensei_runtime::topic::publish_json(log.as_ref(), Topic::MigrationEvents, &key, &doc)?;
        first.get_or_insert(offset);
    }
    let append_s = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let from = first.unwrap_or(start);
    let mut read = 0u64;
    while read < a.n {
        let got = log.read(Topic::MigrationEvents, from + read, 1000)?;
        anyhow::ensure!(!got.is_empty(), "read back {read} of {} records", a.n);
        read += got.iter().filter(|r| r.key == key).count() as u64;
    }
    let read_s = t1.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({"backend": a.topics, "records": a.n,
            "append_per_s": (a.n as f64 / append_s).round(), "read_per_s": (read as f64 / read_s).round()})
    );
    Ok(())
}
