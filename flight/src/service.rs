//! The Flight service every node runs: DoGet streams a held partition by
//! ticket, DoPut stores a partition sent by a peer, ListFlights and
//! GetFlightInfo describe held partitions with this node's endpoint.

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::{
    Action, ActionType, Criteria, Empty, FlightData, FlightDescriptor, FlightEndpoint, FlightInfo,
    HandshakeRequest, PollInfo, PutResult, SchemaAsIpc, SchemaResult, Ticket,
};
use futures::{Stream, StreamExt, TryStreamExt};
use tonic::{Request, Response, Status, Streaming};

use sensei_runtime::tokens::{constant_time_eq, ClusterSecret, NO_CLUSTER_SECRET};

use crate::parquet_io::{open_partition, PartitionWriter};
use crate::store::{NodeStore, PartitionEntry};
use crate::ticket::NodeTicket;

pub(crate) type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// The stream types of a [`FlightService`] implementation, every one boxed.
macro_rules! boxed_flight_streams {
    () => {
        type HandshakeStream = $crate::service::BoxStream<arrow_flight::HandshakeResponse>;
        type ListFlightsStream = $crate::service::BoxStream<arrow_flight::FlightInfo>;
        type DoGetStream = $crate::service::BoxStream<arrow_flight::FlightData>;
        type DoPutStream = $crate::service::BoxStream<arrow_flight::PutResult>;
        type DoExchangeStream = $crate::service::BoxStream<arrow_flight::FlightData>;
        type DoActionStream = $crate::service::BoxStream<arrow_flight::Result>;
        type ListActionsStream = $crate::service::BoxStream<arrow_flight::ActionType>;
    };
}
pub(crate) use boxed_flight_streams;

/// A schema as GetSchema answers it.
pub(crate) fn schema_result(
    schema: &arrow::datatypes::Schema,
) -> Result<Response<SchemaResult>, Status> {
    let options = arrow::ipc::writer::IpcWriteOptions::default();
    let result: SchemaResult = SchemaAsIpc::new(schema, &options)
        .try_into()
        .map_err(|e: arrow::error::ArrowError| Status::internal(e.to_string()))?;
    Ok(Response::new(result))
}

/// Largest Flight message either side accepts. Batches are cut well below it
/// (8,192 rows); the limit is set explicitly so both ends agree.
pub const MAX_FLIGHT_MESSAGE: usize = 64 * 1024 * 1024;

/// Rows per batch streamed by DoGet.
const STREAM_BATCH_ROWS: usize = 8192;

/// The DoGet stream of a partition file: its schema, then its batches.
/// `on_batch` sees each batch as it is read (the caller's counters).
///
/// Decoding Parquet is blocking work: a blocking thread feeds a channel of
/// capacity 2, so a slow reader holds at most two decoded batches here, and
/// the thread stops reading when the client hangs up (the receiver is gone).
pub(crate) fn partition_stream(
    path: &std::path::Path,
    on_batch: impl Fn(&arrow::record_batch::RecordBatch) + Send + 'static,
) -> Result<BoxStream<FlightData>, Status> {
    let (schema, reader) =
        open_partition(path, STREAM_BATCH_ROWS).map_err(|e| Status::internal(e.to_string()))?;
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    tokio::task::spawn_blocking(move || {
        for batch in reader {
            let batch =
                batch.map_err(|e| arrow_flight::error::FlightError::ExternalError(Box::new(e)));
            if let Ok(b) = &batch {
                on_batch(b);
                metrics::counter!(sensei_runtime::metrics::FLIGHT_BATCHES_SERVED).increment(1);
                metrics::counter!(sensei_runtime::metrics::FLIGHT_BYTES_SERVED)
                    .increment(b.get_array_memory_size() as u64);
            }
            if tx.blocking_send(batch).is_err() {
                break;
            }
        }
    });
    let batches = tokio_stream::wrappers::ReceiverStream::new(rx);
    Ok(FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .build(batches)
        .map_err(|e| Status::internal(e.to_string()))
        .boxed())
}

/// Who is calling a node's Flight service, as its gate decided (a request
/// extension set by [`gate`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Caller {
    /// A process of the cluster (it presented the cluster secret).
    Cluster,
    /// A client with a token (SHA-256 hex): it may redeem node tickets only.
    Token(String),
}

/// The gate of a node's Flight listener: the cluster secret admits every
/// call; any other bearer token admits a call marked [`Caller::Token`],
/// which the service accepts for `DoGet` of a signed node ticket only; no
/// credential is refused here.
pub(crate) fn gate(
    secret: ClusterSecret,
) -> impl tonic::service::Interceptor + Clone + Send + Sync + 'static {
    move |mut r: Request<()>| {
        let header = r
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        let caller = if secret.admits(header) {
            Caller::Cluster
        } else {
            match header.and_then(crate::public::bearer_or_basic) {
                Some(token) => Caller::Token(crate::ticket::token_sha256(&token)),
                None => return Err(Status::unauthenticated(NO_CLUSTER_SECRET)),
            }
        };
        r.extensions_mut().insert(caller);
        Ok(r)
    }
}

