//! What a joined participant's signalling requests do: one request, run
//! on the participant through the embedding facade, answered with the
//! protocol's JSON reply. Shared by the WebSocket session and by sessions
//! hosted for another node's signalling ([`crate::spill`]).

use serde_json::{json, Value};

use mediasoup::prelude::ConsumerLayers;

use crate::room::{
    CloseConsumer, CloseTransport, ConsumeData, ProduceData, ProducerAction, RestartIce,
    SetPreferredLayers, Toggle, TransportStats,
};
use crate::sfu::{ConsumerOptions, Participant, ProducerOptions, SfuError};
use crate::signalling::{
    ConsumeDataReply, ConsumeReply, ErrorCode, PlainTransportReply, ProduceDataReply, ProduceReply,
    Request, SignalError, TransportReply,
};

fn to_value<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// Runs `request` for the joined participant `p`. `join` and `leave` are
/// the session's business and answered here as errors.
pub async fn on_participant(p: &Participant, request: Request) -> Result<Value, SignalError> {
    match request {
        Request::Join(_) => Err(SignalError::new(
            ErrorCode::AlreadyJoined,
            "this socket already joined a room",
        )),
        Request::Leave => Err(SignalError::new(
            ErrorCode::Internal,
            "`leave` is handled by the session",
        )),
        Request::GetRouterRtpCapabilities => {
            let caps = p.rtp_capabilities().await.map_err(signal)?;
            Ok(json!({ "routerRtpCapabilities": caps }))
        }
        Request::CreateWebRtcTransport(r) => {
            let sctp = r.enable_sctp || r.sctp_capabilities.is_some();
            let t = p
                .create_webrtc_transport_with(r.direction, sctp)
                .await
                .map_err(signal)?;
            Ok(to_value(&TransportReply {
                id: t.id(),
                ice_parameters: t.ice_parameters().clone(),
                ice_candidates: t.ice_candidates().clone(),
                dtls_parameters: t.dtls_parameters(),
                sctp_parameters: t.sctp_parameters(),
            }))
        }
        Request::ConnectWebRtcTransport(r) => {
            done(p.connect_transport(r.transport_id, r.dtls_parameters).await)
        }
        Request::CreatePlainTransport(r) => {
            let t = p
                .create_plain_transport(r.direction, r.comedia)
                .await
                .map_err(signal)?;
            let (ip, port) = t.local();
            Ok(to_value(&PlainTransportReply {
                id: t.id(),
                ip: ip.to_owned(),
                port,
            }))
        }
        Request::ConnectPlainTransport(r) => done(
            p.connect_plain_transport(r.transport_id, std::net::SocketAddr::new(r.ip, r.port))
                .await,
        ),
        Request::Produce(r) => {
            let options = ProducerOptions::new(r.kind, r.rtp_parameters);
            let producer = p.produce(r.transport_id, options).await.map_err(signal)?;
            Ok(to_value(&ProduceReply { id: producer.id() }))
        }
        Request::Consume(r) => {
            let options = ConsumerOptions::new(r.producer_id, r.rtp_capabilities);
            let c = p.consume(r.transport_id, options).await.map_err(signal)?;
            Ok(to_value(&ConsumeReply {
                id: c.id(),
                producer_id: c.producer_id(),
                kind: c.kind(),
                rtp_parameters: c.rtp_parameters().clone(),
                producer_paused: c.producer_paused(),
            }))
        }
        Request::ResumeConsumer(r) => done(p.toggle_consumer(r.consumer_id, Toggle::Resume).await),
        Request::PauseConsumer(r) => done(p.toggle_consumer(r.consumer_id, Toggle::Pause).await),
        Request::PauseProducer(r) => done(
            p.act_on_producer(r.producer_id, ProducerAction::Pause)
                .await,
        ),
        Request::ResumeProducer(r) => done(
            p.act_on_producer(r.producer_id, ProducerAction::Resume)
                .await,
        ),
        Request::CloseProducer(r) => done(
            p.act_on_producer(r.producer_id, ProducerAction::Close)
                .await,
        ),
        Request::CloseConsumer(r) => done(
            p.request(|peer_id| CloseConsumer {
                peer_id,
                consumer_id: r.consumer_id,
            })
            .await,
        ),
        Request::CloseTransport(r) => done(
            p.request(|peer_id| CloseTransport {
                peer_id,
                transport_id: r.transport_id,
            })
            .await,
        ),
        Request::RestartIce(r) => {
            let ice = p
                .request(|peer_id| RestartIce {
                    peer_id,
                    transport_id: r.transport_id,
                })
                .await
                .map_err(signal)?;
            Ok(json!({ "iceParameters": ice }))
        }
        Request::GetTransportStats(r) => {
            let stats = p
                .request(|peer_id| TransportStats {
                    peer_id,
                    transport_id: r.transport_id,
                })
                .await
                .map_err(signal)?;
            Ok(json!({ "stats": stats }))
        }
        Request::SetConsumerPreferredLayers(r) => done(
            p.request(|peer_id| SetPreferredLayers {
                peer_id,
                consumer_id: r.consumer_id,
                layers: ConsumerLayers {
                    spatial_layer: r.spatial_layer,
                    temporal_layer: r.temporal_layer,
                },
            })
            .await,
        ),
        Request::ProduceData(r) => {
            let id = p
                .request(|peer_id| ProduceData {
                    peer_id,
                    transport_id: r.transport_id,
                    sctp_stream_parameters: r.sctp_stream_parameters,
                    label: r.label,
                    protocol: r.protocol,
                })
                .await
                .map_err(signal)?;
            Ok(to_value(&ProduceDataReply { id }))
        }
        Request::ConsumeData(r) => {
            let c = p
                .request(|peer_id| ConsumeData {
                    peer_id,
                    transport_id: r.transport_id,
                    data_producer_id: r.data_producer_id,
                })
                .await
                .map_err(signal)?;
            Ok(to_value(&ConsumeDataReply {
                id: c.id,
                data_producer_id: c.data_producer_id,
                sctp_stream_parameters: c.sctp_stream_parameters,
                label: c.label,
                protocol: c.protocol,
            }))
        }
    }
}

fn signal(e: SfuError) -> SignalError {
    e.to_signal()
}

/// The response data of a request that returns nothing.
fn done(r: Result<(), SfuError>) -> Result<Value, SignalError> {
    r.map(|()| json!({})).map_err(signal)
}
