//! The public Flight endpoint: verified datasets for any Flight client
//! (pyarrow.flight, arrow-flight, the C++ or Java clients), behind a token.
//!
//! A dataset is one target table of one migration whose certificate allows
//! serving it; which ones those are is the [`Catalog`]'s decision (the head's
//! catalog reads the signed certificates). Per call:
//!
//! - every call carries `authorization: Bearer <token>` (or first trades a
//!   `Basic` user/token pair for it in `Handshake`, as pyarrow's
//!   `authenticate_basic_token` does); a token of role `reader` or higher;
//! - `ListFlights` describes every dataset (descriptor path
//!   `[migration, table]`, the table's schema, rows, and as `app_metadata`
//!   the catalog's JSON: certificate hash, digest, Merkle root and key);
//!   a non-empty criteria expression keeps the datasets of that migration;
//! - `GetFlightInfo` / `GetSchema` answer for one descriptor;
//! - each endpoint is one partition. In a cluster
//!   ([`PublicFlightService::with_node_tickets`]) it is located on the node
//!   that holds the partition, then on this service, and its ticket is a
//!   [`NodeTicket`] signed by the head and bound to the caller's token (the
//!   node redeems it for that token only, for 15 minutes, see
//!   [`crate::ticket`]); otherwise its ticket is the partition id, redeemed
//!   here (no location: the Flight convention for "here");
//! - `DoGet` (here or on a node) checks the partition file's SHA-256
//!   against the certified one before streaming it, so what leaves is what
//!   the certificate covers.
//!
//! Writes (`DoPut`, `DoExchange`) and actions are refused: the endpoint is
//! read-only.

use std::path::PathBuf;
use std::sync::Arc;

use arrow::datatypes::{Schema, SchemaRef};
use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::{
    Action, Criteria, Empty, FlightData, FlightDescriptor, FlightEndpoint, FlightInfo,
    HandshakeRequest, HandshakeResponse, PollInfo, SchemaResult, Ticket,
};
use base64::Engine as _;
use futures::StreamExt;
use sensei_runtime::tokens::{ClusterSecret, Role, TokenRecord, TokenStore};
use tonic::{Request, Response, Status, Streaming};

use crate::error::{FlightError, Result};
use crate::parquet_io::{hash_file, open_partition};
use crate::service::{partition_stream, MAX_FLIGHT_MESSAGE};
use crate::ticket::{NodeTicket, TICKET_LIFETIME_MS};

/// One partition of a [`Dataset`]: a staged Parquet file and its certified hash.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetPartition {
    /// Partition id: the DoGet ticket.
    pub id: String,
    /// The file, readable by this process.
    pub path: PathBuf,
    /// SHA-256 of the file as the certificate records it.
    pub sha256: String,
    /// Rows.
    pub rows: u64,
    /// Bytes.
    pub bytes: u64,
    /// The Flight address of the node that holds it, when known.
    pub location: Option<String>,
}

/// A table the endpoint may serve.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// The migration.
    pub migration: String,
    /// The target table.
    pub table: String,
    /// Rows in all partitions.
    pub rows: u64,
    /// Sent as the FlightInfo's `app_metadata` (JSON).
    pub metadata: serde_json::Value,
    /// Its partitions, in order.
    pub partitions: Vec<DatasetPartition>,
}

/// Which datasets may be served now. Called on every request (on a blocking
/// thread): a migration whose certificate appears is served at once, and one
/// whose files change stops being served.
pub trait Catalog: Send + Sync + 'static {
    /// The datasets, in a stable order.
    fn datasets(&self) -> Result<Vec<Dataset>>;
}

/// The public Flight service.
#[derive(Clone)]
pub struct PublicFlightService {
    catalog: Arc<dyn Catalog>,
    tokens: TokenStore,
    /// With the cluster secret: endpoints on the nodes, with signed tickets.
    nodes: Option<NodeTickets>,
}

/// How the service points clients at the nodes.
#[derive(Clone)]
struct NodeTickets {
    secret: ClusterSecret,
    /// This service's own address, the second location of every endpoint.
    here: String,
}

const NO_TOKEN: &str = "a token is needed: send `authorization: Bearer <token>` (create one with `sensei-cluster token create --role reader`)";

impl PublicFlightService {
    /// A service over `catalog`, admitting the tokens of `tokens`.
    pub fn new(catalog: Arc<dyn Catalog>, tokens: TokenStore) -> Self {
        PublicFlightService {
            catalog,
            tokens,
            nodes: None,
        }
    }

    /// Endpoints located on the nodes that hold the partitions (then on
    /// this service, at `here`), each with a [`NodeTicket`] signed under the
    /// cluster `secret` and bound to the caller's token.
    pub fn with_node_tickets(mut self, secret: ClusterSecret, here: &str) -> Self {
        self.nodes = Some(NodeTickets {
            secret,
            here: here.to_string(),
        });
        self
    }

