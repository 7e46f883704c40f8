//! # sensei-proto
//!
//! The wire contract of Sensei's control plane: protobuf messages and the tonic
//! client and server for the scheduler service (`proto/sensei.proto`). Workers
//! register, lease tasks, heartbeat and report completions through it; the CLI
//! submits migrations and reads status. Row data never crosses this API: record
//! batches move between nodes over Arrow Flight (see `sensei-flight`).
//!
//! ```no_run
//! use sensei_proto::v1::scheduler_client::SchedulerClient;
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! let mut client = SchedulerClient::connect("http://127.0.0.1:50051").await?;
//! let status = client
//!     .cluster_status(sensei_proto::v1::ClusterStatusRequest {})
//!     .await?;
//! println!("{}", status.into_inner().status_json);
//! # Ok(()) }
//! ```

/// Version 1 of the control-plane protocol.
#[allow(missing_docs, clippy::all)]
pub mod v1 {
    tonic::include_proto!("sensei.v1");
}
