//! gRPC server reflection: both protocol versions list the keeper's services.

use futures::StreamExt;
use tonic_reflection::pb::{v1, v1alpha};

use crate::common::*;

async fn channel(url: &str) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(url.to_string())
        .unwrap()
        .connect()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_reflection_v1alpha_lists_the_keepers_services() {
    let env = Env::start(test_config(), 4).await;
    let mut rpc = v1alpha::server_reflection_client::ServerReflectionClient::new(
        channel(&env.keeper.url()).await,
    );
    let req = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
        ),
    };
    let mut answers = rpc
        .server_reflection_info(futures::stream::iter([req]))
        .await
        .expect("v1alpha reflection answers")
        .into_inner();
    let answer = answers.next().await.expect("one answer").expect("ok");
    let Some(v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        answer.message_response
    else {
        panic!("not a service list: {answer:?}");
    };
    let names: Vec<&str> = list.service.iter().map(|s| s.name.as_str()).collect();
    for want in ["gpunet.v1.KeeperService", "gpunet.v1.WorkerService"] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_reflection_v1_lists_the_keepers_services() {
    let env = Env::start(test_config(), 4).await;
    let mut rpc =
        v1::server_reflection_client::ServerReflectionClient::new(channel(&env.keeper.url()).await);
    let req = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let mut answers = rpc
        .server_reflection_info(futures::stream::iter([req]))
        .await
        .expect("v1 reflection answers")
        .into_inner();
    let answer = answers.next().await.expect("one answer").expect("ok");
    let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        answer.message_response
    else {
        panic!("not a service list: {answer:?}");
    };
    assert!(
        list.service
            .iter()
            .any(|s| s.name == "gpunet.v1.KeeperService"),
        "{list:?}"
    );
}
