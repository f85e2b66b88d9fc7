//! `dynamoctl backup` against real `dynamo-node` clusters on loopback:
//! a data set with siblings, tombstones and attributes backed up, more
//! written, restored into a fresh cluster that then holds exactly the
//! backed-up states; a backup killed halfway that is not restorable until
//! resumed; a damaged chunk caught by verify and by restore.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use dynamo_testkit::http::http_client;
use dynamo_testkit::s3::S3Server;
use futures::{StreamExt, stream};
use serde_json::Value;
use support::{ADMIN, CLIENT, Node, auth_dir, cluster, ok_json, tls_node};

/// A key's state as a client sees it: status, context and (for live
/// versions) the siblings with their attributes, in a fixed order.
type State = (u16, Option<String>, Vec<String>);

async fn read(node: &Node, key: &str) -> State {
    let response = http_client()
        .get(format!("http://{}/v1/kv/{key}?r=3", node.client))
        .bearer_auth(CLIENT)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let context = response
        .headers()
        .get("x-dynamo-context")
        .map(|v| v.to_str().unwrap().to_string());
    let mut siblings: Vec<String> = match status {
        200 | 300 => {
            let body: Value = response.json().await.unwrap();
            body["siblings"]
                .as_array()
                .unwrap()
                .iter()
                .map(Value::to_string)
                .collect()
        }
        _ => Vec::new(),
    };
    siblings.sort();
    (status, context, siblings)
}

async fn put(
    node: &Node,
    key: &str,
    value: &[u8],
    context: Option<&str>,
    content_type: Option<&str>,
) {
    let mut request = http_client()
        .put(format!("http://{}/v1/kv/{key}", node.client))
        .bearer_auth(CLIENT)
        .body(value.to_vec());
    if let Some(context) = context {
        request = request.header("x-dynamo-context", context);
    }
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    let status = request.send().await.unwrap().status();
    assert_eq!(status, 204, "PUT {key}");
}

async fn delete(node: &Node, key: &str, context: &str) {
    let status = http_client()
        .delete(format!("http://{}/v1/kv/{key}", node.client))
        .bearer_auth(CLIENT)
        .header("x-dynamo-context", context)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 204, "DELETE {key}");
}

/// Writes plain values, siblings (two writes without a context through
/// different nodes), tombstones and a value with a content type and
/// metadata; returns every key.
async fn write_data_set(nodes: &[Node], plain: usize, value_bytes: usize) -> Vec<String> {
    let mut keys: Vec<String> = (0..plain).map(|i| format!("plain/{i}")).collect();
    stream::iter(keys.iter().enumerate())
        .for_each_concurrent(16, |(i, key)| async move {
            let value = format!("{i:0>width$}", width = value_bytes);
            put(&nodes[i % nodes.len()], key, value.as_bytes(), None, None).await;
        })
        .await;
    for i in 0..10 {
        let key = format!("siblings/{i}");
        put(&nodes[0], &key, b"left", None, None).await;
        put(&nodes[1], &key, b"right", None, None).await;
        keys.push(key);
    }
    for i in 0..10 {
        let key = format!("deleted/{i}");
        put(&nodes[2], &key, b"doomed", None, None).await;
        let (_, context, _) = read(&nodes[2], &key).await;
        delete(&nodes[0], &key, &context.unwrap()).await;
        keys.push(key);
    }
    put(
        &nodes[1],
        "typed",
        b"{\"a\":1}",
        None,
        Some("application/json"),
    )
    .await;
    keys.push("typed".to_string());
    keys
}

async fn states(node: &Node, keys: &[String]) -> BTreeMap<String, State> {
    stream::iter(keys)
        .map(|key| async move { (key.clone(), read(node, key).await) })
        .buffer_unordered(16)
        .collect()
        .await
}

/// Where a test keeps its backups: a directory, or a bucket of a real S3
/// server (SeaweedFS) with its credentials.
struct Place {
    args: Vec<String>,
    env: Vec<(&'static str, String)>,
    _dir: Option<tempfile::TempDir>,
    _server: Option<S3Server>,
}

impl Place {
    fn directory() -> Place {
        let dir = tempfile::tempdir().unwrap();
        Place {
            args: vec!["--target".into(), dir.path().to_str().unwrap().into()],
            env: Vec::new(),
            _dir: Some(dir),
            _server: None,
        }
    }

    /// A bucket of a fresh server, addressed path-style or virtual-host
    /// style (`BUCKET.localhost`, resolved by glibc's myhostname module).
    async fn s3(addressing: &str) -> Place {
        let server = S3Server::start().await;
        let endpoint = match addressing {
            "virtual" => server.endpoint().replace("127.0.0.1", "localhost"),
            _ => server.endpoint(),
        };
        Place {
            args: vec![
                "--target".into(),
                format!("s3://{}/cluster-a", server.bucket()),
                "--s3-endpoint".into(),
                endpoint,
                "--s3-region".into(),
                server.region().into(),
                "--s3-addressing".into(),
                addressing.into(),
            ],
            env: vec![
                ("AWS_ACCESS_KEY_ID", server.access_key().into()),
                ("AWS_SECRET_ACCESS_KEY", server.secret_key().into()),
            ],
            _dir: None,
            _server: Some(server),
        }
    }

