//! The JSON signalling protocol spoken over WebSocket (see `docs/protocol.md`).
//!
//! Pure protocol logic: parsing requests into typed values and rendering
//! responses and events. No I/O happens here, so every rule is unit-tested.

use mediasoup::prelude::{ConsumerId, ProducerId, TransportId};
use mediasoup::types::data_structures::{DtlsParameters, IceCandidate, IceParameters};
use mediasoup::types::rtp_parameters::{
    MediaKind, RtpCapabilities, RtpCapabilitiesFinalized, RtpParameters,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::{PeerId, RoomId};

pub use crate::room::{DataProducerInfo, Direction, PeerInfo, ProducerInfo};

mod controls;
pub use controls::{
    ConsumeDataReply, ConsumeDataRequest, PreferredLayersRequest, ProduceDataReply,
    ProduceDataRequest, TransportRequest,
};

/// The signalling protocol version this node speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// Machine-readable error codes sent to clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Malformed JSON, wrong field types or a binary frame.
    BadRequest,
    /// The method name is unknown.
    UnknownMethod,
    /// The requested protocol version is not supported.
    UnsupportedVersion,
    /// A method other than `join` before `join`.
    NotJoined,
    /// A second `join` on one socket.
    AlreadyJoined,
    /// The room is gone.
    UnknownRoom,
    /// Not one of this peer's transports.
    UnknownTransport,
    /// Not a producer this peer may act on.
    UnknownProducer,
    /// Not one of this peer's consumers.
    UnknownConsumer,
    /// The RTP capabilities cannot receive the producer.
    CannotConsume,
    /// mediasoup refused the parameters.
    InvalidParameters,
    /// No capacity left on this node.
    Capacity,
    /// This node is draining and takes no new participants; join through
    /// the error's `url` (or any other node) instead.
    Draining,
    /// A configured limit would be passed; the message names it.
    LimitExceeded,
    /// The node's policy refuses it (e.g. a plain transport aimed outside
    /// `rtc.plain_allowed_networks`).
    Forbidden,
    /// Anything else.
    Internal,
    /// `join` without a valid access token for the room (missing, expired,
    /// not yet valid, forged, for another room, or signed with an unknown
    /// key).
    Unauthorized,
}

/// An error reply: a code and a human-readable message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct SignalError {
    /// What kind of error.
    pub code: ErrorCode,
    /// Details for humans.
    pub message: String,
    /// Where to go instead (`draining`), when the node knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

impl SignalError {
    /// Builds an error.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            url: None,
        }
    }

    /// The same error, naming where to go instead.
    pub fn with_url(mut self, url: Option<String>) -> Self {
        self.url = url;
        self
    }
}

/// `join` arguments.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JoinRequest {
    /// Room name.
    pub room: String,
    /// The name other peers see.
    pub display_name: String,
    /// Protocol version the client speaks; absent means the current one.
    #[serde(default)]
    pub protocol_version: Option<u32>,
    /// The access token (or `?token=` on the WebSocket URL).
    #[serde(default)]
    pub token: Option<String>,
}

/// `createWebRtcTransport` arguments.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateTransportRequest {
    /// What the transport is for.
    pub direction: Direction,
    /// With SCTP, for DataChannels.
    #[serde(default)]
    pub enable_sctp: bool,
    /// mediasoup-client's `device.sctpCapabilities`: its presence enables
    /// SCTP as `enableSctp` does.
    #[serde(default)]
    pub sctp_capabilities: Option<Value>,
}

/// `connectWebRtcTransport` arguments.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConnectTransportRequest {
    /// One of this peer's transports.
    pub transport_id: TransportId,
    /// The client's DTLS role and fingerprints.
    pub dtls_parameters: DtlsParameters,
}

/// `createPlainTransport` arguments: a plain RTP transport (no ICE, no
/// DTLS, RTCP multiplexed), for servers, recorders and `mafalda loadgen`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreatePlainTransportRequest {
    /// What the transport is for.
    pub direction: Direction,
    /// Learn the remote address from the first packet received
    /// (mediasoup's `comedia`) instead of `connectPlainTransport`.
    #[serde(default)]
    pub comedia: bool,
}

