//! dynamoctl against real `dynamo-node` processes on loopback (with
//! tokens and separate internal ports, as on Kubernetes): status, ring,
//! keys with contexts and siblings, a member added with `--wait`, and the
//! exit codes of a missing key, a refused token and an unreachable node.

mod support;

use std::path::Path;
use std::process::Command;

use dynamo_testkit::http::http_client;
use dynamo_testkit::pki::TestCa;
use support::{ADMIN, auth_dir, ctl, nodes, ok_json, start, tls_node};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamoctl_shows_and_changes_a_running_cluster() {
    let (data, auth) = (tempfile::tempdir().unwrap(), auth_dir());
    let all = nodes(4);
    let (members, newcomer) = all.split_at(3);
    let http = http_client();
    let mut processes = Vec::new();
    for node in members {
        processes.push(start(node, members, false, data.path(), auth.path()));
    }
    for (process, node) in processes.iter_mut().zip(members) {
        process
            .wait_ready(&http, &format!("http://{}", node.client))
            .await;
    }
    let first = &members[0];

    let status = ok_json(&ctl(first, &["status", "-o", "json"]));
    let listed = status["members"].as_array().unwrap();
    assert_eq!(listed.len(), 3);
    assert!(
        listed
            .iter()
            .all(|m| m["partitions"] == 64 && m["hints"] == 0),
        "{status}"
    );
    let text = String::from_utf8(ctl(first, &["status"]).stdout).unwrap();
    assert!(
        text.starts_with("ID") && text.lines().count() == 4,
        "{text}"
    );

    let put = ok_json(&ctl(first, &["put", "cart/1", "apple", "-o", "json"]));
    assert!(!put["context"].as_str().unwrap().is_empty(), "{put}");
    let read = ok_json(&ctl(&members[1], &["get", "cart/1", "-o", "json"]));
    assert_eq!(read["values"], serde_json::json!(["apple"]));
    // A write without the context is concurrent: two siblings.
    ok_json(&ctl(first, &["put", "cart/1", "pear", "-o", "json"]));
    let read = ok_json(&ctl(first, &["get", "cart/1", "-o", "json", "--r", "3"]));
    assert_eq!(read["siblings"], 2, "{read}");
    let merged = read["context"].as_str().unwrap();
    ok_json(&ctl(
        first,
        &[
            "put",
            "cart/1",
            "apple+pear",
            "--context",
            merged,
            "-o",
            "json",
        ],
    ));
    let text = ctl(first, &["get", "cart/1"]);
    assert_eq!(String::from_utf8_lossy(&text.stdout), "apple+pear\n");
    let deleted = ok_json(&ctl(first, &["get", "cart/1", "-o", "json"]));
    let tombstone = deleted["context"].as_str().unwrap();
    ok_json(&ctl(
        first,
        &["delete", "cart/1", "--context", tombstone, "-o", "json"],
    ));
    assert_eq!(
        ctl(first, &["get", "cart/1"]).status.code(),
        Some(3),
        "not found"
    );

    let ring = ok_json(&ctl(first, &["ring", "-o", "json"]));
    assert_eq!(ring["members"].as_array().unwrap().len(), 3);
    assert_eq!(ring["balance"], 1.0);

    let mut joining = start(&newcomer[0], members, true, data.path(), auth.path());
    joining
        .wait_ready(&http, &format!("http://{}", newcomer[0].client))
        .await;
    let spec = format!("n4={},zone-n4", newcomer[0].internal);
    let plan = ok_json(&ctl(first, &["members", "add", &spec, "-o", "json"]));
    assert!(plan["moved_replicas"].as_u64().unwrap() > 0, "{plan}");
    assert_eq!(
        ok_json(&ctl(first, &["ring", "-o", "json"]))["epoch"],
        1,
        "plan only"
    );
    let added = ctl(
        first,
        &[
            "members",
            "add",
            &spec,
            "--yes",
            "--wait",
            "--timeout",
            "120",
        ],
    );
    assert!(added.status.success(), "{added:?}");
    let ring = ok_json(&ctl(first, &["ring", "-o", "json"]));
    assert_eq!(
        (
            ring["epoch"].as_u64(),
            ring["members"].as_array().unwrap().len()
        ),
        (Some(2), 4)
    );
    let transfers = ok_json(&ctl(first, &["transfers", "-o", "json"]));
    for report in transfers.as_array().unwrap() {
        assert_eq!(
            (report["epoch"].as_u64(), report["pending"].as_u64()),
            (Some(2), Some(0))
        );
    }

    let refused = Command::new(env!("CARGO_BIN_EXE_dynamoctl"))
        .args(["--node", &first.client, "--token", "wrong", "status"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(5), "{refused:?}");
    let unreachable = Command::new(env!("CARGO_BIN_EXE_dynamoctl"))
        .args(["--node", "127.0.0.1:1", "status"])
        .output()
        .unwrap();
    assert_eq!(unreachable.status.code(), Some(4), "{unreachable:?}");
    assert!(String::from_utf8_lossy(&unreachable.stderr).contains("cannot reach"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamoctl_talks_https_trusting_the_given_ca_only() {
    let served = tls_node("dynamoctl test CA").await;
    let (node, ca_file) = (&served.node, &served.ca_file);
    let run = |ca: &Path| {
        Command::new(env!("CARGO_BIN_EXE_dynamoctl"))
            .args([
                "--node",
                &node.client,
                "--admin",
                &node.internal,
                "--token",
                ADMIN,
            ])
            .arg("--ca")
            .arg(ca)
            .args(["ring", "-o", "json"])
            .output()
            .unwrap()
    };
    assert_eq!(ok_json(&run(ca_file))["members"][0]["id"], "n1");
    let stranger = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(stranger.path(), TestCa::new("another CA").pem()).unwrap();
    let refused = run(stranger.path());
    assert_eq!(refused.status.code(), Some(4), "{refused:?}");
}
