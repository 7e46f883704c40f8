//! The Kafka backend of the topics ([`KafkaLog`]), through rdkafka: the six
//! topics on a real Kafka-protocol cluster, so a data team's own consumers
//! can follow a migration.
//!
//! - Topics are created when missing, with one partition each (a topic's
//!   offsets are then one sequence, as the [`EventLog`] trait hands them
//!   out, and every migration's events stay in order), the configured
//!   replication factor and `min.insync.replicas` (the largest the cluster
//!   allows, with a warning naming the shortfall), and `retention.ms` of the
//!   grace period: a record stays that long after it was written, so a
//!   migration's events outlive it by the grace period.
//! - The producer is idempotent (`enable.idempotence`, `acks=all`): a record
//!   retried after a lost acknowledgement or a broker restart is written
//!   once. [`EventLog::append`] returns once the cluster acknowledged it.
//! - Records carry the migration id as key and the same JSON documents as
//!   the embedded log.
//! - Consumer offsets are the cluster's own, per consumer group
//!   ([`EventLog::commit`], [`EventLog::committed`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::error::{Result, RuntimeError};
use crate::topic::{EventLog, Record, Topic};

/// Settings of the Kafka backend (`runtime.topics` and `[topics]`).
#[derive(Debug, Clone, PartialEq)]
pub struct KafkaSettings {
    /// Bootstrap servers, `HOST:PORT[,HOST:PORT]`.
    pub brokers: String,
    /// Replication factor asked for new topics.
    pub replication: u32,
    /// `min.insync.replicas` asked for new topics.
    pub min_insync_replicas: u32,
    /// How long records stay after they were written.
    pub retention: Duration,
    /// How long to wait for the cluster before giving up (connecting,
    /// acknowledgements, reads).
    pub timeout: Duration,
}

/// The bootstrap servers of a `kafka://HOST:PORT[,HOST:PORT]` setting, or
/// None when it names another backend.
pub fn brokers_of(setting: &str) -> Option<&str> {
    setting
        .strip_prefix("kafka://")
        .map(|s| s.trim_end_matches('/'))
}

/// The topic log on a Kafka cluster.
pub struct KafkaLog {
    settings: KafkaSettings,
    producer: FutureProducer,
    /// Reads by offset: assigned, never a group member.
    reader: Mutex<BaseConsumer>,
    /// One consumer per group for its offsets.
    groups: Mutex<HashMap<String, BaseConsumer>>,
}

fn kafka_err(settings: &KafkaSettings, what: &str) -> impl Fn(KafkaError) -> RuntimeError {
    let brokers = settings.brokers.clone();
    let what = what.to_string();
    move |e| RuntimeError::Kafka {
        brokers: brokers.clone(),
        message: format!("{what}: {e}"),
    }
}