/// `connectPlainTransport` arguments: where the node sends RTP and RTCP.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConnectPlainTransportRequest {
    /// One of this peer's plain transports.
    pub transport_id: TransportId,
    /// The remote IP address.
    pub ip: std::net::IpAddr,
    /// The remote port (RTP and RTCP).
    pub port: u16,
}

/// `produce` arguments.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProduceRequest {
    /// One of this peer's send transports.
    pub transport_id: TransportId,
    /// Audio or video.
    pub kind: MediaKind,
    /// What the client sends.
    pub rtp_parameters: RtpParameters,
    /// Opaque application data (ignored by the node).
    #[serde(default)]
    pub app_data: Option<Value>,
}

/// `consume` arguments.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConsumeRequest {
    /// One of this peer's receive transports.
    pub transport_id: TransportId,
    /// A producer of another peer in the room.
    pub producer_id: ProducerId,
    /// What the client can receive.
    pub rtp_capabilities: RtpCapabilities,
}

/// Arguments naming a consumer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConsumerRequest {
    /// One of this peer's consumers.
    pub consumer_id: ConsumerId,
}

/// Arguments naming a producer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProducerRequest {
    /// One of this peer's producers.
    pub producer_id: ProducerId,
}

/// A parsed client request.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// `join`
    Join(JoinRequest),
    /// `getRouterRtpCapabilities`
    GetRouterRtpCapabilities,
    /// `createWebRtcTransport`
    CreateWebRtcTransport(CreateTransportRequest),
    /// `connectWebRtcTransport`
    ConnectWebRtcTransport(ConnectTransportRequest),
    /// `createPlainTransport`
    CreatePlainTransport(CreatePlainTransportRequest),
    /// `connectPlainTransport`
    ConnectPlainTransport(ConnectPlainTransportRequest),
    /// `produce`
    Produce(ProduceRequest),
    /// `consume`
    Consume(ConsumeRequest),
    /// `resumeConsumer`
    ResumeConsumer(ConsumerRequest),
    /// `pauseConsumer`
    PauseConsumer(ConsumerRequest),
    /// `pauseProducer`
    PauseProducer(ProducerRequest),
    /// `resumeProducer`
    ResumeProducer(ProducerRequest),
    /// `closeProducer`
    CloseProducer(ProducerRequest),
    /// `leave`
    Leave,
    /// `closeConsumer`
    CloseConsumer(ConsumerRequest),
    /// `closeTransport`
    CloseTransport(TransportRequest),
    /// `restartIce`
    RestartIce(TransportRequest),
    /// `getTransportStats`
    GetTransportStats(TransportRequest),
    /// `setConsumerPreferredLayers`
    SetConsumerPreferredLayers(PreferredLayersRequest),
    /// `produceData`
    ProduceData(ProduceDataRequest),
    /// `consumeData`
    ConsumeData(ConsumeDataRequest),
}

impl Request {
    /// The method name, for logs.
    pub fn method(&self) -> &'static str {
        match self {
            Request::Join(_) => "join",
            Request::GetRouterRtpCapabilities => "getRouterRtpCapabilities",
            Request::CreateWebRtcTransport(_) => "createWebRtcTransport",
            Request::ConnectWebRtcTransport(_) => "connectWebRtcTransport",
            Request::CreatePlainTransport(_) => "createPlainTransport",
            Request::ConnectPlainTransport(_) => "connectPlainTransport",
            Request::Produce(_) => "produce",
            Request::Consume(_) => "consume",
            Request::ResumeConsumer(_) => "resumeConsumer",
            Request::PauseConsumer(_) => "pauseConsumer",
            Request::PauseProducer(_) => "pauseProducer",
            Request::ResumeProducer(_) => "resumeProducer",
            Request::CloseProducer(_) => "closeProducer",
            Request::Leave => "leave",
            Request::CloseConsumer(_) => "closeConsumer",
            Request::CloseTransport(_) => "closeTransport",
            Request::RestartIce(_) => "restartIce",
            Request::GetTransportStats(_) => "getTransportStats",
            Request::SetConsumerPreferredLayers(_) => "setConsumerPreferredLayers",
            Request::ProduceData(_) => "produceData",
            Request::ConsumeData(_) => "consumeData",
        }
    }
}

