//! A log-level `read_committed` reader: fetches a topic's raw record batches
//! and applies the transaction markers itself, exactly as KIP-98 defines
//! `read_committed`.
//!
//! Why it exists: a broker is supposed to list the aborted transactions in
//! every fetch response so clients can drop their records; the local test
//! broker never does, so an ordinary `read_committed` consumer shows aborted
//! records from it. This reader trusts only the log itself: per partition,
//! in offset order, records of a non-transactional batch are visible;
//! records of a transactional batch are held per producer id until that
//! producer's next control batch on the partition, which makes them visible
//! (COMMIT) or drops them (ABORT); records still held at the end belong to
//! an open transaction and are not visible. Against a real Kafka cluster it
//! returns what any `read_committed` consumer returns.
//!
//! It reads a whole topic into memory: a tool for tests, the quickstart and
//! `recast inspect`, not for the data path.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    BrokerId, FetchRequest, FetchResponse, MetadataRequest, MetadataResponse, RequestHeader,
    ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{
    Decodable, HeaderVersion, Request, StrBytes, encode_request_header_into_buffer,
};
use kafka_protocol::records::{Compression, RecordBatchDecoder};

const METADATA_VERSION: i16 = 4;
const FETCH_VERSION: i16 = 11;
/// Control record key type of a COMMIT marker (ABORT is 0).
const CONTROL_COMMIT: i16 = 1;

/// A committed record of a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedRecord {
    pub partition: i32,
    pub offset: i64,
    pub timestamp_ms: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
}

impl CommittedRecord {
    /// The value of the first header named `name`, as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.as_ref())
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }
}

/// What reading a topic found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicLog {
    /// Committed records, per partition in offset order, partitions in order.
    pub committed: Vec<CommittedRecord>,
    /// Records of aborted transactions (dropped).
    pub aborted: usize,
    /// Records of transactions still open at the end of the log (not visible).
    pub open: usize,
    /// Each partition's high watermark (log end offset).
    pub end_offsets: BTreeMap<i32, i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum LogReadError {
    #[error("{broker}")]
    Io {
        broker: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Protocol(String),
    #[error("topic `{topic}`: {message}")]
    Topic { topic: String, message: String },
}

/// Reads every committed record of `topic`.
pub fn read_committed(
    bootstrap: &str,
    topic: &str,
    timeout: Duration,
) -> Result<TopicLog, LogReadError> {
    let first = bootstrap.split(',').next().unwrap_or(bootstrap).trim();
    let mut bootstrap_conn = Connection::open(first, timeout)?;
    let (brokers, leaders) = bootstrap_conn.metadata(topic)?;
    let mut connections: HashMap<i32, Connection> = HashMap::new();
    let mut log = TopicLog::default();
    for (partition, leader) in leaders {
        let conn = match connections.entry(leader) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let address = brokers.get(&leader).ok_or_else(|| {
                    LogReadError::Protocol(format!(
                        "leader {leader} of partition {partition} unknown"
                    ))
                })?;
                e.insert(Connection::open(address, timeout)?)
            }
        };
        let (batches, end) = conn.fetch_partition(topic, partition, timeout)?;
        log.end_offsets.insert(partition, end);
        apply_markers(partition, batches, &mut log);
    }
    Ok(log)
}

/// The committed records of one partition's record data (as a fetch
/// response carries it, from the partition's first offset): the reader's
/// parsing and `read_committed` rule without a broker, for the fuzz
/// targets and offline checks.
pub fn committed_in(data: &[u8]) -> Result<TopicLog, LogReadError> {
    let mut log = TopicLog::default();
    apply_markers(0, split_batches(Bytes::copy_from_slice(data))?, &mut log);
    Ok(log)
}

/// One decoded batch: its transactional flags and records.
struct RawBatch {
    transactional: bool,
    control: bool,
    producer_id: i64,
    records: Vec<kafka_protocol::records::Record>,
}

