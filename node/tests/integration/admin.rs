//! The admin API over real processes: publishing rings and changing
//! members, with clear errors for bad requests.

use dynamo_node::membership::supersedes;
use dynamo_ring::{Ring, RingDocument};
use reqwest::StatusCode;
use serde_json::json;

use crate::support::TestCluster;

async fn put_ring(
    c: &TestCluster,
    i: usize,
    body: &serde_json::Value,
) -> (StatusCode, serde_json::Value) {
    let r = c
        .http
        .put(format!("{}/v1/admin/ring", c.admin_url(i)))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or_default())
}

fn with_ring(doc: &RingDocument, ring: Ring) -> serde_json::Value {
    serde_json::to_value(RingDocument {
        ring,
        addresses: doc.addresses.clone(),
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rings_are_adopted_by_epoch_and_bad_ones_refused() {
    let c = TestCluster::start(3, &["--partitions", "32"]).await;
    let current = c.ring(0).await;
    assert_eq!(current.ring.epoch, 1);

    let (status, body) = put_ring(&c, 0, &serde_json::to_value(&current).unwrap()).await;
    assert_eq!(
        (status, body["adopted"].as_bool()),
        (StatusCode::OK, Some(false))
    );

    let members = current.ring.members.clone();
    let next = current.ring.rebalance(members.clone()).unwrap();
    let (status, body) = put_ring(&c, 0, &with_ring(&current, next.clone())).await;
    assert_eq!(
        (status, body["adopted"].as_bool()),
        (StatusCode::OK, Some(true))
    );
    assert_eq!(c.ring(0).await.ring.epoch, 2);

    let (status, body) = put_ring(&c, 0, &serde_json::to_value(&current).unwrap()).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["code"], "stale_ring");

    // Another ring of the same epoch: the content hash decides, the same
    // way on every node.
    let mut rival = next.clone();
    rival.owners.swap(0, 1);
    let rival_doc = RingDocument {
        ring: rival.clone(),
        addresses: current.addresses.clone(),
    };
    let installed = RingDocument {
        ring: next,
        addresses: current.addresses.clone(),
    };
    let (status, _) = put_ring(&c, 0, &serde_json::to_value(&rival_doc).unwrap()).await;
    let expected = match supersedes(&rival_doc, &installed) {
        true => StatusCode::OK,
        false => StatusCode::CONFLICT,
    };
    assert_eq!(status, expected);

    let mut wrong_q = Ring::build(members, 3, 64).unwrap();
    wrong_q.epoch = 10;
    let (status, body) = put_ring(&c, 1, &with_ring(&current, wrong_q)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let mut no_address = serde_json::to_value(&current).unwrap();
    no_address["addresses"] = json!({});
    no_address["ring"]["epoch"] = json!(9);
    assert_eq!(
        put_ring(&c, 1, &no_address).await.0,
        StatusCode::BAD_REQUEST
    );
    let r = c
        .http
        .put(format!("{}/v1/admin/ring", c.admin_url(1)))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // Gossip carries the newest ring to every node.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let epochs = [c.ring(0).await, c.ring(1).await, c.ring(2).await].map(|d| d.ring.epoch);
        if epochs == [2, 2, 2] {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "epochs {epochs:?}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_changes_are_validated() {
    let c = TestCluster::start(3, &["--partitions", "32"]).await;
    let post = |body: serde_json::Value| {
        let http = c.http.clone();
        let url = format!("{}/v1/admin/members", c.admin_url(0));
        async move {
            let r = http.post(url).json(&body).send().await.unwrap();
            let status = r.status();
            let body: serde_json::Value = r.json().await.unwrap_or_default();
            (status, body)
        }
    };
    let (status, body) = post(json!({ "remove": ["nobody"] })).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unknown_member"))
    );
    let (status, body) = post(json!({ "add": [{ "id": "n1", "address": "h:1" }] })).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("duplicate_member"))
    );
    let (status, _) = post(json!({ "remove": ["n1"] })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "fewer members than n=3");
    let (status, _) = post(json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = post(json!({ "add": [{ "id": "n4" }] })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "an address is required");
    let (status, _) = post(json!({ "add": [{ "id": "n4", "address": "nowhere" }] })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "addresses are HOST:PORT");
    assert_eq!(
        c.ring(0).await.ring.epoch,
        1,
        "refused changes change nothing"
    );
}
