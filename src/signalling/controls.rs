//! The protocol's requests that control one entity (close a consumer or a
//! transport, restart ICE, transport stats, preferred layers) and its
//! DataChannel requests and replies.

use mediasoup::prelude::{ConsumerId, DataConsumerId, DataProducerId, TransportId};
use mediasoup::types::sctp_parameters::SctpStreamParameters;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Arguments naming a transport.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TransportRequest {
    /// One of this peer's transports.
    pub transport_id: TransportId,
}

/// `setConsumerPreferredLayers`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PreferredLayersRequest {
    /// One of this peer's consumers.
    pub consumer_id: ConsumerId,
    /// The spatial layer (simulcast stream or SVC spatial layer), from 0.
    pub spatial_layer: u8,
    /// The temporal layer, from 0; the highest when absent.
    #[serde(default)]
    pub temporal_layer: Option<u8>,
}

/// `produceData`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProduceDataRequest {
    /// One of this peer's send transports, made with SCTP.
    pub transport_id: TransportId,
    /// The DataChannel's SCTP stream (mediasoup-client's
    /// `sctpStreamParameters`).
    pub sctp_stream_parameters: SctpStreamParameters,
    /// The DataChannel's label.
    #[serde(default)]
    pub label: String,
    /// The DataChannel's sub-protocol.
    #[serde(default)]
    pub protocol: String,
    /// Ignored (mediasoup-client sends it).
    #[serde(default)]
    pub app_data: Option<Value>,
}

/// `consumeData`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConsumeDataRequest {
    /// One of this peer's receive transports, made with SCTP.
    pub transport_id: TransportId,
    /// Another peer's data producer.
    pub data_producer_id: DataProducerId,
}

/// The reply to `produceData`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProduceDataReply {
    /// The data producer's id.
    pub id: DataProducerId,
}

/// The reply to `consumeData`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumeDataReply {
    /// The data consumer's id.
    pub id: DataConsumerId,
    /// What it receives.
    pub data_producer_id: DataProducerId,
    /// The SCTP stream the client receives it on.
    pub sctp_stream_parameters: Option<SctpStreamParameters>,
    /// The DataChannel's label.
    pub label: String,
    /// The DataChannel's sub-protocol.
    pub protocol: String,
}