    /// dynamoctl `backup ARGS` against `node`, with this place's target
    /// and credentials.
    fn command(&self, node: &Node, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_dynamoctl"));
        command
            .args(["--node", &node.client, "--admin", &node.internal])
            .args(["--token", CLIENT, "--admin-token", ADMIN, "backup"])
            .args(args)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        command
    }

    fn run(&self, node: &Node, args: &[&str]) -> Output {
        self.command(node, args).output().expect("dynamoctl runs")
    }
}

/// The directory of the place's backups, when it is a directory.
fn directory(place: &Place) -> &Path {
    place._dir.as_ref().expect("a directory place").path()
}

/// A data set backed up to `place`, more written, and the backup restored
/// into a fresh cluster: it reads back exactly as backed up.
async fn back_up_and_restore_exactly(place: Place) {
    let auth = auth_dir();
    let source = cluster(3, auth.path()).await;
    let nodes = &source.nodes;
    let keys = write_data_set(nodes, 200, 100).await;
    let before = states(&nodes[0], &keys).await;
    assert!(before.values().any(|s| s.0 == 300), "siblings were written");
    assert!(
        before.values().any(|s| s.0 == 404 && s.1.is_some()),
        "tombstones were written"
    );

    let created = ok_json(&place.run(&nodes[0], &["create", "--id", "b1", "-o", "json"]));
    assert_eq!(created["id"], "b1", "{created}");

    for i in 0..20 {
        put(
            &nodes[1],
            &format!("later/{i}"),
            b"after the backup",
            None,
            None,
        )
        .await;
    }
    let (_, context, _) = read(&nodes[0], "plain/1").await;
    put(
        &nodes[0],
        "plain/1",
        b"overwritten after",
        context.as_deref(),
        None,
    )
    .await;

    let listed = ok_json(&place.run(&nodes[0], &["list", "-o", "json"]));
    assert_eq!(listed["backups"][0]["id"], "b1", "{listed}");
    assert_eq!(listed["backups"][0]["complete"], true, "{listed}");
    let described = ok_json(&place.run(&nodes[0], &["describe", "b1", "-o", "json"]));
    assert_eq!(
        described["nodes"].as_object().unwrap().len(),
        3,
        "{described}"
    );
    let verified = ok_json(&place.run(&nodes[0], &["verify", "b1", "-o", "json"]));
    assert_eq!(verified["problems"], serde_json::json!([]), "{verified}");

    let fresh = cluster(3, auth.path()).await;
    let restored = ok_json(&place.run(&fresh.nodes[1], &["restore", "b1", "-o", "json"]));
    assert_eq!(restored["records"], described["records"], "{restored}");
    let after = states(&fresh.nodes[2], &keys).await;
    for key in &keys {
        assert_eq!(
            after[key], before[key],
            "{key} restored as it was backed up"
        );
    }
    for i in 0..20 {
        let (status, context, _) = read(&fresh.nodes[0], &format!("later/{i}")).await;
        assert_eq!(
            (status, context),
            (404, None),
            "a key written after the backup"
        );
    }

    ok_json(&place.run(&fresh.nodes[0], &["restore", "b1", "-o", "json"]));
    let again = states(&fresh.nodes[0], &keys).await;
    assert_eq!(again, before, "restoring twice changes nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_in_a_directory_restores_exactly_into_a_fresh_cluster() {
    back_up_and_restore_exactly(Place::directory()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_in_s3_restores_exactly_into_a_fresh_cluster() {
    back_up_and_restore_exactly(Place::s3("path").await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_reaches_s3_with_virtual_host_addressing_and_wrong_credentials_are_refused() {
    let auth = auth_dir();
    let source = cluster(3, auth.path()).await;
    write_data_set(&source.nodes, 50, 100).await;
    let mut place = Place::s3("virtual").await;
    let node = &source.nodes[0];
    let created = ok_json(&place.run(node, &["create", "--id", "hosted", "-o", "json"]));
    let verified = ok_json(&place.run(node, &["verify", "hosted", "-o", "json"]));
    assert_eq!(verified["records"], created["records"], "{verified}");

    place.env[1].1 = "not-the-secret".into();
    let refused = place.run(node, &["list"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "wrong credentials: {stderr}");
}

/// Flips a byte in the middle of the first chunk of the backup in `dir`.
fn damage_a_chunk(dir: &Path) -> String {
    let node_dir = dir.join("b2/nodes/n1");
    let chunk = node_dir.join("000000.chunk");
    let mut bytes = std::fs::read(&chunk).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&chunk, bytes).unwrap();
    "b2/nodes/n1/000000.chunk".to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_killed_halfway_is_not_restorable_until_it_resumes_and_damage_is_caught() {
    let auth = auth_dir();
    let source = cluster(3, auth.path()).await;
    let nodes = &source.nodes;
    let keys = write_data_set(nodes, 600, 8192).await;
    let before = states(&nodes[0], &keys).await;

    let place = Place::directory();
    let target = directory(&place);
    let node = &nodes[0];
    let mut child = place
        .command(node, &["create", "--id", "b2", "--chunk-mib", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let first_entry = target.join("b2/nodes/n1/000000.json");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !first_entry.exists() {
        assert!(Instant::now() < deadline, "no chunk uploaded within 60 s");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !target.join("b2/manifest.json").exists(),
        "the killed backup wrote no manifest"
    );

    let listed = ok_json(&place.run(node, &["list", "-o", "json"]));
    assert_eq!(listed["backups"][0]["complete"], false, "{listed}");
    let refused = place.run(node, &["restore", "b2"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && stderr.contains("not complete"),
        "{stderr}"
    );

    let resumed = place.run(
        node,
        &["create", "--id", "b2", "--chunk-mib", "1", "-o", "json"],
    );
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    assert!(stderr.contains("resuming"), "{stderr}");
    let resumed = ok_json(&resumed);
    let described = ok_json(&place.run(node, &["describe", "b2", "-o", "json"]));
    assert!(
        described["nodes"]["n1"]["chunks"].as_array().unwrap().len() > 1,
        "several chunks"
    );
    assert_eq!(resumed["records"], described["records"], "{resumed}");

    let fresh = cluster(3, auth.path()).await;
    ok_json(&place.run(&fresh.nodes[0], &["restore", "b2", "-o", "json"]));
    assert_eq!(
        states(&fresh.nodes[1], &keys).await,
        before,
        "the resumed backup restores whole"
    );

    let damaged = damage_a_chunk(target);
    let verify = place.run(node, &["verify", "b2", "-o", "json"]);
    assert!(!verify.status.success(), "verify finds the damage");
    let report: Value = serde_json::from_slice(&verify.stdout).unwrap();
    let problems = report["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{report}");
    assert!(problems[0].as_str().unwrap().contains(&damaged), "{report}");
    let restore = place.run(&fresh.nodes[0], &["restore", "b2"]);
    let stderr = String::from_utf8_lossy(&restore.stderr);
    assert!(
        !restore.status.success() && stderr.contains("damaged"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_into_a_running_cluster_under_a_writer_loses_nothing() {
    let auth = auth_dir();
    let source = cluster(3, auth.path()).await;
    let nodes = &source.nodes;
    let keys = write_data_set(nodes, 300, 100).await;
    let place = Place::directory();
    ok_json(&place.run(&nodes[0], &["create", "--id", "b3", "-o", "json"]));

    let (_, context, _) = read(&nodes[0], "plain/7").await;
    put(
        &nodes[0],
        "plain/7",
        b"newer than the backup",
        context.as_deref(),
        None,
    )
    .await;
    let before = states(&nodes[0], &keys).await;

    let mut headers = reqwest::header::HeaderMap::new();
    let bearer = format!("Bearer {CLIENT}");
    headers.insert("authorization", bearer.parse().unwrap());
    let http = reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap();
    let urls = nodes
        .iter()
        .map(|n| format!("http://{}", n.client))
        .collect();
    let writer = dynamo_testkit::writer::Writer::start(http, "during-restore", urls);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let restore = ok_json(&place.run(&nodes[1], &["restore", "b3", "-o", "json"]));
    assert!(restore["records"].as_u64().unwrap() > 0, "{restore}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let acked = writer.stop().await;
    assert!(acked.len() > 20, "the writer wrote during the restore");

    for (key, value) in &acked {
        let body = http_client()
            .get(format!("http://{}/v1/kv/{key}", nodes[2].client))
            .bearer_auth(CLIENT)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(&body, value, "{key} written during the restore");
    }
    assert_eq!(
        states(&nodes[0], &keys).await,
        before,
        "the restore changed no key: the cluster held all of it, and the write after the \
         backup supersedes its older version"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_with_tls_and_tokens_is_backed_up_and_restored() {
    let served = tls_node("backup test CA").await;
    let (node, https, base) = (&served.node, &served.https, &served.base);
    for i in 0..50 {
        let status = https
            .put(format!("{base}/v1/kv/tls/{i}"))
            .bearer_auth(CLIENT)
            .body(format!("value {i}"))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 204);
    }

    let mut place = Place::directory();
    place.args.push("--ca".into());
    place.args.push(served.ca_file.to_str().unwrap().into());
    let created = ok_json(&place.run(node, &["create", "--id", "tls", "-o", "json"]));
    assert_eq!(created["records"], 50, "{created}");
    let restored = ok_json(&place.run(node, &["restore", "tls", "-o", "json"]));
    assert_eq!(restored["records"], 50, "{restored}");
    let body = https
        .get(format!("{base}/v1/kv/tls/7"))
        .bearer_auth(CLIENT)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        body, "value 7",
        "restoring over the live data changed nothing"
    );
}
