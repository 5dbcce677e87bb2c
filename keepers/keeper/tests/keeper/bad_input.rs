use std::time::Duration;

use bytes::{Buf, BufMut, Bytes};
use gpunet_proto::v1 as pb;
use gpunet_task_client::spec as task;
use tonic::Code;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;

use crate::common::*;

/// Sends and receives raw bytes, to put garbage on the wire.
#[derive(Default, Clone)]
struct Raw;
struct RawEnc;
struct RawDec;

impl Encoder for RawEnc {
    type Item = Bytes;
    type Error = tonic::Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}
impl Decoder for RawDec {
    type Item = Bytes;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, tonic::Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}
impl Codec for Raw {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawEnc;
    type Decoder = RawDec;
    fn encoder(&mut self) -> RawEnc {
        RawEnc
    }
    fn decoder(&mut self) -> RawDec {
        RawDec
    }
}

const METHODS: &[&str] = &[
    "/gpunet.v1.KeeperService/GetChallenge",
    "/gpunet.v1.KeeperService/OpenSession",
    "/gpunet.v1.KeeperService/Submit",
    "/gpunet.v1.KeeperService/GetStatus",
    "/gpunet.v1.KeeperService/Cancel",
    "/gpunet.v1.KeeperService/GetResult",
    "/gpunet.v1.KeeperService/List",
    "/gpunet.v1.KeeperService/GetCluster",
    "/gpunet.v1.KeeperService/CreatePlacementGroup",
    "/gpunet.v1.KeeperService/RemovePlacementGroup",
    "/gpunet.v1.WorkerService/GetChallenge",
    "/gpunet.v1.WorkerService/FetchObject",
    "/gpunet.v1.KeeperService/NoSuchMethod",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_garbage_huge_and_unknown_inputs_get_clear_statuses() {
    let mut cfg = test_config();
    cfg.max_message_bytes = 1 << 20;
    let mut env = Env::start(cfg, 4).await;
    env.add_worker(1, 2).await;
    let c = env.client().await;
    let ch = gpunet_task_client::channel(&env.keeper.url())
        .await
        .unwrap();
    let garbage = Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0x0f, 0x12, 0x99, 0x01, 0x02]);
    for m in METHODS {
        let mut g = tonic::client::Grpc::new(ch.clone());
        g.ready().await.unwrap();
        let r = g
            .unary(
                tonic::Request::new(garbage.clone()),
                PathAndQuery::from_static(m),
                Raw,
            )
            .await;
        match r {
            // GetChallenge ignores its (empty) request body; anything else must be refused.
            Ok(_) => assert!(m.ends_with("GetChallenge"), "{m} accepted garbage"),
            Err(s) => assert!(
                matches!(
                    s.code(),
                    Code::Internal
                        | Code::InvalidArgument
                        | Code::Unauthenticated
                        | Code::Unimplemented
                ),
                "{m}: unexpected {s:?}"
            ),
        }
    }
    // Huge message: refused with a clear status, the keeper stays up.
    let s = c
        .submit(vec![task::builtin("echo", vec![b'x'; 2 << 20])])
        .await
        .expect_err("too big");
    assert!(
        matches!(s.code(), Code::ResourceExhausted | Code::OutOfRange),
        "{s:?}"
    );
    let s = c
        .submit((0..200_001).map(|_| task::builtin("noop", "")).collect())
        .await
        .expect_err("too many");
    assert!(
        matches!(
            s.code(),
            Code::ResourceExhausted | Code::OutOfRange | Code::InvalidArgument
        ),
        "{s:?}"
    );
    // Unknown ids.
    assert_eq!(
        c.status(&[987_654]).await.unwrap_err().code(),
        Code::NotFound
    );
    assert_eq!(
        c.cancel(&[987_654]).await.unwrap_err().code(),
        Code::NotFound
    );
    assert_eq!(
        c.get(987_654, 0, Duration::ZERO).await.unwrap_err().code(),
        Code::NotFound
    );
    let mut t = task::builtin("echo", "");
    t.args = vec![task::arg_ref(987_654, 0)];
    assert_eq!(c.submit(vec![t]).await.unwrap_err().code(), Code::NotFound);
    // Malformed specs.
    assert_eq!(
        c.submit(vec![]).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    assert_eq!(
        c.submit(vec![pb::TaskSpec::default()])
            .await
            .unwrap_err()
            .code(),
        Code::InvalidArgument
    );
    assert_eq!(
        c.submit(vec![task::builtin("rm-rf", "")])
            .await
            .unwrap_err()
            .code(),
        Code::InvalidArgument
    );
    assert_eq!(
        c.submit(vec![task::process(&[])]).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    let mut fwd = task::builtin("echo", "");
    fwd.args = vec![task::arg_batch(0)];
    assert_eq!(
        c.submit(vec![fwd]).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    // Unknown placement group: accepted, fails with a clear error.
    let mut t = task::builtin("noop", "");
    t.strategy = Some(task::strategy(
        pb::scheduling_strategy::Kind::PlacementGroup(pb::PlacementGroupTarget {
            placement_group_id: 77,
            bundle_index: 0,
        }),
    ));
    let id = c.submit(vec![t]).await.unwrap()[0];
    let st = c
        .get(id, 0, Duration::from_secs(10))
        .await
        .unwrap()
        .status
        .unwrap();
    assert_eq!(st.error_kind, pb::ErrorKind::Unschedulable as i32);
    assert!(st.error.contains("unknown placement group"));
    // A worker stream that does not start with Register.
    let mut w = pb::worker_service_client::WorkerServiceClient::new(ch.clone());
    let s = w
        .join(futures::stream::iter(vec![pb::WorkerMessage {
            msg: Some(pb::worker_message::Msg::Heartbeat(pb::Heartbeat::default())),
        }]))
        .await
        .expect_err("refused");
    assert_eq!(s.code(), Code::InvalidArgument);
    // FetchObject without a worker session.
    let s = w
        .fetch_object(pb::FetchObjectRequest {
            object: Some(pb::ObjectRef {
                task_id: 1,
                index: 0,
            }),
        })
        .await
        .expect_err("refused");
    assert_eq!(s.code(), Code::Unauthenticated);
    // Still healthy and working.
    let r = c
        .submit_wait(
            vec![task::builtin("echo", "alive")],
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert_eq!(&r.outcomes[0].data[..], b"alive");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_health_reflection_and_metrics_are_served() {
    let mut env = Env::start(test_config(), 4).await;
    env.add_worker(1, 2).await;
    let c = env.client().await;
    c.submit_wait(vec![task::builtin("noop", "")], Duration::from_secs(10))
        .await
        .unwrap();
    let ch = gpunet_task_client::channel(&env.keeper.url())
        .await
        .unwrap();
    let mut h = tonic_health::pb::health_client::HealthClient::new(ch.clone());
    let r = h
        .check(tonic_health::pb::HealthCheckRequest {
            service: "gpunet.v1.KeeperService".into(),
        })
        .await
        .unwrap();
    assert_eq!(
        r.into_inner().status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    // Reflection answers (grpcurl's list).
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let mut rc = ServerReflectionClient::new(ch);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut resp = rc
        .server_reflection_info(futures::stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    let m = resp.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(l)) = m.message_response else {
        panic!("no list")
    };
    let names: Vec<_> = l.service.iter().map(|s| s.name.clone()).collect();
    assert!(
        names.contains(&"gpunet.v1.KeeperService".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"gpunet.v1.WorkerService".to_string()),
        "{names:?}"
    );
    // Prometheus text.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(env.keeper.metrics_addr.unwrap())
        .await
        .unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).await.unwrap();
    assert!(
        body.contains("gpunet_keeper_tasks_submitted_total 1"),
        "{body}"
    );
    assert!(body.contains("gpunet_keeper_workers_connected 1"), "{body}");
    env.keeper.shutdown().await.unwrap();
}
