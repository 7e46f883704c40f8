//! A Flight client for partitions held by other nodes.

use std::time::Duration;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::{FlightClient, FlightDescriptor, FlightInfo, Ticket};
use futures::{Stream, StreamExt, TryStreamExt};
use tonic::transport::Channel;

use sensei_runtime::tokens::ClusterSecret;

use crate::error::{FlightError, Result};
use crate::parquet_io::FileStats;
use crate::service::MAX_FLIGHT_MESSAGE;

/// A client for one node's Flight service.
#[derive(Debug, Clone)]
pub struct PartitionClient {
    endpoint: String,
    channel: Channel,
    /// Presented on every call: node Flight services serve the cluster only.
    secret: ClusterSecret,
}

fn peer(endpoint: &str, e: impl std::fmt::Display) -> FlightError {
    FlightError::Peer {
        endpoint: endpoint.to_string(),
        message: e.to_string(),
    }
}

impl PartitionClient {
    /// Connects to `endpoint` (`grpc://host:port`, `http://host:port`, or
    /// `grpc+tls://host:port` trusting the root of the secret's TLS),
    /// presenting `secret` on every call.
    pub async fn connect(endpoint: &str, secret: &ClusterSecret) -> Result<Self> {
        let channel = crate::channel(endpoint, secret.tls())?
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
            .map_err(|e| peer(endpoint, e))?;
        Ok(PartitionClient {
            endpoint: endpoint.to_string(),
            channel,
            secret: secret.clone(),
        })
    }

    fn client(&self) -> FlightClient {
        let inner = FlightServiceClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_FLIGHT_MESSAGE)
            .max_encoding_message_size(MAX_FLIGHT_MESSAGE);
        let mut client = FlightClient::new_from_inner(inner);
        // 64 hex digits after "Bearer ": always a valid header value.
        if let Err(e) = client.add_header("authorization", &self.secret.header()) {
            tracing::error!(error = %e, "the cluster secret is not a header value");
        }
        client
    }

    /// Streams a partition's batches (DoGet).
    pub async fn stream(
        &self,
        partition_id: &str,
    ) -> Result<impl Stream<Item = Result<RecordBatch>> + Send + 'static> {
        let endpoint = self.endpoint.clone();
        let s = self
            .client()
            .do_get(Ticket::new(partition_id.to_string()))
            .await
            .map_err(|e| peer(&self.endpoint, e))?;
        Ok(s.map_err(move |e| peer(&endpoint, e)))
    }

    /// Reads a whole partition (DoGet).
    pub async fn get(&self, partition_id: &str) -> Result<Vec<RecordBatch>> {
        self.stream(partition_id).await?.try_collect().await
    }

    /// Sends a partition to the node (DoPut); returns what the node stored.
    pub async fn put(
        &self,
        partition_id: &str,
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
    ) -> Result<FileStats> {
        let input = futures::stream::iter(batches.into_iter().map(Ok));
        let data = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .with_flight_descriptor(Some(FlightDescriptor::new_path(vec![
                partition_id.to_string()
            ])))
            .build(input);
        let mut results = self
            .client()
            .do_put(data)
            .await
            .map_err(|e| peer(&self.endpoint, e))?;
        let ack = results
            .next()
            .await
            .ok_or_else(|| peer(&self.endpoint, "DoPut returned no acknowledgement"))?
            .map_err(|e| peer(&self.endpoint, e))?;
        serde_json::from_slice(&ack.app_metadata).map_err(|e| peer(&self.endpoint, e))
    }

    /// Describes a partition (GetFlightInfo).
    pub async fn info(&self, partition_id: &str) -> Result<FlightInfo> {
        self.client()
            .get_flight_info(FlightDescriptor::new_path(vec![partition_id.to_string()]))
            .await
            .map_err(|e| peer(&self.endpoint, e))
    }

    /// Lists the partitions the node holds (ListFlights).
    pub async fn list(&self) -> Result<Vec<FlightInfo>> {
        self.client()
            .list_flights("")
            .await
            .map_err(|e| peer(&self.endpoint, e))?
            .try_collect()
            .await
            .map_err(|e| peer(&self.endpoint, e))
    }

    /// The node's serving counters (the `stats` action).
    pub async fn stats(&self) -> Result<serde_json::Value> {
        let mut results = self
            .client()
            .do_action(arrow_flight::Action::new("stats", ""))
            .await
            .map_err(|e| peer(&self.endpoint, e))?;
        let body = results
            .next()
            .await
            .ok_or_else(|| peer(&self.endpoint, "no stats"))?
            .map_err(|e| peer(&self.endpoint, e))?;
        serde_json::from_slice(&body).map_err(|e| peer(&self.endpoint, e))
    }
}