/// The heart of the reader: KIP-98 `read_committed` over one partition.
fn apply_markers(partition: i32, batches: Vec<RawBatch>, log: &mut TopicLog) {
    let mut held: HashMap<i64, Vec<CommittedRecord>> = HashMap::new();
    for batch in batches {
        if batch.control {
            let pending = held.remove(&batch.producer_id).unwrap_or_default();
            let commit = batch
                .records
                .first()
                .and_then(|r| r.key.as_ref())
                .filter(|k| k.len() >= 4)
                .is_some_and(|k| i16::from_be_bytes([k[2], k[3]]) == CONTROL_COMMIT);
            if commit {
                log.committed.extend(pending);
            } else {
                log.aborted += pending.len();
            }
            continue;
        }
        let records = batch.records.into_iter().map(|r| CommittedRecord {
            partition,
            offset: r.offset,
            timestamp_ms: r.timestamp,
            key: r.key,
            value: r.value,
            headers: r
                .headers
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        });
        if batch.transactional {
            held.entry(batch.producer_id).or_default().extend(records);
        } else {
            log.committed.extend(records);
        }
    }
    log.open += held.values().map(Vec::len).sum::<usize>();
}

struct Connection {
    address: String,
    stream: TcpStream,
    correlation: i32,
}

impl Connection {
    fn open(address: &str, timeout: Duration) -> Result<Self, LogReadError> {
        let io = |source| LogReadError::Io {
            broker: address.to_owned(),
            source,
        };
        let socket = std::net::ToSocketAddrs::to_socket_addrs(address)
            .map_err(io)?
            .next()
            .ok_or_else(|| io(std::io::Error::other("no address")))?;
        let stream = TcpStream::connect_timeout(&socket, timeout).map_err(io)?;
        stream.set_read_timeout(Some(timeout)).map_err(io)?;
        Ok(Self {
            address: address.to_owned(),
            stream,
            correlation: 0,
        })
    }

    fn call<Req: Request>(
        &mut self,
        request: &Req,
        version: i16,
    ) -> Result<Req::Response, LogReadError> {
        let protocol = |e: anyhow::Error| LogReadError::Protocol(format!("{}: {e}", self.address));
        self.correlation += 1;
        let header = RequestHeader::default()
            .with_request_api_key(Req::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str("recast-log-reader")));
        let mut body = BytesMut::new();
        encode_request_header_into_buffer(&mut body, &header).map_err(protocol)?;
        request.encode(&mut body, version).map_err(protocol)?;
        let io = |source| LogReadError::Io {
            broker: self.address.clone(),
            source,
        };
        let mut frame = Vec::with_capacity(body.len() + 4);
        frame.extend_from_slice(&(body.len() as i32).to_be_bytes());
        frame.extend_from_slice(&body);
        self.stream.write_all(&frame).map_err(io)?;
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).map_err(io)?;
        let mut response = vec![0u8; i32::from_be_bytes(size).max(0) as usize];
        self.stream.read_exact(&mut response).map_err(io)?;
        let mut buf = Bytes::from(response);
        let protocol = |e: anyhow::Error| LogReadError::Protocol(format!("{}: {e}", self.address));
        let header = ResponseHeader::decode(&mut buf, Req::Response::header_version(version))
            .map_err(protocol)?;
        if header.correlation_id != self.correlation {
            return Err(LogReadError::Protocol(format!(
                "{}: response for request {} while waiting for {}",
                self.address, header.correlation_id, self.correlation
            )));
        }
        Req::Response::decode(&mut buf, version).map_err(protocol)
    }

    /// Broker addresses by id, and each partition's leader.
    #[allow(clippy::type_complexity)]
    fn metadata(
        &mut self,
        topic: &str,
    ) -> Result<(HashMap<i32, String>, BTreeMap<i32, i32>), LogReadError> {
        let request = MetadataRequest::default()
            .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(
                TopicName(StrBytes::from_string(topic.to_owned())),
            ))]))
            .with_allow_auto_topic_creation(false);
        let response: MetadataResponse = self.call(&request, METADATA_VERSION)?;
        let brokers = response
            .brokers
            .iter()
            .map(|b| (b.node_id.0, format!("{}:{}", b.host, b.port)))
            .collect();
        let found = response
            .topics
            .iter()
            .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic))
            .ok_or_else(|| LogReadError::Topic {
                topic: topic.to_owned(),
                message: "not in the metadata".into(),
            })?;
        if found.error_code != 0 {
            return Err(LogReadError::Topic {
                topic: topic.to_owned(),
                message: format!("metadata error code {}", found.error_code),
            });
        }
        let leaders = found
            .partitions
            .iter()
            .map(|p| (p.partition_index, p.leader_id.0))
            .collect();
        Ok((brokers, leaders))
    }

    /// Every batch of one partition from its start to its high watermark.
    fn fetch_partition(
        &mut self,
        topic: &str,
        partition: i32,
        timeout: Duration,
    ) -> Result<(Vec<RawBatch>, i64), LogReadError> {
        let deadline = Instant::now() + timeout;
        let mut batches = Vec::new();
        let mut next = 0i64;
        loop {
            let request = FetchRequest::default()
                .with_replica_id(BrokerId(-1))
                // Some brokers answer an empty response to a zero wait: allow
                // a short one; min_bytes 0 still answers as soon as it can.
                .with_max_wait_ms(200)
                .with_min_bytes(0)
                .with_max_bytes(64 << 20)
                // read_uncommitted: the reader needs every batch, markers
                // and open transactions included, to decide for itself.
                .with_isolation_level(0)
                .with_session_id(0)
                .with_session_epoch(-1)
                .with_topics(vec![
                    FetchTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(topic.to_owned())))
                        .with_partitions(vec![
                            FetchPartition::default()
                                .with_partition(partition)
                                .with_fetch_offset(next)
                                .with_current_leader_epoch(-1)
                                .with_log_start_offset(-1)
                                .with_partition_max_bytes(16 << 20),
                        ]),
                ]);
            let response: FetchResponse = self.call(&request, FETCH_VERSION)?;
            let data = response
                .responses
                .first()
                .and_then(|t| t.partitions.first())
                .ok_or_else(|| {
                    LogReadError::Protocol(format!("empty fetch response for {topic}/{partition}"))
                })?;
            if data.error_code != 0 {
                return Err(LogReadError::Topic {
                    topic: topic.to_owned(),
                    message: format!(
                        "partition {partition}: fetch error code {}",
                        data.error_code
                    ),
                });
            }
            let end = data.high_watermark;
            let before = next;
            if let Some(records) = &data.records {
                for batch in split_batches(records.clone())? {
                    let last = batch.records.iter().map(|r| r.offset).max();
                    if let Some(last) = last {
                        next = next.max(last + 1);
                    }
                    batches.push(batch);
                }
            }
            if next >= end {
                return Ok((batches, end));
            }
            if next == before && Instant::now() > deadline {
                return Err(LogReadError::Protocol(format!(
                    "{topic}/{partition}: no progress past offset {next} (end {end})"
                )));
            }
        }
    }
}