#[derive(Deserialize)]
struct Envelope {
    id: Option<Value>,
    method: Option<Value>,
    #[serde(default)]
    data: Value,
}

/// A request that could not be parsed; `id` is echoed when it was readable.
#[derive(Debug, Clone, PartialEq)]
pub struct ParseFailure {
    /// The request id, when the envelope had a valid one.
    pub id: Option<u64>,
    /// The method, when the envelope named one of the protocol's (its
    /// `data` was what failed).
    pub method: Option<&'static str>,
    /// Why parsing failed.
    pub error: SignalError,
}

/// A request's `data` as `T`. mediasoup's parameter types deserialize
/// with their own code; one that panics on some input (see
/// [`ascii_fingerprints`]) gives `bad_request` instead of taking the
/// session (or, for a spilled session, the sessions actor) down.
fn data<T: serde::de::DeserializeOwned>(method: &str, value: Value) -> Result<T, SignalError> {
    let value = if value.is_null() {
        Value::Object(Default::default())
    } else {
        value
    };
    let bad = |reason: String| {
        SignalError::new(
            ErrorCode::BadRequest,
            format!("invalid data for `{method}`: {reason}"),
        )
    };
    match std::panic::catch_unwind(move || serde_json::from_value::<T>(value)) {
        Ok(parsed) => parsed.map_err(|e| bad(e.to_string())),
        Err(_) => Err(bad("refused by the parameter parser".into())),
    }
}

/// Refuses DTLS fingerprint values that are not ASCII before mediasoup's
/// parser sees them: it slices them by byte offsets, and a multi-byte
/// character there would make it panic (found by `examples/fuzz.rs`).
fn ascii_fingerprints(data: &Value) -> Result<(), SignalError> {
    let fingerprints = data
        .get("dtlsParameters")
        .and_then(|p| p.get("fingerprints"))
        .and_then(Value::as_array);
    let bad = fingerprints.is_some_and(|list| {
        list.iter().any(|f| {
            f.get("value")
                .and_then(Value::as_str)
                .is_some_and(|v| !v.is_ascii())
        })
    });
    if bad {
        return Err(SignalError::new(
            ErrorCode::BadRequest,
            "invalid data for `connectWebRtcTransport`: a fingerprint value must be hex bytes separated by colons",
        ));
    }
    Ok(())
}

type ParseData = fn(&str, Value) -> Result<Request, SignalError>;

/// Every method of the protocol, with how its `data` is read: the one list
/// the parser, the docs check and clients' tests share.
pub const METHODS: &[(&str, ParseData)] = &[
    ("join", |m, d| Ok(Request::Join(data(m, d)?))),
    ("getRouterRtpCapabilities", |_, _| {
        Ok(Request::GetRouterRtpCapabilities)
    }),
    ("createWebRtcTransport", |m, d| {
        Ok(Request::CreateWebRtcTransport(data(m, d)?))
    }),
    ("connectWebRtcTransport", |m, d| {
        ascii_fingerprints(&d)?;
        Ok(Request::ConnectWebRtcTransport(data(m, d)?))
    }),
    ("createPlainTransport", |m, d| {
        Ok(Request::CreatePlainTransport(data(m, d)?))
    }),
    ("connectPlainTransport", |m, d| {
        Ok(Request::ConnectPlainTransport(data(m, d)?))
    }),
    ("produce", |m, d| Ok(Request::Produce(data(m, d)?))),
    ("consume", |m, d| Ok(Request::Consume(data(m, d)?))),
    ("resumeConsumer", |m, d| {
        Ok(Request::ResumeConsumer(data(m, d)?))
    }),
    ("pauseConsumer", |m, d| {
        Ok(Request::PauseConsumer(data(m, d)?))
    }),
    ("pauseProducer", |m, d| {
        Ok(Request::PauseProducer(data(m, d)?))
    }),
    ("resumeProducer", |m, d| {
        Ok(Request::ResumeProducer(data(m, d)?))
    }),
    ("closeProducer", |m, d| {
        Ok(Request::CloseProducer(data(m, d)?))
    }),
    ("leave", |_, _| Ok(Request::Leave)),
    ("closeConsumer", |m, d| {
        Ok(Request::CloseConsumer(data(m, d)?))
    }),
    ("closeTransport", |m, d| {
        Ok(Request::CloseTransport(data(m, d)?))
    }),
    ("restartIce", |m, d| Ok(Request::RestartIce(data(m, d)?))),
    ("getTransportStats", |m, d| {
        Ok(Request::GetTransportStats(data(m, d)?))
    }),
    ("setConsumerPreferredLayers", |m, d| {
        Ok(Request::SetConsumerPreferredLayers(data(m, d)?))
    }),
    ("produceData", |m, d| Ok(Request::ProduceData(data(m, d)?))),
    ("consumeData", |m, d| Ok(Request::ConsumeData(data(m, d)?))),
];