/// Refuses a caller that is not a process of the cluster.
fn cluster_only<T>(r: &Request<T>) -> Result<(), Status> {
    match r.extensions().get::<Caller>() {
        Some(Caller::Token(_)) => Err(Status::unauthenticated(NO_CLUSTER_SECRET)),
        _ => Ok(()),
    }
}

/// The node Flight service.
#[derive(Clone)]
pub struct NodeFlightService {
    store: Arc<NodeStore>,
    /// Opens node tickets signed by the head.
    secret: Option<ClusterSecret>,
}

impl NodeFlightService {
    /// A service serving `store`.
    pub fn new(store: Arc<NodeStore>) -> Self {
        NodeFlightService {
            store,
            secret: None,
        }
    }

    /// Also redeems node tickets the head signed under `secret`, for the
    /// token each is bound to.
    pub fn with_tickets(mut self, secret: ClusterSecret) -> Self {
        self.secret = Some(secret);
        self
    }

    /// The partition a token holder's ticket names, checked: signed by the
    /// head, bound to this token, not expired, and the file still the
    /// certified one.
    async fn redeem(&self, token_sha256: &str, raw: &[u8]) -> Result<PartitionEntry, Status> {
        let refused = || Status::unauthenticated(NO_CLUSTER_SECRET);
        let secret = self.secret.as_ref().ok_or_else(refused)?;
        let ticket = NodeTicket::open(raw, secret).ok_or_else(refused)?;
        if !constant_time_eq(ticket.token_sha256.as_bytes(), token_sha256.as_bytes()) {
            return Err(Status::permission_denied(
                "this ticket was issued to another token",
            ));
        }
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(i64::MAX);
        if now_ms > ticket.expires_ms {
            return Err(Status::permission_denied(
                "this ticket has expired: ask the head's GetFlightInfo for a new one",
            ));
        }
        let entry = self.store.get(&ticket.partition).ok_or_else(|| {
            Status::not_found(format!(
                "partition {} is not held by node {}: redeem the ticket at the endpoint's next location",
                ticket.partition,
                self.store.node_id()
            ))
        })?;
        let what = format!("partition {}", ticket.partition);
        crate::public::still_certified(&entry.path, &ticket.sha256, &what).await?;
        Ok(entry)
    }

    /// The tonic server, with explicit message limits.
    pub fn into_server(self) -> FlightServiceServer<Self> {
        FlightServiceServer::new(self)
            .max_decoding_message_size(MAX_FLIGHT_MESSAGE)
            .max_encoding_message_size(MAX_FLIGHT_MESSAGE)
    }

    fn info(&self, entry: &PartitionEntry) -> Result<FlightInfo, Status> {
        let (schema, _) =
            open_partition(&entry.path, 1).map_err(|e| Status::internal(e.to_string()))?;
        let endpoint = FlightEndpoint::new()
            .with_ticket(Ticket::new(entry.id.clone()))
            .with_location(self.store.endpoint().to_string());
        FlightInfo::new()
            .try_with_schema(&schema)
            .map_err(|e| Status::internal(e.to_string()))
            .map(|i| {
                i.with_descriptor(FlightDescriptor::new_path(vec![entry.id.clone()]))
                    .with_endpoint(endpoint)
                    .with_total_records(entry.stats.rows as i64)
                    .with_total_bytes(entry.stats.bytes as i64)
            })
    }

    fn entry_for(&self, descriptor: &FlightDescriptor) -> Result<PartitionEntry, Status> {
        let id = descriptor.path.first().ok_or_else(|| {
            Status::invalid_argument("descriptor must be a path naming a partition id")
        })?;
        self.store.get(id).ok_or_else(|| {
            Status::not_found(format!(
                "partition {id} is not held by node {}",
                self.store.node_id()
            ))
        })
    }
}

#[tonic::async_trait]
impl FlightService for NodeFlightService {
    boxed_flight_streams!();

    async fn handshake(
        &self,
        _r: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        Err(Status::unimplemented(
            "node Flight services need no handshake",
        ))
    }

    async fn list_flights(
        &self,
        r: Request<Criteria>,
    ) -> Result<Response<Self::ListFlightsStream>, Status> {
        cluster_only(&r)?;
        let infos: Vec<Result<FlightInfo, Status>> =
            self.store.list().iter().map(|e| self.info(e)).collect();
        Ok(Response::new(futures::stream::iter(infos).boxed()))
    }

    async fn get_flight_info(
        &self,
        r: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        cluster_only(&r)?;
        let entry = self.entry_for(r.get_ref())?;
        Ok(Response::new(self.info(&entry)?))
    }

