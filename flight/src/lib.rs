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
pub mod ticket;

pub use client::PartitionClient;
pub use error::{FlightError, Result};
pub use service::{NodeFlightService, MAX_FLIGHT_MESSAGE};
pub use store::{FlightCounters, NodeStore, PartitionEntry};

use std::net::SocketAddr;
use std::sync::Arc;

use sensei_runtime::tokens::ClusterSecret;

/// A channel's endpoint for a Flight address: `grpc://` and `grpc+tcp://`
/// are plain HTTP/2, `grpc+tls://` is TLS trusting `tls`'s root (an error
/// without it).
pub fn channel(
    endpoint: &str,
    tls: Option<&sensei_runtime::tls::ClusterTls>,
) -> Result<tonic::transport::Endpoint> {
    let peer = |message: String| FlightError::Peer {
        endpoint: endpoint.to_string(),
        message,
    };
    let (url, secure) = if let Some(rest) = endpoint.strip_prefix("grpc+tls://") {
        (format!("https://{rest}"), true)
    } else {
        let url = endpoint
            .replacen("grpc://", "http://", 1)
            .replacen("grpc+tcp://", "http://", 1);
        let secure = url.starts_with("https://");
        (url, secure)
    };
    let ep = tonic::transport::Endpoint::from_shared(url).map_err(|e| peer(e.to_string()))?;
    match (secure, tls) {
        (false, _) => Ok(ep),
        (true, Some(tls)) => ep.tls_config(tls.client()).map_err(|e| peer(e.to_string())),
        (true, None) => Err(peer(
            "the endpoint speaks TLS but this process has no certificate to trust (the cluster's TLS files)".into(),
        )),
    }
}

/// The scheme of a listener's Flight address: `grpc+tls` with TLS.
pub fn scheme(tls: Option<&sensei_runtime::tls::ClusterTls>) -> &'static str {
    if tls.is_some() {
        "grpc+tls"
    } else {
        "grpc"
    }
}

/// A gRPC server for the listener of `what` on `addr`: with `tls`, it
/// serves TLS; without, a listener beyond the loopback is refused (tokens
/// and the cluster secret would cross the network in the clear).
pub fn server(
    what: &str,
    addr: SocketAddr,
    tls: Option<&sensei_runtime::tls::ClusterTls>,
) -> Result<tonic::transport::Server> {
    let builder = tonic::transport::Server::builder();
    match tls {
        Some(tls) => builder
            .tls_config(tls.server())
            .map_err(|e| FlightError::Refused(format!("{what} on {addr}: TLS configuration: {e}"))),
        None if !addr.ip().is_loopback() => Err(FlightError::Refused(format!(
            "{what} on {addr}: a listener beyond the loopback needs TLS, which is not configured; \
             start the cluster with --tls (or --tls-cert and --tls-key), or bind 127.0.0.1"
        ))),
        None => Ok(builder),
    }
}

/// Starts a node's Flight server on `addr` (port 0 picks one); returns the
/// bound address. Every call must carry the cluster `secret` (the node
/// serves staging partitions to the other processes of its cluster), except
/// `DoGet` of a node ticket the head signed, for the token it is bound to
/// (see [`ticket`]); with the secret's TLS it serves TLS, without it a
/// listener beyond the loopback is refused. The server stops when
/// `shutdown` resolves.
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
    let mut builder = server("a node's Flight service", addr, secret.tls())?;
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let svc = tonic::service::interceptor::InterceptedService::new(
        NodeFlightService::new(store)
            .with_tickets(secret.clone())
            .into_server(),
        service::gate(secret),
    );
    tokio::spawn(async move {
        if let Err(e) = builder
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

    /// A node's Flight service on a free port: its endpoint, store, secret.
    async fn node(dir: &std::path::Path) -> (String, Arc<NodeStore>, ClusterSecret) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("grpc://{}", listener.local_addr().unwrap());
        let store = Arc::new(NodeStore::new("n1", &endpoint, dir));
        let secret = ClusterSecret::generate().unwrap();
        serve(
            store.clone(),
            secret.clone(),
            listener,
            std::future::pending(),
        )
        .await
        .unwrap();
        (endpoint, store, secret)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn put_get_list_info_over_a_real_socket() {
        let dir = tempfile::tempdir().unwrap();
        let (endpoint, _store, secret) = node(dir.path()).await;

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

    /// A client with a token redeems, on a node, the ticket the head signed
    /// for that token: not another token's, not an expired one, not one
    /// signed under another secret, not for a file changed since.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_token_holder_redeems_only_its_own_signed_ticket() {
        use crate::ticket::NodeTicket;
        use futures::TryStreamExt;
        let dir = tempfile::tempdir().unwrap();
        let (endpoint, store, secret) = node(dir.path()).await;
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Int64Array::from_iter_values(0..1_000))],
        )
        .unwrap();
        let path = dir.path().join("p.parquet");
        let stats = crate::parquet_io::write_partition(&path, schema, std::slice::from_ref(&batch))
            .unwrap();
        store.register("m/transformation/t/0", path.clone(), stats.clone());

        let get = |token: &'static str, ticket: Vec<u8>| {
            let endpoint = endpoint.clone();
            async move {
                let channel = channel(&endpoint, None).unwrap().connect().await.unwrap();
                let mut c = arrow_flight::FlightClient::new(channel);
                c.add_header("authorization", &format!("Bearer {token}"))
                    .unwrap();
                match c.do_get(arrow_flight::Ticket::new(ticket)).await {
                    Ok(s) => s
                        .try_collect::<Vec<_>>()
                        .await
                        .map(|b| b.iter().map(|b| b.num_rows()).sum::<usize>())
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                }
            }
        };
        let now = 1_000_000_000_000_i64.max(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as i64,
        );
        let ticket = |token: &str, at: i64, secret: &ClusterSecret| {
            NodeTicket::new("m/transformation/t/0", &stats.sha256, token, at, 60_000).sign(secret)
        };
        assert_eq!(get("alice", ticket("alice", now, &secret)).await, Ok(1_000));
        let other = get("bob", ticket("alice", now, &secret)).await.unwrap_err();
        assert!(other.contains("another token"), "{other}");
        let expired = get("alice", ticket("alice", now - 120_000, &secret))
            .await
            .unwrap_err();
        assert!(expired.contains("expired"), "{expired}");
        let forged = get(
            "alice",
            ticket("alice", now, &ClusterSecret::generate().unwrap()),
        )
        .await
        .unwrap_err();
        assert!(forged.contains("cluster secret"), "{forged}");
        // A bare partition id is the cluster's ticket, not a token holder's.
        let bare = get("alice", b"m/transformation/t/0".to_vec())
            .await
            .unwrap_err();
        assert!(bare.contains("cluster secret"), "{bare}");
        // The file changed after the certificate: not served.
        let mut bytes = std::fs::read(&path).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
        let changed = get("alice", ticket("alice", now, &secret))
            .await
            .unwrap_err();
        assert!(changed.contains("no longer matches"), "{changed}");
    }
}