    /// The FlightInfo of a dataset for the caller holding `token`.
    fn info_of(&self, d: &Dataset, token: &str) -> Result<FlightInfo, Status> {
        let schema = schema_of(d)?;
        let mut info = FlightInfo::new()
            .try_with_schema(&schema)
            .map_err(|e| Status::internal(e.to_string()))?
            .with_descriptor(FlightDescriptor::new_path(vec![
                d.migration.clone(),
                d.table.clone(),
            ]))
            .with_total_records(d.rows as i64)
            .with_total_bytes(d.partitions.iter().map(|p| p.bytes as i64).sum())
            .with_ordered(true)
            .with_app_metadata(serde_json::to_vec(&d.metadata).unwrap_or_default());
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        for p in &d.partitions {
            let endpoint = match (&self.nodes, &p.location) {
                (Some(n), Some(node)) => {
                    let ticket =
                        NodeTicket::new(&p.id, &p.sha256, token, now_ms, TICKET_LIFETIME_MS);
                    FlightEndpoint::new()
                        .with_ticket(Ticket::new(ticket.sign(&n.secret)))
                        .with_location(node.clone())
                        .with_location(n.here.clone())
                }
                // No location: redeem the ticket here (the Flight convention).
                _ => FlightEndpoint::new().with_ticket(Ticket::new(p.id.clone())),
            };
            info = info.with_endpoint(endpoint);
        }
        Ok(info)
    }

    /// The tonic server, with explicit message limits.
    pub fn into_server(self) -> FlightServiceServer<Self> {
        FlightServiceServer::new(self)
            .max_decoding_message_size(MAX_FLIGHT_MESSAGE)
            .max_encoding_message_size(MAX_FLIGHT_MESSAGE)
    }

    /// The token of a call, checked, with at least `need`.
    async fn authorize<T>(&self, r: &Request<T>, need: Role) -> Result<TokenRecord, Status> {
        let header = r
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| Status::unauthenticated(NO_TOKEN))?;
        let token = bearer_or_basic(header).ok_or_else(|| Status::unauthenticated(NO_TOKEN))?;
        let tokens = self.tokens.clone();
        // The token file is read on a blocking thread: a revoked token is
        // refused at its next call without a restart.
        let record = tokio::task::spawn_blocking(move || tokens.authenticate(&token))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(|e| Status::unavailable(e.to_string()))?
            .ok_or_else(|| {
                Status::unauthenticated("the token is not valid (unknown, revoked or changed)")
            })?;
        if record.role < need {
            return Err(Status::permission_denied(format!(
                "token {} has role {}; this call needs {}",
                record.id,
                record.role.as_str(),
                need.as_str()
            )));
        }
        Ok(record)
    }

    async fn datasets(&self) -> Result<Vec<Dataset>, Status> {
        let catalog = self.catalog.clone();
        tokio::task::spawn_blocking(move || catalog.datasets())
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(|e| Status::unavailable(e.to_string()))
    }

    async fn dataset(&self, d: &FlightDescriptor) -> Result<Dataset, Status> {
        let [migration, table] = d.path.as_slice() else {
            return Err(Status::invalid_argument(
                "the descriptor must be the path [migration, table]",
            ));
        };
        self.datasets()
            .await?
            .into_iter()
            .find(|s| &s.migration == migration && &s.table == table)
            .ok_or_else(|| {
                Status::not_found(format!(
                    "{migration}/{table} is not a verified dataset (no such table, or its migration's certificate is not PASS)"
                ))
            })
    }
}

/// The token in an `authorization` header: `Bearer <token>`, or the
/// password of `Basic base64(user:token)`.
/// What leaves is what the certificate covers: the file is hashed again
/// (on a blocking thread) and refused if it no longer has the certified
/// SHA-256. `what` names it in the refusal.
pub(crate) async fn still_certified(
    path: &std::path::Path,
    certified: &str,
    what: &str,
) -> Result<(), Status> {
    let file = path.to_path_buf();
    let (_, sha) = tokio::task::spawn_blocking(move || hash_file(&file))
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(|e| Status::unavailable(e.to_string()))?;
    if sha != certified {
        tracing::error!(file = %path.display(), %certified, found = %sha,
            "a certified partition changed on disk; refusing to serve it");
        return Err(Status::data_loss(format!(
            "{what} no longer matches its certified SHA-256; it is not served"
        )));
    }
    Ok(())
}

/// The token a call carries (already authorized), or empty.
fn token_of<T>(r: &Request<T>) -> String {
    r.metadata()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_or_basic)
        .unwrap_or_default()
}

