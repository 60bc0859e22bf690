//! A stable-toolchain mutation fuzzer for the node's two parsers of
//! untrusted input (`cargo fuzz` needs nightly, which this project does
//! not use):
//!
//! - `signalling`: a WebSocket text frame → `signalling::parse_request`
//!   (JSON to a typed request) and `validate_join`;
//! - `fabric`: a byte stream from a peer → the frame decoder, then every
//!   header and message decoder of the fabric (`wire::Request`,
//!   `TellHeader`, `Reply`, the handshake, and the SFU's `RoomCall`,
//!   `SpillJoin`, `SessionRequest` and gossiped load).
//!
//! Inputs are made from a corpus of valid messages by random mutations
//! (bit flips, byte insertions and deletions, interesting bytes and
//! integers, duplicated and spliced runs). There is no coverage feedback.
//! A panic is caught, reported with its input (hex), and fails the run; so
//! does an input that takes more than a second.
//!
//! ```text
//! cargo run --release --example fuzz -- [signalling|fabric|all] [INPUTS] [SEED]
//! ```
//!
//! Prints inputs per second per target.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use mafalda::cluster::GossipedLoad;
use mafalda::ids::{PeerId, RoomId};
use mafalda::room::fabric::{RoomCall, ShardCall};
use mafalda::signalling::{parse_request, validate_join, Request};
use mafalda::spill::wire::{SessionRequest, SpillJoin};
use mafalda_actors::frame::{encode_frame, FrameDecoder};
use mafalda_actors::wire::{self, Hello, HelloReply, Reply, TellHeader};
use mafalda_actors::{codec, NodeId};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Longest a single input may take.
const HANG: Duration = Duration::from_secs(1);

/// A trace id as senders pick them (random: a full 9-byte varint).
const TRACE: u64 = 0x9e37_79b9_7f4a_7c15;