    async fn poll_flight_info(
        &self,
        _r: Request<FlightDescriptor>,
    ) -> Result<Response<PollInfo>, Status> {
        Err(Status::unimplemented(
            "partitions are complete when listed; use GetFlightInfo",
        ))
    }

    async fn get_schema(
        &self,
        r: Request<FlightDescriptor>,
    ) -> Result<Response<SchemaResult>, Status> {
        cluster_only(&r)?;
        let entry = self.entry_for(r.get_ref())?;
        let (schema, _) =
            open_partition(&entry.path, 1).map_err(|e| Status::internal(e.to_string()))?;
        schema_result(&schema)
    }

    async fn do_get(&self, r: Request<Ticket>) -> Result<Response<Self::DoGetStream>, Status> {
        let entry = match r.extensions().get::<Caller>().cloned() {
            Some(Caller::Token(token)) => {
                let entry = self.redeem(&token, &r.get_ref().ticket).await?;
                tracing::info!(partition = %entry.id, "serving a verified partition to a token holder");
                entry
            }
            _ => {
                let id = String::from_utf8(r.into_inner().ticket.to_vec())
                    .map_err(|_| Status::invalid_argument("ticket must be a UTF-8 partition id"))?;
                self.store.get(&id).ok_or_else(|| {
                    Status::not_found(format!(
                        "partition {id} is not held by node {}",
                        self.store.node_id()
                    ))
                })?
            }
        };
        self.store.counters.gets.fetch_add(1, Ordering::Relaxed);
        let store = self.store.clone();
        let stream = partition_stream(&entry.path, move |b| {
            store.counters.batches.fetch_add(1, Ordering::Relaxed);
            store
                .counters
                .rows
                .fetch_add(b.num_rows() as u64, Ordering::Relaxed);
        })?;
        Ok(Response::new(stream))
    }

    async fn do_put(
        &self,
        r: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoPutStream>, Status> {
        cluster_only(&r)?;
        let mut input = r.into_inner();
        let first = input
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("empty DoPut stream"))?;
        let id = first
            .flight_descriptor
            .as_ref()
            .and_then(|d| d.path.first().cloned())
            .ok_or_else(|| {
                Status::invalid_argument(
                    "DoPut's first message must carry a path descriptor naming the partition",
                )
            })?;
        let data = futures::stream::once(async move { Ok(first) })
            .chain(input)
            .map_err(|s| arrow_flight::error::FlightError::Tonic(Box::new(s)));
        let mut batches = arrow_flight::decode::FlightRecordBatchStream::new_from_flight_data(data);
        let path = self.store.path_for(&id);
        let mut writer: Option<PartitionWriter> = None;
        while let Some(batch) = batches.next().await {
            let batch = batch.map_err(|e| Status::invalid_argument(e.to_string()))?;
            if writer.is_none() {
                writer = Some(
                    PartitionWriter::create(&path, batch.schema())
                        .map_err(|e| Status::internal(e.to_string()))?,
                );
            }
            if let Some(w) = writer.as_mut() {
                w.write(&batch)
                    .map_err(|e| Status::internal(e.to_string()))?;
            }
        }
        let writer = match writer {
            Some(w) => w,
            None => {
                let schema = batches
                    .schema()
                    .cloned()
                    .ok_or_else(|| Status::invalid_argument("DoPut carried no schema"))?;
                PartitionWriter::create(&path, schema)
                    .map_err(|e| Status::internal(e.to_string()))?
            }
        };
        let stats = writer
            .finish()
            .map_err(|e| Status::internal(e.to_string()))?;
        self.store.register(&id, path, stats.clone());
        self.store.counters.puts.fetch_add(1, Ordering::Relaxed);
        let ack = PutResult {
            app_metadata: serde_json::to_vec(&stats).unwrap_or_default().into(),
        };
        Ok(Response::new(futures::stream::iter(vec![Ok(ack)]).boxed()))
    }

    async fn do_exchange(
        &self,
        _r: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoExchangeStream>, Status> {
        Err(Status::unimplemented("DoExchange is not offered"))
    }

    async fn do_action(
        &self,
        r: Request<Action>,
    ) -> Result<Response<Self::DoActionStream>, Status> {
        cluster_only(&r)?;
        match r.get_ref().r#type.as_str() {
            "stats" => {
                let body = self.store.counters_json().to_string();
                let result = arrow_flight::Result { body: body.into() };
                Ok(Response::new(
                    futures::stream::iter(vec![Ok(result)]).boxed(),
                ))
            }
            other => Err(Status::unimplemented(format!("unknown action {other}"))),
        }
    }

    async fn list_actions(
        &self,
        _r: Request<Empty>,
    ) -> Result<Response<Self::ListActionsStream>, Status> {
        let a = ActionType {
            r#type: "stats".into(),
            description: "what this node's Flight service has served, as JSON".into(),
        };
        Ok(Response::new(futures::stream::iter(vec![Ok(a)]).boxed()))
    }
}