/// The name of every event of the protocol (`Event`'s `event` field).
pub const EVENTS: &[&str] = &[
    "peerJoined",
    "peerLeft",
    "newProducer",
    "producerClosed",
    "producerPaused",
    "producerResumed",
    "consumerClosed",
    "reconnect",
    "newDataProducer",
    "dataProducerClosed",
    "activeSpeaker",
];

/// Parses one text frame into a request id and a typed request.
pub fn parse_request(text: &str) -> Result<(u64, Request), ParseFailure> {
    let envelope: Envelope = serde_json::from_str(text).map_err(|e| ParseFailure {
        id: None,
        method: None,
        error: SignalError::new(ErrorCode::BadRequest, format!("malformed JSON: {e}")),
    })?;
    let id = match envelope.id.as_ref().and_then(Value::as_u64) {
        Some(id) => id,
        None => {
            return Err(ParseFailure {
                id: None,
                method: None,
                error: SignalError::new(ErrorCode::BadRequest, "`id` must be an unsigned integer"),
            })
        }
    };
    let fail = |error| ParseFailure {
        id: Some(id),
        method: None,
        error,
    };
    let method = match envelope.method.as_ref().and_then(Value::as_str) {
        Some(m) => m.to_owned(),
        None => {
            return Err(fail(SignalError::new(
                ErrorCode::BadRequest,
                "`method` must be a string",
            )))
        }
    };
    let Some((name, parse)) = METHODS.iter().find(|(name, _)| *name == method) else {
        let shown: String = method.chars().take(64).collect();
        return Err(fail(SignalError::new(
            ErrorCode::UnknownMethod,
            format!("unknown method `{shown}`"),
        )));
    };
    let request = parse(&method, envelope.data).map_err(|error| ParseFailure {
        method: Some(*name),
        ..fail(error)
    })?;
    Ok((id, request))
}

/// `join` reply.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinReply {
    /// The id the node gave this peer.
    pub peer_id: PeerId,
    /// The room joined.
    pub room_id: RoomId,
    /// Load `mediasoup-client`'s device with this.
    pub router_rtp_capabilities: RtpCapabilitiesFinalized,
    /// The other peers already in the room.
    pub peers: Vec<PeerInfo>,
    /// Their producers.
    pub producers: Vec<ProducerInfo>,
    /// Their DataChannels (data producers on this node).
    pub data_producers: Vec<DataProducerInfo>,
}

/// `createWebRtcTransport` reply.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TransportReply {
    /// Transport id.
    pub id: TransportId,
    /// ICE username fragment and password.
    pub ice_parameters: IceParameters,
    /// Where to send media.
    pub ice_candidates: Vec<IceCandidate>,
    /// The node's DTLS fingerprints.
    pub dtls_parameters: DtlsParameters,
    /// The node's SCTP parameters, when SCTP was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sctp_parameters: Option<mediasoup::types::sctp_parameters::SctpParameters>,
}

/// `createPlainTransport` reply: where the client sends RTP (and RTCP).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlainTransportReply {
    /// Transport id.
    pub id: TransportId,
    /// The node's address (the announced one when configured).
    pub ip: String,
    /// The node's port.
    pub port: u16,
}

/// `produce` reply.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProduceReply {
    /// The new producer's id.
    pub id: ProducerId,
}

/// `consume` reply.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumeReply {
    /// The new consumer's id.
    pub id: ConsumerId,
    /// The producer it receives.
    pub producer_id: ProducerId,
    /// Audio or video.
    pub kind: MediaKind,
    /// What the client will receive.
    pub rtp_parameters: RtpParameters,
    /// Whether the producer is paused right now.
    pub producer_paused: bool,
}