fn signalling_corpus() -> Vec<Vec<u8>> {
    let t = "3b0c8b7e-6a5e-4b7b-9e57-7c8f6f2b1d10";
    let fp = ["AB"; 32].join(":");
    [
        r#"{"id":1,"method":"join","data":{"room":"r","displayName":"A","protocolVersion":1}}"#.to_owned(),
        r#"{"id":2,"method":"getRouterRtpCapabilities"}"#.to_owned(),
        r#"{"id":3,"method":"createWebRtcTransport","data":{"direction":"send"}}"#.to_owned(),
        format!(r#"{{"id":4,"method":"connectWebRtcTransport","data":{{"transportId":"{t}","dtlsParameters":{{"role":"client","fingerprints":[{{"algorithm":"sha-256","value":"{fp}"}}]}}}}}}"#),
        r#"{"id":5,"method":"createPlainTransport","data":{"direction":"recv","comedia":true}}"#.to_owned(),
        format!(r#"{{"id":6,"method":"connectPlainTransport","data":{{"transportId":"{t}","ip":"127.0.0.1","port":5004}}}}"#),
        format!(r#"{{"id":7,"method":"produce","data":{{"transportId":"{t}","kind":"video","rtpParameters":{{"mid":"0","codecs":[{{"mimeType":"video/VP8","payloadType":101,"clockRate":90000,"parameters":{{}},"rtcpFeedback":[{{"type":"nack"}}]}}],"headerExtensions":[],"encodings":[{{"ssrc":1111}}],"rtcp":{{"cname":"c","reducedSize":true}}}}}}}}"#),
        format!(r#"{{"id":8,"method":"consume","data":{{"transportId":"{t}","producerId":"{t}","rtpCapabilities":{{"codecs":[{{"kind":"audio","mimeType":"audio/opus","clockRate":48000,"channels":2,"preferredPayloadType":100}}],"headerExtensions":[]}}}}}}"#),
        format!(r#"{{"id":9,"method":"resumeConsumer","data":{{"consumerId":"{t}"}}}}"#),
        format!(r#"{{"id":10,"method":"closeProducer","data":{{"producerId":"{t}"}}}}"#),
        r#"{"id":11,"method":"leave"}"#.to_owned(),
    ]
    .into_iter()
    .map(String::into_bytes)
    .collect()
}

fn fabric_corpus() -> Vec<Vec<u8>> {
    let node = NodeId::new("node-a").expect("name");
    let room = RoomId::new("room".to_owned());
    let frame = |payload: Vec<u8>| {
        let mut out = BytesMut::new();
        encode_frame(&payload, 1 << 20, &mut out).expect("frame");
        out.to_vec()
    };
    let with_body = |header: Vec<u8>, body: Vec<u8>| [header, body].concat();
    let enc = |v: &dyn erased::Encode| v.encode();
    let call = |call: ShardCall| {
        codec::encode(&RoomCall {
            room: room.clone(),
            from: node.clone(),
            call,
            trace: None,
        })
        .expect("encode")
    };
    let mut corpus = vec![
        frame(with_body(
            enc(&wire::Request::Ask {
                actor: "sfu.rooms".into(),
                tag: "sfu.RoomCall/v1".into(),
                trace: TRACE,
            }),
            call(ShardCall::Attach),
        )),
        frame(with_body(
            enc(&wire::Request::Ask {
                actor: "sfu.rooms".into(),
                tag: "sfu.RoomCall/v1".into(),
                trace: 1,
            }),
            call(ShardCall::PeerLeft {
                peer_id: PeerId::new(),
            }),
        )),
        frame(enc(&wire::Request::Lookup {
            actor: "sfu.sessions".into(),
            tag: "sfu.SpillJoin/v1".into(),
        })),
        frame(with_body(
            enc(&Reply::Ok),
            codec::encode(&Ok::<u32, u32>(7)).expect("encode"),
        )),
        frame(
            codec::encode(&SpillJoin {
                origin: node.clone(),
                session: 42,
                room: "room".into(),
                display_name: "x".into(),
            })
            .expect("encode"),
        ),
        frame(
            codec::encode(&SessionRequest {
                origin: node.clone(),
                session: 42,
                request: r#"{"id":1,"method":"leave"}"#.into(),
            })
            .expect("encode"),
        ),
        frame(GossipedLoad::default().encode().expect("encode")),
    ];
    let mut hs = BytesMut::new();
    let hello = Hello {
        incarnation: mafalda_actors::id::Incarnation {
            node: node.clone(),
            addr: "127.0.0.1:7000".parse().expect("addr"),
            generation: 1,
            bump: 0,
        },
        max_frame_bytes: 1 << 20,
    };
    wire::encode_handshake(&hello, 1 << 20, &mut hs).expect("handshake");
    corpus.push(hs.to_vec());
    corpus.push(frame(with_body(
        enc(&TellHeader::Bind {
            route: 3,
            actor: "sfu.sessions".into(),
            tag: "sfu.SessionEvent/v1".into(),
            trace: TRACE,
        }),
        codec::encode(&(42u64, r#"{"event":"peerLeft"}"#.to_owned())).expect("encode"),
    )));
    corpus.push(frame(with_body(
        enc(&TellHeader::Msg {
            route: 3,
            trace: TRACE,
        }),
        codec::encode(&(42u64, r#"{"event":"peerJoined"}"#.to_owned())).expect("encode"),
    )));
    corpus
}

/// Object-safe encoding for the corpus builder.
mod erased {
    pub trait Encode {
        fn encode(&self) -> Vec<u8>;
    }
    impl<T: serde::Serialize> Encode for T {
        fn encode(&self) -> Vec<u8> {
            mafalda_actors::codec::encode(self).expect("encode")
        }
    }
}

/// One random mutation of `input` (in place), using `corpus` for splices.
fn mutate(input: &mut Vec<u8>, corpus: &[Vec<u8>], rng: &mut StdRng) {
    const INTERESTING: [u8; 10] = [0, 1, 0x7f, 0x80, 0xff, 0xfb, 0xfc, 0xfd, b'"', b'\\'];
    let len = input.len();
    match rng.gen_range(0..9) {
        0 if len > 0 => {
            let i = rng.gen_range(0..len);
            input[i] ^= 1 << rng.gen_range(0..8);
        }
        1 => {
            let i = rng.gen_range(0..=len);
            input.insert(i, rng.gen());
        }
        2 if len > 0 => {
            let i = rng.gen_range(0..len);
            let n = rng.gen_range(1..=(len - i).min(16));
            input.drain(i..i + n);
        }
        3 if len > 0 => {
            let i = rng.gen_range(0..len);
            input[i] = INTERESTING[rng.gen_range(0..INTERESTING.len())];
        }
        4 if len >= 4 => {
            // A big or boundary integer over four bytes (lengths, varints).
            let i = rng.gen_range(0..=len - 4);
            let v: u32 = [0, 1, 250, 251, 0xffff, 0x7fff_ffff, u32::MAX][rng.gen_range(0..7)];
            input[i..i + 4].copy_from_slice(&v.to_be_bytes());
        }
        5 if len > 0 => {
            // Duplicate a run.
            let i = rng.gen_range(0..len);
            let n = rng.gen_range(1..=(len - i).min(64));
            let run = input[i..i + n].to_vec();
            let at = rng.gen_range(0..=input.len());
            input.splice(at..at, run);
        }
        6 => {
            // Splice in part of another corpus entry.
            let other = &corpus[rng.gen_range(0..corpus.len())];
            if !other.is_empty() {
                let i = rng.gen_range(0..other.len());
                let n = rng.gen_range(1..=(other.len() - i));
                let at = rng.gen_range(0..=input.len());
                input.splice(at..at, other[i..i + n].iter().copied());
            }
        }
        7 if len > 1 => {
            input.truncate(rng.gen_range(0..len));
        }
        _ => {
            let i = rng.gen_range(0..=len);
            let n = rng.gen_range(1..8);
            let junk: Vec<u8> = (0..n).map(|_| rng.gen()).collect();
            input.splice(i..i, junk);
        }
    }
    if input.len() > 8192 {
        input.truncate(8192);
    }
}

fn run_signalling(input: &[u8]) {
    let text = String::from_utf8_lossy(input);
    if let Ok((_, Request::Join(j))) = parse_request(&text) {
        let _ = validate_join(&j, 128, 128);
    }
}

fn run_fabric(input: &[u8]) {
    let decoder = FrameDecoder::new(64 * 1024);
    let mut buf = BytesMut::from(input);
    let mut frames = Vec::new();
    while let Ok(Some(frame)) = decoder.decode(&mut buf) {
        frames.push(frame);
    }
    frames.push(input.to_vec().into());
    for f in &frames {
        if let Ok((_, body)) = wire::decode_with_body::<wire::Request>(f) {
            let _ = codec::decode::<RoomCall>(body);
        }
        let _ = wire::decode_with_body::<Reply>(f);
        let _ = wire::decode_with_body::<TellHeader>(f);
        let _ = wire::decode_handshake::<Hello>(f);
        let _ = wire::decode_handshake::<HelloReply>(f);
        let _ = codec::decode::<RoomCall>(f);
        let _ = codec::decode::<SpillJoin>(f);
        let _ = codec::decode::<SessionRequest>(f);
        let _ = GossipedLoad::decode(f);
    }
}

/// Fuzzes one target; answers inputs per second, or the failing input.
fn fuzz(
    name: &str,
    corpus: &[Vec<u8>],
    inputs: u64,
    seed: u64,
    target: fn(&[u8]),
) -> Result<f64, String> {
    let mut rng = StdRng::seed_from_u64(seed);
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    for n in 0..inputs {
        let mut input = corpus[rng.gen_range(0..corpus.len())].clone();
        for _ in 0..rng.gen_range(1..=8) {
            mutate(&mut input, corpus, &mut rng);
        }
        let t = Instant::now();
        if catch_unwind(AssertUnwindSafe(|| target(&input))).is_err() {
            return Err(format!("{name}: input {n} panicked: {}", hex(&input)));
        }
        let took = t.elapsed();
        slowest = slowest.max(took);
        if took > HANG {
            return Err(format!("{name}: input {n} took {took:?}: {}", hex(&input)));
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{name:<11} {inputs} inputs in {secs:.1} s: {:.0} inputs/s, slowest {:?}, no panic, no hang",
        inputs as f64 / secs,
        slowest
    );
    Ok(inputs as f64 / secs)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let which = args.first().map_or("all", String::as_str);
    let inputs: u64 = args
        .get(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let seed: u64 = args
        .get(2)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| rand::thread_rng().gen());
    // Panics are expected to be caught and reported, not printed.
    std::panic::set_hook(Box::new(|_| {}));
    println!("fuzz: seed {seed}");
    let mut failed = false;
    if matches!(which, "signalling" | "all") {
        if let Err(e) = fuzz(
            "signalling",
            &signalling_corpus(),
            inputs,
            seed,
            run_signalling,
        ) {
            println!("{e}");
            failed = true;
        }
    }
    if matches!(which, "fabric" | "all") {
        if let Err(e) = fuzz("fabric", &fabric_corpus(), inputs, seed, run_fabric) {
            println!("{e}");
            failed = true;
        }
    }
    if failed {
        std::process::exit(1);
    }
}