impl KafkaLog {
    /// Connects to the cluster (within `settings.timeout`, or an error
    /// naming the address) and creates the six topics that are missing.
    pub fn open(settings: KafkaSettings) -> Result<Self> {
        let timeout_ms = settings.timeout.as_millis().max(1000).to_string();
        let base = |c: &mut ClientConfig| {
            c.set("bootstrap.servers", &settings.brokers)
                .set("socket.connection.setup.timeout.ms", &timeout_ms)
                // A restarted broker is found again within a second.
                .set("reconnect.backoff.max.ms", "1000")
                .set("log_level", "3");
        };
        let mut admin_config = ClientConfig::new();
        base(&mut admin_config);
        let admin: AdminClient<DefaultClientContext> = admin_config
            .create()
            .map_err(kafka_err(&settings, "creating the admin client"))?;
        let metadata = admin
            .inner()
            .fetch_metadata(None, settings.timeout)
            .map_err(|e| RuntimeError::Kafka {
                brokers: settings.brokers.clone(),
                message: format!(
                    "no broker answered within {} s ({e}); is it running? (tools/kafka-broker starts one to try with)",
                    settings.timeout.as_secs()
                ),
            })?;
        let brokers = metadata.brokers().len().max(1) as u32;
        let replication = settings.replication.clamp(1, brokers);
        let min_insync = settings.min_insync_replicas.clamp(1, replication);
        if replication < settings.replication || min_insync < settings.min_insync_replicas {
            tracing::warn!(
                brokers,
                asked_replication = settings.replication,
                asked_min_insync = settings.min_insync_replicas,
                replication,
                min_insync,
                "topics: the cluster at {} has {brokers} broker(s): new topics get replication {replication} (asked {}) and min.insync.replicas {min_insync} (asked {})",
                settings.brokers,
                settings.replication,
                settings.min_insync_replicas
            );
        }
        let existing: Vec<String> = metadata
            .topics()
            .iter()
            .map(|t| t.name().to_string())
            .collect();
        let retention = settings.retention.as_millis().to_string();
        let min_insync_s = min_insync.to_string();
        let missing: Vec<NewTopic<'_>> = Topic::ALL
            .iter()
            .filter(|t| !existing.iter().any(|e| e == t.name()))
            .map(|t| {
                NewTopic::new(t.name(), 1, TopicReplication::Fixed(replication as i32))
                    .set("min.insync.replicas", &min_insync_s)
                    .set("retention.ms", &retention)
            })
            .collect();
        if !missing.is_empty() {
            let opts = AdminOptions::new().operation_timeout(Some(settings.timeout));
            let results = futures::executor::block_on(admin.create_topics(&missing, &opts))
                .map_err(kafka_err(&settings, "creating the topics"))?;
            for r in results {
                if let Err((name, code)) = r {
                    if code != RDKafkaErrorCode::TopicAlreadyExists {
                        return Err(RuntimeError::Kafka {
                            brokers: settings.brokers.clone(),
                            message: format!("creating topic {name}: {code}"),
                        });
                    }
                }
            }
        }
        let mut producer_config = ClientConfig::new();
        base(&mut producer_config);
        let producer: FutureProducer = producer_config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "0")
            .set(
                "message.timeout.ms",
                (settings.timeout.as_millis().max(1000) * 3).to_string(),
            )
            .create()
            .map_err(kafka_err(&settings, "creating the producer"))?;
        let reader = Self::consumer(&settings, "sensei-reader")?;
        Ok(KafkaLog {
            settings,
            producer,
            reader: Mutex::new(reader),
            groups: Mutex::new(HashMap::new()),
        })
    }

    fn consumer(settings: &KafkaSettings, group: &str) -> Result<BaseConsumer> {
        ClientConfig::new()
            .set("bootstrap.servers", &settings.brokers)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("log_level", "3")
            .create()
            .map_err(kafka_err(settings, "creating a consumer"))
    }

    /// The settings this log was opened with.
    pub fn settings(&self) -> &KafkaSettings {
        &self.settings
    }
}

impl EventLog for KafkaLog {
    fn append(&self, topic: Topic, key: &str, value: &[u8]) -> Result<u64> {
        let record = FutureRecord::to(topic.name()).key(key).payload(value);
        let delivery = self
            .producer
            .send_result(record)
            .map_err(|(e, _)| kafka_err(&self.settings, "queueing a record")(e))?;
        match futures::executor::block_on(delivery) {
            Ok(Ok(d)) => Ok(d.offset.max(0) as u64),
            Ok(Err((e, _))) => Err(kafka_err(
                &self.settings,
                &format!("writing to {}", topic.name()),
            )(e)),
            Err(_) => Err(RuntimeError::Kafka {
                brokers: self.settings.brokers.clone(),
                message: format!("writing to {}: the producer closed", topic.name()),
            }),
        }
    }

