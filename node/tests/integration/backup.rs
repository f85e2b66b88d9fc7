//! The backup routes over real processes: bad ids, parameters and import
//! bodies refused with clear errors (the node serving on), a checkpoint
//! made once and described again, its record stream ending with its count,
//! and that stream imported through another node.

use dynamo_backup::records::{Decoder, Frame, put_record};
use reqwest::StatusCode;
use serde_json::Value;

use crate::support::TestCluster;

async fn call(
    cluster: &TestCluster,
    method: reqwest::Method,
    path: &str,
    body: Vec<u8>,
) -> (StatusCode, Value) {
    let response = cluster
        .http
        .request(method, format!("{}{path}", cluster.admin_url(0)))
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let json = response.json().await.unwrap_or(Value::Null);
    (status, json)
}

fn code(answer: &(StatusCode, Value)) -> (StatusCode, &str) {
    (
        answer.0,
        answer.1["error"]["code"].as_str().unwrap_or_default(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_routes_refuse_bad_input_and_the_node_serves_on() {
    use reqwest::Method;
    let cluster = TestCluster::start(3, &[]).await;
    for i in 0..20 {
        let (status, _) = cluster.put(i % 3, &format!("k{i}"), "v", None, "").await;
        assert_eq!(status, StatusCode::NO_CONTENT);
    }
    let bad_request = (StatusCode::BAD_REQUEST, "invalid_backup_id");
    assert_eq!(
        code(&call(&cluster, Method::PUT, "/v1/admin/backups/Bad_Id", vec![]).await),
        bad_request
    );
    assert_eq!(
        code(&call(&cluster, Method::PUT, "/v1/admin/backups/-a/hold", vec![]).await),
        bad_request
    );
    let missing = (StatusCode::NOT_FOUND, "no_such_checkpoint");
    assert_eq!(
        code(
            &call(
                &cluster,
                Method::GET,
                "/v1/admin/backups/none/records",
                vec![]
            )
            .await
        ),
        missing
    );
    assert_eq!(
        code(&call(&cluster, Method::DELETE, "/v1/admin/backups/none", vec![]).await),
        missing
    );
    let invalid = (StatusCode::BAD_REQUEST, "invalid_parameter");
    for query in ["seconds=0", "seconds=3601", "seconds=x", "other=1"] {
        let path = format!("/v1/admin/backups/b/hold?{query}");
        assert_eq!(
            code(&call(&cluster, Method::PUT, &path, vec![]).await),
            invalid,
            "{query}"
        );
    }
    let records = (StatusCode::BAD_REQUEST, "invalid_records");
    assert_eq!(
        code(
            &call(
                &cluster,
                Method::POST,
                "/v1/admin/import",
                b"garbage".to_vec()
            )
            .await
        ),
        records
    );
    let mut not_a_state = Vec::new();
    put_record(&mut not_a_state, b"key", &[0xff; 40]);
    assert_eq!(
        code(&call(&cluster, Method::POST, "/v1/admin/import", not_a_state).await),
        records
    );
    let huge = vec![b'R'; (32 << 20) + 1];
    assert_eq!(
        code(&call(&cluster, Method::POST, "/v1/admin/import", huge).await),
        (StatusCode::PAYLOAD_TOO_LARGE, "import_too_large")
    );

    let (status, hold) = call(
        &cluster,
        Method::PUT,
        "/v1/admin/backups/b1/hold?seconds=60",
        vec![],
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{hold}");
    let (_, listed) = call(&cluster, Method::GET, "/v1/admin/backups", vec![]).await;
    assert_eq!(listed["holds"][0]["id"], "b1", "{listed}");
    let (status, made) = call(&cluster, Method::PUT, "/v1/admin/backups/b1", vec![]).await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let (status, again) = call(&cluster, Method::PUT, "/v1/admin/backups/b1", vec![]).await;
    assert_eq!(
        (status, &again["created_at_ms"]),
        (StatusCode::OK, &made["created_at_ms"])
    );
    call(
        &cluster,
        Method::DELETE,
        "/v1/admin/backups/b1/hold",
        vec![],
    )
    .await;
    let (_, listed) = call(&cluster, Method::GET, "/v1/admin/backups", vec![]).await;
    assert_eq!(listed["holds"], serde_json::json!([]), "{listed}");
    assert_eq!(listed["checkpoints"][0]["id"], "b1", "{listed}");
    let (status, _) = call(
        &cluster,
        Method::GET,
        "/v1/admin/backups/b1/records?after=%21",
        vec![],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let stream = cluster
        .http
        .get(format!(
            "{}/v1/admin/backups/b1/records",
            cluster.admin_url(0)
        ))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let mut decoder = Decoder::new();
    decoder.push(&stream);
    let mut body = Vec::new();
    let mut count = 0;
    let ended = loop {
        match decoder.next_frame().unwrap() {
            Some(Frame::Record(record)) => {
                put_record(&mut body, &record.key, &record.value);
                count += 1;
            }
            Some(Frame::End(sent)) => break sent,
            None => panic!("the stream has no end frame"),
        }
    };
    assert_eq!((count, ended), (20, 20), "node 0 holds every key (N=3)");
    let imported = cluster
        .http
        .post(format!("{}/v1/admin/import", cluster.admin_url(1)))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(imported.status(), StatusCode::OK);
    let imported: Value = imported.json().await.unwrap();
    assert_eq!(imported["records"], 20, "{imported}");

    let (status, _) = call(&cluster, Method::DELETE, "/v1/admin/backups/b1", vec![]).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, values) = cluster.get_json(2, "k7", "").await;
    assert_eq!((status, values), (StatusCode::OK, vec!["v".to_string()]));
}