/// The fewest bytes a v2 record takes: seven one-byte varints (length,
/// attributes, timestamp and offset deltas, key and value lengths, header
/// count).
const MIN_RECORD_BYTES: usize = 7;
/// The most records a compressed batch may claim: its decompressed size is
/// only known inside the decoder. (A million records is beyond any
/// producer's batch.)
const MAX_COMPRESSED_RECORDS: usize = 1 << 20;

/// Splits a fetch response's record data into decoded batches. A trailing
/// partial batch (brokers may cut a response mid-batch) is left for the
/// next fetch.
fn split_batches(mut data: Bytes) -> Result<Vec<RawBatch>, LogReadError> {
    // Base offset (8 bytes) and batch length (4 bytes) precede every batch.
    const PREFIX: usize = 12;
    let mut batches = Vec::new();
    while data.len() >= PREFIX {
        let length = i32::from_be_bytes([data[8], data[9], data[10], data[11]]).max(0) as usize;
        if data.len() < PREFIX + length {
            break;
        }
        let mut one = data.split_to(PREFIX + length);
        let info = RecordBatchDecoder::decode_batch_info(&mut one.clone())
            .map_err(|e| LogReadError::Protocol(format!("batch header: {e}")))?;
        // The decoder reserves room for the header's record count before
        // reading a record: a count the batch cannot hold would abort the
        // process on a failed allocation (found by the fuzz target).
        if let Some(count) = info.iter().map(|i| i.record_count).find(|c| {
            let most = if info[0].compression == Compression::None {
                length / MIN_RECORD_BYTES
            } else {
                MAX_COMPRESSED_RECORDS
            };
            usize::try_from(*c).map_or(true, |c| c > most)
        }) {
            return Err(LogReadError::Protocol(format!(
                "record batch of {length} bytes claims {count} records"
            )));
        }
        let set = RecordBatchDecoder::decode(&mut one)
            .map_err(|e| LogReadError::Protocol(format!("record batch: {e}")))?;
        let info = info.into_iter().next();
        batches.push(RawBatch {
            transactional: info.as_ref().is_some_and(|i| i.transactional),
            control: info.as_ref().is_some_and(|i| i.control),
            producer_id: info.as_ref().map_or(-1, |i| i.producer_id),
            records: set.records,
        });
        debug_assert!(!one.has_remaining());
    }
    Ok(batches)
}