    fn read(&self, topic: Topic, from: u64, max: usize) -> Result<Vec<Record>> {
        let reader = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        let (low, high) = reader
            .fetch_watermarks(topic.name(), 0, self.settings.timeout)
            .map_err(kafka_err(&self.settings, "reading the topic's offsets"))?;
        let start = (from as i64).max(low);
        if start >= high || max == 0 {
            return Ok(Vec::new());
        }
        let want = ((high - start) as usize).min(max);
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic.name(), 0, Offset::Offset(start))
            .map_err(kafka_err(&self.settings, "assigning the topic"))?;
        reader
            .assign(&tpl)
            .map_err(kafka_err(&self.settings, "assigning the topic"))?;
        let mut out = Vec::with_capacity(want);
        let deadline = std::time::Instant::now() + self.settings.timeout;
        while out.len() < want {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(RuntimeError::Kafka {
                    brokers: self.settings.brokers.clone(),
                    message: format!(
                        "reading {} from offset {start}: {} of {want} records within {} s",
                        topic.name(),
                        out.len(),
                        self.settings.timeout.as_secs()
                    ),
                });
            }
            match reader.poll(left.min(Duration::from_millis(500))) {
                None => continue,
                Some(Err(e)) => {
                    return Err(kafka_err(
                        &self.settings,
                        &format!("reading {}", topic.name()),
                    )(e))
                }
                Some(Ok(m)) => {
                    if m.offset() < start {
                        continue;
                    }
                    out.push(Record {
                        offset: m.offset() as u64,
                        key: m
                            .key()
                            .map(|k| String::from_utf8_lossy(k).into_owned())
                            .unwrap_or_default(),
                        value: m.payload().unwrap_or_default().to_vec(),
                    });
                }
            }
        }
        reader
            .unassign()
            .map_err(kafka_err(&self.settings, "releasing the topic"))?;
        Ok(out)
    }

    fn commit(&self, group: &str, topic: Topic, next: u64) -> Result<()> {
        let mut groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        if !groups.contains_key(group) {
            groups.insert(group.to_string(), Self::consumer(&self.settings, group)?);
        }
        let consumer = &groups[group];
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic.name(), 0, Offset::Offset(next as i64))
            .map_err(kafka_err(&self.settings, "committing an offset"))?;
        consumer.commit(&tpl, CommitMode::Sync).map_err(kafka_err(
            &self.settings,
            &format!("committing group {group}'s offset on {}", topic.name()),
        ))
    }

    fn committed(&self, group: &str, topic: Topic) -> Result<u64> {
        let mut groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        if !groups.contains_key(group) {
            groups.insert(group.to_string(), Self::consumer(&self.settings, group)?);
        }
        let consumer = &groups[group];
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(topic.name(), 0);
        let got = consumer
            .committed_offsets(tpl, self.settings.timeout)
            .map_err(kafka_err(
                &self.settings,
                &format!("reading group {group}'s offset on {}", topic.name()),
            ))?;
        Ok(got
            .find_partition(topic.name(), 0)
            .and_then(|e| match e.offset() {
                Offset::Offset(n) if n >= 0 => Some(n as u64),
                _ => None,
            })
            .unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_urls_name_their_brokers() {
        assert_eq!(brokers_of("kafka://a:9092,b:9092"), Some("a:9092,b:9092"));
        assert_eq!(
            brokers_of("kafka://127.0.0.1:9092/"),
            Some("127.0.0.1:9092")
        );
        assert_eq!(brokers_of("embedded"), None);
    }

    /// A broker that is down: a clear error naming the address, within
    /// the connect timeout (nothing listens on port 1).
    #[test]
    fn a_broker_that_is_down_is_named_within_the_timeout() {
        let started = std::time::Instant::now();
        let err = KafkaLog::open(KafkaSettings {
            brokers: "127.0.0.1:1".into(),
            replication: 3,
            min_insync_replicas: 2,
            retention: Duration::from_secs(7 * 86_400),
            timeout: Duration::from_secs(2),
        })
        .err()
        .expect("no broker listens on port 1")
        .to_string();
        assert!(err.contains("127.0.0.1:1"), "{err}");
        assert!(err.contains("no broker answered within 2 s"), "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
    }
}
