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
    HandshakeRequest, HandshakeResponse, PollInfo, PutResult, SchemaAsIpc, SchemaResult, Ticket,
};
use futures::{Stream, StreamExt, TryStreamExt};
use tonic::{Request, Response, Status, Streaming};

use crate::parquet_io::{open_partition, PartitionWriter};
use crate::store::{NodeStore, PartitionEntry};

pub(crate) type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

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

/// The node Flight service.
#[derive(Clone)]
pub struct NodeFlightService {
    store: Arc<NodeStore>,
}

impl NodeFlightService {
    /// A service serving `store`.
    pub fn new(store: Arc<NodeStore>) -> Self {
        NodeFlightService { store }
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
    type HandshakeStream = BoxStream<HandshakeResponse>;
    type ListFlightsStream = BoxStream<FlightInfo>;
    type DoGetStream = BoxStream<FlightData>;
    type DoPutStream = BoxStream<PutResult>;
    type DoExchangeStream = BoxStream<FlightData>;
    type DoActionStream = BoxStream<arrow_flight::Result>;
    type ListActionsStream = BoxStream<ActionType>;

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
        _r: Request<Criteria>,
    ) -> Result<Response<Self::ListFlightsStream>, Status> {
        let infos: Vec<Result<FlightInfo, Status>> =
            self.store.list().iter().map(|e| self.info(e)).collect();
        Ok(Response::new(futures::stream::iter(infos).boxed()))
    }

    async fn get_flight_info(
        &self,
        r: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
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
        let entry = self.entry_for(r.get_ref())?;
        let (schema, _) =
            open_partition(&entry.path, 1).map_err(|e| Status::internal(e.to_string()))?;
        let options = arrow::ipc::writer::IpcWriteOptions::default();
        let result: SchemaResult = SchemaAsIpc::new(&schema, &options)
            .try_into()
            .map_err(|e: arrow::error::ArrowError| Status::internal(e.to_string()))?;
        Ok(Response::new(result))
    }

    async fn do_get(&self, r: Request<Ticket>) -> Result<Response<Self::DoGetStream>, Status> {
        let id = String::from_utf8(r.into_inner().ticket.to_vec())
            .map_err(|_| Status::invalid_argument("ticket must be a UTF-8 partition id"))?;
        let entry = self.store.get(&id).ok_or_else(|| {
            Status::not_found(format!(
                "partition {id} is not held by node {}",
                self.store.node_id()
            ))
        })?;
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