#[cfg(test)]
mod tests {
    use kafka_protocol::records::{Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};

    use super::*;

    fn record(producer_id: i64, offset: i64, key: &[u8], value: Option<&[u8]>) -> Record {
        Record {
            transactional: producer_id >= 0,
            control: false,
            partition_leader_epoch: 0,
            producer_id,
            producer_epoch: 0,
            timestamp_type: TimestampType::Creation,
            offset,
            sequence: 0,
            timestamp: 1_764_000_000_000,
            key: Some(Bytes::copy_from_slice(key)),
            value: value.map(Bytes::copy_from_slice),
            headers: [("recast.stage".into(), Some(Bytes::from_static(b"decode")))].into(),
            delete_horizon: false,
        }
    }

    /// A control batch: the marker ending `producer_id`'s transaction.
    fn marker(producer_id: i64, offset: i64, commit: bool) -> Record {
        let kind = if commit { CONTROL_COMMIT } else { 0 };
        let mut key = vec![0, 0];
        key.extend_from_slice(&kind.to_be_bytes());
        Record {
            control: true,
            key: Some(key.into()),
            value: Some(Bytes::from_static(&[0, 0, 0, 0, 0, 0])),
            headers: [].into(),
            ..record(producer_id, offset, b"", None)
        }
    }

    fn encode(records: &[Record], compression: Compression, out: &mut BytesMut) {
        let options = RecordEncodeOptions {
            version: 2,
            compression,
        };
        RecordBatchEncoder::encode(out, records, &options).unwrap();
    }

    /// One partition's log: a committed transaction (gzip), an aborted one
    /// (zstd), a plain record, a transaction still open (lz4).
    fn partition_log() -> Vec<u8> {
        let mut out = BytesMut::new();
        encode(
            &[record(1, 0, b"a", Some(b"one")), record(1, 1, b"b", None)],
            Compression::Gzip,
            &mut out,
        );
        encode(
            &[record(2, 2, b"c", Some(b"aborted"))],
            Compression::Zstd,
            &mut out,
        );
        encode(&[marker(1, 3, true)], Compression::None, &mut out);
        encode(&[marker(2, 4, false)], Compression::None, &mut out);
        encode(
            &[record(-1, 5, b"d", Some(b"plain"))],
            Compression::Snappy,
            &mut out,
        );
        encode(
            &[record(3, 6, b"e", Some(b"open"))],
            Compression::Lz4,
            &mut out,
        );
        out.to_vec()
    }

    #[test]
    fn committed_records_are_those_of_committed_transactions_and_plain_batches() {
        let log = committed_in(&partition_log()).unwrap();
        let offsets: Vec<_> = log.committed.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, [0, 1, 5]);
        assert_eq!((log.aborted, log.open), (1, 1));
        assert_eq!(
            log.committed[0].header("recast.stage").as_deref(),
            Some("decode")
        );
        assert_eq!(log.committed[1].value, None);
        // A batch cut short by the fetch is left for the next one.
        let cut = partition_log();
        assert_eq!(committed_in(&cut[..cut.len() - 3]).unwrap().open, 0);
    }

    /// Inputs the fuzz target crashed on (`fuzz/regressions/log_batches/`):
    /// each gets an answer, not an abort.
    #[test]
    fn the_fuzz_targets_crashes_are_refused() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/regressions/log_batches");
        // A batch whose header claims billions of records, which the
        // decoder would reserve room for.
        let data = std::fs::read(format!("{dir}/record-count-beyond-the-batch.bin")).unwrap();
        let error = committed_in(&data).unwrap_err().to_string();
        assert!(error.contains("bytes claims"), "{error}");
    }

    /// The log above is the log reader's fuzz seed
    /// (`fuzz/seeds/log_batches/`); `RECAST_BLESS=1` rewrites it.
    #[test]
    fn the_fuzz_seed_is_the_log_above() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fuzz/seeds/log_batches/partition.bin"
        );
        if std::env::var_os("RECAST_BLESS").is_some() {
            std::fs::write(path, partition_log()).unwrap();
        }
        let seed = std::fs::read(path).unwrap();
        assert_eq!(
            committed_in(&seed).unwrap(),
            committed_in(&partition_log()).unwrap()
        );
    }
}
