use ed25519_dalek::Signer;
use gpunet_proto::v1 as pb;
use gpunet_task_client::{Client, ClientError, spec as task};
use std::time::Duration;
use tonic::Code;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_worker_with_unknown_key_is_refused() {
    let mut env = Env::start(test_config(), 4).await;
    let mut c = env.worker_config(1, 1);
    c.key = key(999_999); // never listed
    let w = gpunet_worker::spawn(c);
    let r = tokio::time::timeout(std::time::Duration::from_secs(10), w.join())
        .await
        .expect("worker gives up");
    match r {
        Err(gpunet_worker::WorkerError::Refused(s)) => {
            assert_eq!(s.code(), Code::PermissionDenied);
            assert!(s.message().contains("not listed"), "{}", s.message());
        }
        other => panic!("expected refusal, got {other:?}"),
    }
    assert_eq!(env.keeper.core().connected_workers(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_worker_with_forged_signature_is_refused() {
    let env = Env::start(test_config(), 4).await;
    let listed = key(5);
    env.registry
        .allow(PROVIDER, listed.verifying_key().to_bytes());
    let ch = gpunet_task_client::channel(&env.keeper.url())
        .await
        .unwrap();
    let mut rpc = pb::worker_service_client::WorkerServiceClient::new(ch);
    let c = rpc
        .get_challenge(pb::ChallengeRequest {})
        .await
        .unwrap()
        .into_inner();
    // Signed by another key than the one claimed.
    let wrong = key(6);
    let msg = gpunet_proto::worker_signing_bytes(
        &c.keeper_id,
        PROVIDER,
        &c.challenge,
        listed.verifying_key().as_bytes(),
    );
    let reg = pb::Register {
        provider: PROVIDER.into(),
        worker_key: listed.verifying_key().to_bytes().to_vec().into(),
        challenge: c.challenge,
        signature: wrong.sign(&msg).to_bytes().to_vec().into(),
        ..Default::default()
    };
    let s = rpc
        .join(futures::stream::iter(vec![pb::WorkerMessage {
            msg: Some(pb::worker_message::Msg::Register(reg)),
        }]))
        .await
        .expect_err("refused");
    assert_eq!(s.code(), Code::Unauthenticated);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_user_cannot_submit_to_another_users_lease() {
    let env = Env::start(test_config(), 4).await;
    let mallory = key(666);
    let err = Client::connect(&env.keeper.url(), LEASE, &mallory)
        .await
        .err()
        .expect("refused");
    match err {
        ClientError::Status(s) => assert_eq!(s.code(), Code::PermissionDenied),
        e => panic!("unexpected {e}"),
    }
    // Unknown lease: same refusal, no information leak about which leases exist.
    let err = Client::connect(&env.keeper.url(), "no-such-lease", &env.user)
        .await
        .err()
        .expect("refused");
    assert!(matches!(err, ClientError::Status(s) if s.code() == Code::PermissionDenied));
    // A request without a session is refused.
    let ch = gpunet_task_client::channel(&env.keeper.url())
        .await
        .unwrap();
    let mut rpc = pb::keeper_service_client::KeeperServiceClient::new(ch);
    let s = rpc
        .submit(pb::SubmitRequest {
            auth: None,
            tasks: vec![task::builtin("noop", "")],
            wait_ms: 0,
        })
        .await
        .expect_err("no auth");
    assert_eq!(s.code(), Code::Unauthenticated);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_replayed_request_is_refused() {
    let mut env = Env::start(test_config(), 1).await;
    env.add_worker(1, 2).await;
    let client = env.client().await;
    let auth = client.next_auth();
    let req = pb::SubmitRequest {
        auth: Some(auth.clone()),
        tasks: vec![task::builtin("noop", "")],
        wait_ms: 0,
    };
    let first = client
        .raw()
        .submit(req.clone())
        .await
        .expect("first accepted");
    assert_eq!(first.get_ref().task_ids.len(), 1);
    let s = client.raw().submit(req).await.expect_err("replay refused");
    assert_eq!(s.code(), Code::PermissionDenied);
    assert!(s.message().contains("replayed"));
    // A replayed OpenSession (same challenge) is refused too.
    let ch = gpunet_task_client::channel(&env.keeper.url())
        .await
        .unwrap();
    let mut rpc = pb::keeper_service_client::KeeperServiceClient::new(ch);
    let c = rpc
        .get_challenge(pb::ChallengeRequest {})
        .await
        .unwrap()
        .into_inner();
    let uk = env.user.verifying_key().to_bytes();
    let sig = env.user.sign(&gpunet_proto::session_signing_bytes(
        &c.keeper_id,
        LEASE,
        &c.challenge,
        &uk,
    ));
    let open = pb::OpenSessionRequest {
        lease_id: LEASE.into(),
        user_key: uk.to_vec().into(),
        challenge: c.challenge,
        signature: sig.to_bytes().to_vec().into(),
    };
    rpc.open_session(open.clone()).await.expect("first open");
    let s = rpc.open_session(open).await.expect_err("replayed open");
    assert_eq!(s.code(), Code::Unauthenticated);
    // The session still works with fresh nonces.
    assert_eq!(
        client
            .submit(vec![task::builtin("noop", "")])
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_standby_connections_get_no_work_and_a_key_cannot_flood_them() {
    let mut env = Env::start(test_config(), 4).await;
    let mut c = env.worker_config(2, 2);
    c.standby = true;
    let standby: Vec<_> = (0..6).map(|_| gpunet_worker::spawn(c.clone())).collect();
    let core = env.keeper.core().clone();
    let key = bs58::encode(c.key.verifying_key().to_bytes()).into_string();
    wait_until(Duration::from_secs(10), || {
        core.liveness.open_streams(&key) == 4
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        core.liveness.open_streams(&key),
        4,
        "at most 4 streams a key"
    );
    assert!(core.metrics.render().contains("workers_standby 4"));
    // Standing by is not joining: no worker in the lease's cluster, no task placed.
    assert_eq!(core.connected_workers(), 0);
    for w in standby {
        w.cancel.cancel();
        let _ = w.join().await;
    }
    wait_until(Duration::from_secs(10), || {
        core.liveness.open_streams(&key) == 0
    })
    .await;
}