pub(crate) fn bearer_or_basic(header: &str) -> Option<String> {
    if let Some(t) = header.strip_prefix("Bearer ") {
        return Some(t.trim().to_string());
    }
    let encoded = header.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    text.split_once(':').map(|(_, token)| token.to_string())
}

fn schema_of(d: &Dataset) -> Result<SchemaRef, Status> {
    match d.partitions.first() {
        Some(p) => open_partition(&p.path, 1)
            .map(|(s, _)| s)
            .map_err(|e| Status::unavailable(e.to_string())),
        None => Ok(Arc::new(Schema::empty())),
    }
}

#[tonic::async_trait]
impl FlightService for PublicFlightService {
    crate::service::boxed_flight_streams!();

    async fn handshake(
        &self,
        r: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        let record = self.authorize(&r, Role::Reader).await?;
        let token = token_of(&r);
        let reply = HandshakeResponse {
            protocol_version: 0,
            payload: record.id.clone().into_bytes().into(),
        };
        let mut response = Response::new(futures::stream::iter(vec![Ok(reply)]).boxed());
        let value = format!("Bearer {token}")
            .parse()
            .map_err(|_| Status::invalid_argument("the token is not a valid header value"))?;
        response.metadata_mut().insert("authorization", value);
        Ok(response)
    }

    async fn list_flights(
        &self,
        r: Request<Criteria>,
    ) -> Result<Response<Self::ListFlightsStream>, Status> {
        self.authorize(&r, Role::Reader).await?;
        let token = token_of(&r);
        let only = String::from_utf8_lossy(&r.get_ref().expression).to_string();
        let infos: Vec<Result<FlightInfo, Status>> = self
            .datasets()
            .await?
            .iter()
            .filter(|d| only.is_empty() || d.migration == only)
            .map(|d| self.info_of(d, &token))
            .collect();
        Ok(Response::new(futures::stream::iter(infos).boxed()))
    }

    async fn get_flight_info(
        &self,
        r: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.authorize(&r, Role::Reader).await?;
        let d = self.dataset(r.get_ref()).await?;
        Ok(Response::new(self.info_of(&d, &token_of(&r))?))
    }

    async fn poll_flight_info(
        &self,
        _r: Request<FlightDescriptor>,
    ) -> Result<Response<PollInfo>, Status> {
        Err(Status::unimplemented(
            "verified datasets are complete when listed; use GetFlightInfo",
        ))
    }

    async fn get_schema(
        &self,
        r: Request<FlightDescriptor>,
    ) -> Result<Response<SchemaResult>, Status> {
        self.authorize(&r, Role::Reader).await?;
        let d = self.dataset(r.get_ref()).await?;
        let schema = schema_of(&d)?;
        crate::service::schema_result(&schema)
    }

    async fn do_get(&self, r: Request<Ticket>) -> Result<Response<Self::DoGetStream>, Status> {
        let who = self.authorize(&r, Role::Reader).await?;
        let raw = r.get_ref().ticket.to_vec();
        // A node ticket is redeemable here too (its second location).
        let id = match &self.nodes {
            Some(n) if NodeTicket::looks_like(&raw) => {
                NodeTicket::open(&raw, &n.secret)
                    .ok_or_else(|| {
                        Status::permission_denied("the ticket's signature is not this cluster's")
                    })?
                    .partition
            }
            _ => String::from_utf8(raw)
                .map_err(|_| Status::invalid_argument("the ticket must be a partition id"))?,
        };
        let found = self
            .datasets()
            .await?
            .into_iter()
            .find_map(|d| {
                let p = d.partitions.iter().find(|p| p.id == id).cloned();
                p.map(|p| (d, p))
            })
            .ok_or_else(|| {
                Status::not_found(format!("partition {id} is not part of a verified dataset"))
            })?;
        let (dataset, part) = found;
        let what = format!("partition {id} of {}/{}", dataset.migration, dataset.table);
        still_certified(&part.path, &part.sha256, &what).await?;
        tracing::info!(partition = %id, token = %who.id, "serving a verified partition");
        Ok(Response::new(partition_stream(&part.path, |_| {})?))
    }

