//! The S3 test server ([`S3Server`], SeaweedFS on loopback) against the
//! client the backups use, object_store's S3 implementation (signing with
//! ring, path-style requests over plain HTTP): objects round-trip,
//! multipart uploads assemble, wrong credentials are refused, and a killed
//! server comes back with its data.

use std::time::Duration;

use dynamo_testkit::s3::S3Server;
use futures::TryStreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::{BackoffConfig, ObjectStore, ObjectStoreExt, RetryConfig, WriteMultipart};

/// A path-style client of `server`'s bucket signing with `access_key` and
/// `secret_key`, retrying failed requests for at most 2 s.
fn client(server: &S3Server, access_key: &str, secret_key: &str) -> AmazonS3 {
    // reqwest is built with rustls but no crypto provider of its own.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let retry = RetryConfig {
        backoff: BackoffConfig::default(),
        max_retries: 2,
        retry_timeout: Duration::from_secs(2),
    };
    AmazonS3Builder::new()
        .with_endpoint(server.endpoint())
        .with_allow_http(true)
        .with_virtual_hosted_style_request(false)
        .with_region(server.region())
        .with_bucket_name(server.bucket())
        .with_access_key_id(access_key)
        .with_secret_access_key(secret_key)
        .with_retry(retry)
        .build()
        .expect("S3 client")
}

/// The object at `path`.
async fn read(s3: &AmazonS3, path: &Path) -> Vec<u8> {
    let got = s3.get(path).await;
    let got = got.unwrap_or_else(|e| panic!("get {path}: {e}"));
    got.bytes().await.expect("object body").to_vec()
}

/// `len` bytes that differ from one MiB to the next.
fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251 + i / (1 << 20)) as u8).collect()
}

#[tokio::test]
async fn s3_put_get_list_delete_and_multipart() {
    let server = S3Server::start().await;
    let s3 = client(&server, server.access_key(), server.secret_key());

    let small = Path::from("backups/one/manifest.json");
    s3.put(&small, b"{\"nodes\":3}".to_vec().into())
        .await
        .expect("put");
    assert_eq!(read(&s3, &small).await, b"{\"nodes\":3}");

    // 12 MiB in 5 MiB parts: 3 parts, the last one short.
    let big = Path::from("backups/one/node1/chunk-000001");
    let content = data(12 << 20);
    let upload = s3
        .put_multipart(&big)
        .await
        .expect("start multipart upload");
    let mut writer = WriteMultipart::new_with_chunk_size(upload, 5 << 20);
    writer.write(&content);
    writer.finish().await.expect("complete multipart upload");
    let meta = s3.head(&big).await.expect("head");
    assert_eq!(meta.size, content.len() as u64);
    let etag = meta.e_tag.expect("an ETag");
    assert!(etag.ends_with("-3\""), "ETag of a 3-part upload: {etag}");
    assert!(read(&s3, &big).await == content, "multipart object differs");

    let mut listed: Vec<String> = s3
        .list(Some(&Path::from("backups/one")))
        .map_ok(|meta| meta.location.to_string())
        .try_collect()
        .await
        .expect("list");
    listed.sort();
    assert_eq!(listed, [small.to_string(), big.to_string()]);

    s3.delete(&small).await.expect("delete");
    let gone = s3.get(&small).await;
    assert!(
        matches!(gone, Err(object_store::Error::NotFound { .. })),
        "get after delete: {gone:?}"
    );
}

#[tokio::test]
async fn s3_wrong_credentials_are_refused() {
    let server = S3Server::start().await;
    let key = Path::from("refused");

    let wrong_secret = client(&server, server.access_key(), "not-the-secret");
    let put = wrong_secret.put(&key, b"x".to_vec().into()).await;
    assert!(
        matches!(put, Err(object_store::Error::PermissionDenied { .. })),
        "put with a wrong secret: {put:?}"
    );
    let unknown_key = client(&server, "NOSUCHACCESSKEY", server.secret_key());
    let get = unknown_key.get(&key).await;
    assert!(
        matches!(get, Err(object_store::Error::PermissionDenied { .. })),
        "get with an unknown access key: {get:?}"
    );

    // Nothing was written, and the right credentials still work.
    let s3 = client(&server, server.access_key(), server.secret_key());
    let get = s3.get(&key).await;
    assert!(
        matches!(get, Err(object_store::Error::NotFound { .. })),
        "{get:?}"
    );
}

#[tokio::test]
async fn s3_server_killed_refuses_requests_and_restarts_with_its_data() {
    let mut server = S3Server::start().await;
    let s3 = client(&server, server.access_key(), server.secret_key());
    let before = Path::from("before");
    s3.put(&before, b"kept".to_vec().into()).await.expect("put");

    server.kill();
    let put = s3.put(&Path::from("during"), b"x".to_vec().into()).await;
    assert!(put.is_err(), "put to a killed server: {put:?}");

    server.restart().await;
    assert_eq!(read(&s3, &before).await, b"kept");
    s3.put(&Path::from("after"), b"new".to_vec().into())
        .await
        .expect("put after the restart");
}