/// An event pushed to a client: the JSON form of [`room::Event`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", content = "data", rename_all = "camelCase")]
pub enum Event {
    /// Another peer joined.
    PeerJoined(PeerInfo),
    /// Another peer left.
    #[serde(rename_all = "camelCase")]
    PeerLeft {
        /// Who.
        peer_id: PeerId,
    },
    /// Another peer started sending.
    NewProducer(ProducerInfo),
    /// A producer went away.
    #[serde(rename_all = "camelCase")]
    ProducerClosed {
        /// Which.
        producer_id: ProducerId,
    },
    /// A producer was paused.
    #[serde(rename_all = "camelCase")]
    ProducerPaused {
        /// Which.
        producer_id: ProducerId,
    },
    /// A producer was resumed.
    #[serde(rename_all = "camelCase")]
    ProducerResumed {
        /// Which.
        producer_id: ProducerId,
    },
    /// One of this peer's consumers was closed because its producer went away.
    #[serde(rename_all = "camelCase")]
    ConsumerClosed {
        /// Which consumer.
        consumer_id: ConsumerId,
        /// Its producer.
        producer_id: ProducerId,
    },
    /// This peer lost its place in the room (the worker or node serving
    /// its media died: the server closes the socket next), or must move
    /// (its node drains: the socket stays open until the node stops). Join
    /// again to continue, through `url` when given.
    Reconnect {
        /// Why, for logs.
        reason: String,
        /// The signalling URL to join through, when the server names one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        url: Option<String>,
    },
    /// Another peer opened a DataChannel.
    NewDataProducer(DataProducerInfo),
    /// A DataChannel went away.
    #[serde(rename_all = "camelCase")]
    DataProducerClosed {
        /// Which.
        data_producer_id: mediasoup::prelude::DataProducerId,
    },
    /// The room's loudest speaker changed.
    #[serde(rename_all = "camelCase")]
    ActiveSpeaker {
        /// Whose producer.
        peer_id: PeerId,
        /// The audio producer.
        producer_id: ProducerId,
    },
}

#[derive(Serialize)]
struct ResponseOut<'a> {
    response: bool,
    id: Option<u64>,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a SignalError>,
}

/// Renders a success response.
pub fn ok_response(id: u64, data: &Value) -> String {
    serde_json::to_string(&ResponseOut {
        response: true,
        id: Some(id),
        ok: true,
        data: Some(data),
        error: None,
    })
    .unwrap_or_default()
}

/// Renders an error response; `id` is `None` when the request had no readable id.
pub fn error_response(id: Option<u64>, error: &SignalError) -> String {
    serde_json::to_string(&ResponseOut {
        response: true,
        id,
        ok: false,
        data: None,
        error: Some(error),
    })
    .unwrap_or_default()
}

/// Renders an event.
pub fn event_message(event: &Event) -> String {
    serde_json::to_string(event).unwrap_or_default()
}

/// Checks a join request's version and names against the limits.
pub fn validate_join(
    join: &JoinRequest,
    max_room_chars: usize,
    max_name_chars: usize,
) -> Result<(), SignalError> {
    if let Some(v) = join.protocol_version {
        if v != PROTOCOL_VERSION {
            return Err(SignalError::new(
                ErrorCode::UnsupportedVersion,
                format!("client speaks protocol version {v}, this node speaks {PROTOCOL_VERSION}"),
            ));
        }
    }
    let room_len = join.room.chars().count();
    if room_len == 0 || room_len > max_room_chars || join.room.chars().any(char::is_control) {
        return Err(SignalError::new(
            ErrorCode::BadRequest,
            format!("`room` must be 1..={max_room_chars} printable characters"),
        ));
    }
    let name_len = join.display_name.chars().count();
    if name_len > max_name_chars || join.display_name.chars().any(char::is_control) {
        return Err(SignalError::new(
            ErrorCode::BadRequest,
            format!("`displayName` must be at most {max_name_chars} printable characters"),
        ));
    }
    Ok(())
}

mod mapping;

#[cfg(test)]
mod tests;