    async fn do_put(
        &self,
        _r: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoPutStream>, Status> {
        Err(Status::permission_denied(
            "the public endpoint serves verified data; it accepts no writes",
        ))
    }

    async fn do_exchange(
        &self,
        _r: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoExchangeStream>, Status> {
        Err(Status::permission_denied(
            "the public endpoint serves verified data; it accepts no writes",
        ))
    }

    async fn do_action(
        &self,
        _r: Request<Action>,
    ) -> Result<Response<Self::DoActionStream>, Status> {
        Err(Status::unimplemented(
            "the public endpoint offers no actions",
        ))
    }

    async fn list_actions(
        &self,
        _r: Request<Empty>,
    ) -> Result<Response<Self::ListActionsStream>, Status> {
        Ok(Response::new(futures::stream::empty().boxed()))
    }
}

/// Starts the public endpoint on `listener`; returns its address. With
/// `tls` it serves TLS; without, an address beyond the loopback is refused
/// (tokens would cross the network in the clear).
pub async fn serve_public(
    service: PublicFlightService,
    tls: Option<&sensei_runtime::tls::ClusterTls>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<std::net::SocketAddr> {
    let addr = listener.local_addr().map_err(|e| FlightError::Peer {
        endpoint: "local".into(),
        message: e.to_string(),
    })?;
    let mut builder = crate::server("the public Flight endpoint", addr, tls)?;
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let svc = service.into_server();
    tokio::spawn(async move {
        if let Err(e) = builder
            .add_service(svc)
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await
        {
            tracing::error!(error = %e, "public flight server stopped");
        }
    });
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field};
    use arrow::record_batch::RecordBatch;
    use arrow_flight::flight_service_client::FlightServiceClient;
    use arrow_flight::FlightClient;

    struct Fixed(Vec<Dataset>);

    impl Catalog for Fixed {
        fn datasets(&self) -> Result<Vec<Dataset>> {
            Ok(self.0.clone())
        }
    }

    async fn client(addr: std::net::SocketAddr) -> FlightClient {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        FlightClient::new_from_inner(FlightServiceClient::new(channel))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn only_a_valid_token_lists_and_streams_and_a_changed_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Int64Array::from_iter_values(0..1000))],
        )
        .unwrap();
        let path = dir.path().join("p0.parquet");
        let stats =
            crate::parquet_io::write_partition(&path, schema.clone(), std::slice::from_ref(&batch))
                .unwrap();
        let part = DatasetPartition {
            id: "m/transformation/t/0".into(),
            path: path.clone(),
            sha256: stats.sha256.clone(),
            rows: stats.rows,
            bytes: stats.bytes,
            location: None,
        };
        let dataset = Dataset {
            migration: "m".into(),
            table: "t".into(),
            rows: 1000,
            metadata: serde_json::json!({"merkle_root": "ab"}),
            partitions: vec![part],
        };
        let tokens = TokenStore::new(dir.path().join("tokens.json"));
        let (_, token) = tokens.create(Role::Reader, "test").unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = serve_public(
            PublicFlightService::new(Arc::new(Fixed(vec![dataset])), tokens),
            None,
            listener,
            std::future::pending(),
        )
        .await
        .unwrap();

        let mut anonymous = client(addr).await;
        let err = anonymous
            .list_flights(Vec::<u8>::new())
            .await
            .err()
            .expect("refused without a token");
        assert!(err.to_string().contains("token is needed"), "{err}");
        let mut wrong = client(addr).await;
        wrong
            .add_header("authorization", "Bearer sensei_0123456789abcdef_00")
            .unwrap();
        let err = wrong.list_flights(Vec::<u8>::new()).await.err().unwrap();
        assert!(err.to_string().contains("not valid"), "{err}");

        let mut c = client(addr).await;
        c.add_header("authorization", &format!("Bearer {token}"))
            .unwrap();
        let infos: Vec<FlightInfo> = c
            .list_flights(Vec::<u8>::new())
            .await
            .unwrap()
            .map(|i| i.unwrap())
            .collect()
            .await;
        assert_eq!(infos.len(), 1);
        assert_eq!(infos[0].total_records, 1000);
        let ticket = infos[0].endpoint[0].ticket.clone().unwrap();
        let got: Vec<RecordBatch> = c
            .do_get(ticket.clone())
            .await
            .unwrap()
            .map(|b| b.unwrap())
            .collect()
            .await;
        assert_eq!(
            arrow::compute::concat_batches(&schema, &got).unwrap(),
            batch
        );
        assert!(c.do_get(Ticket::new("other")).await.is_err());

        // The file changes after certification: not served.
        let other = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Int64Array::from_iter_values(0..999))],
        )
        .unwrap();
        crate::parquet_io::write_partition(&path, schema, &[other]).unwrap();
        let err = match c.do_get(ticket).await {
            Ok(s) => s.map(|b| b.err()).collect::<Vec<_>>().await[0]
                .take()
                .map(|e| e.to_string())
                .unwrap_or_default(),
            Err(e) => e.to_string(),
        };
        assert!(err.contains("no longer matches"), "{err}");
    }

    #[test]
    fn basic_and_bearer_headers_carry_the_token() {
        assert_eq!(bearer_or_basic("Bearer abc").as_deref(), Some("abc"));
        let basic = base64::engine::general_purpose::STANDARD.encode("user:tok");
        assert_eq!(
            bearer_or_basic(&format!("Basic {basic}")).as_deref(),
            Some("tok")
        );
        assert_eq!(bearer_or_basic("Token x"), None);
    }
}
