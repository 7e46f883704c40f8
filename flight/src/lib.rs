//! # sensei-flight
//!
//! How record batches move between Sensei processes. Every node keeps the
//! partitions it produced in a [`NodeStore`] (zstd Parquet files, see
//! [`parquet_io`]) and serves them with a [`NodeFlightService`]: DoGet streams a
//! partition by ticket (its id), DoPut stores one sent by a peer, ListFlights
//! and GetFlightInfo describe held partitions with this node's endpoint as
//! their location. [`PartitionClient`] is the other end. The scheduler only
//! hands out partition ids and the endpoints that hold them; the rows travel
//! here. Message limits are set explicitly on both ends
//! ([`MAX_FLIGHT_MESSAGE`]).
//!
//! The [`public`] endpoint is the other face: it serves verified datasets
//! (chosen by a [`public::Catalog`], the head's reading of the signed
//! certificates) to any Flight client that holds a token.
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! let secret = sensei_runtime::tokens::ClusterSecret::generate()?;
//! let client = sensei_flight::PartitionClient::connect("grpc://127.0.0.1:50061", &secret).await?;
//! let batches = client.get("retail-1a2b3c4d/ingestion/customers/0").await?;
//! # Ok(()) }
//! ```

mod client;
mod error;
pub mod parquet_io;
pub mod public;
mod service;
mod store;

pub use client::PartitionClient;
pub use error::{FlightError, Result};
pub use service::{NodeFlightService, MAX_FLIGHT_MESSAGE};
pub use store::{FlightCounters, NodeStore, PartitionEntry};

use std::net::SocketAddr;
use std::sync::Arc;

use sensei_runtime::tokens::ClusterSecret;

/// Starts a node's Flight server on `addr` (port 0 picks one); returns the
/// bound address. Every call must carry the cluster `secret` (the node
/// serves staging partitions to the other processes of its cluster, never
/// to anyone else). The server stops when `shutdown` resolves.
pub async fn serve(
    store: Arc<NodeStore>,
    secret: ClusterSecret,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<SocketAddr> {
    let addr = listener.local_addr().map_err(|e| FlightError::Peer {
        endpoint: "local".into(),
        message: e.to_string(),
    })?;
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let svc = tonic::service::interceptor::InterceptedService::new(
        NodeFlightService::new(store).into_server(),
        secret.interceptor(),
    );
    tokio::spawn(async move {
        if let Err(e) = tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await
        {
            tracing::error!(error = %e, "flight server stopped");
        }
    });
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::record_batch::RecordBatch;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn put_get_list_info_over_a_real_socket() {
        let dir = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("grpc://{}", listener.local_addr().unwrap());
        let store = Arc::new(NodeStore::new("n1", &endpoint, dir.path()));
        let secret = ClusterSecret::generate().unwrap();
        serve(
            store.clone(),
            secret.clone(),
            listener,
            std::future::pending(),
        )
        .await
        .unwrap();

        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from_iter_values(0..20_000)),
                Arc::new(StringArray::from_iter((0..20_000).map(|i| {
                    if i % 7 == 0 {
                        None
                    } else {
                        Some(format!("n{i}"))
                    }
                }))),
            ],
        )
        .unwrap();
        let client = PartitionClient::connect(&endpoint, &secret).await.unwrap();
        let stats = client
            .put("m/ingestion/t/0", schema.clone(), vec![batch.clone()])
            .await
            .unwrap();
        assert_eq!(stats.rows, 20_000);
        let got = client.get("m/ingestion/t/0").await.unwrap();
        let got = arrow::compute::concat_batches(&schema, &got).unwrap();
        assert_eq!(got, batch);
        let info = client.info("m/ingestion/t/0").await.unwrap();
        assert_eq!(info.total_records, 20_000);
        assert_eq!(info.endpoint[0].location[0].uri, endpoint);
        assert_eq!(client.list().await.unwrap().len(), 1);
        let missing = client.get("nope").await.unwrap_err().to_string();
        assert!(missing.contains("not held"), "{missing}");
        let stats = client.stats().await.unwrap();
        assert_eq!(stats["rows"], 20_000);

        // Without this cluster's secret, nothing is served.
        let stranger = PartitionClient::connect(&endpoint, &ClusterSecret::generate().unwrap())
            .await
            .unwrap();
        let refused = stranger
            .get("m/ingestion/t/0")
            .await
            .unwrap_err()
            .to_string();
        assert!(refused.contains("cluster secret"), "{refused}");
        assert!(stranger.list().await.is_err());
        assert!(stranger.stats().await.is_err());
    }
}
