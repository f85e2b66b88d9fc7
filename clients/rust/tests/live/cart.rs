//! The shopping cart under a partition: two writers on either side add and
//! remove items concurrently; once healed, the cart holds every item added
//! and not removed, and an item re-added concurrently with its removal.

#[path = "../../examples/cart/cart.rs"]
mod model;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use dynamo_client::Client;

use crate::support::Cluster;
use model as cart;

const KEY: &str = "carts/alice";

/// A writer through node `i` only, taking writes and reads alone (w=r=1),
/// as a client on the minority side of a partition must.
fn writer(cluster: &Cluster, i: usize) -> Client {
    Client::builder([cluster.url(i)])
        .read_quorum(1)
        .write_quorum(1)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_item_is_lost_across_a_partition() {
    let cluster = Cluster::start(&[], None).await;
    let everyone = Client::builder(cluster.urls())
        .read_quorum(3)
        .write_quorum(3)
        .build()
        .unwrap();
    for item in ["apple", "bread"] {
        cart::add(&everyone, KEY, item).await.unwrap();
    }

    cluster.isolate(0, true);
    let (a, b) = (writer(&cluster, 0), writer(&cluster, 1));
    let side_a = async {
        cart::remove(&a, KEY, "bread").await.unwrap();
        for n in 0..15 {
            cart::add(&a, KEY, &format!("a{n}")).await.unwrap();
        }
        cart::remove(&a, KEY, "a3").await.unwrap();
    };
    let side_b = async {
        cart::remove(&b, KEY, "apple").await.unwrap();
        for n in 0..15 {
            cart::add(&b, KEY, &format!("b{n}")).await.unwrap();
        }
        // Concurrent with side A's removal, which has not seen this tag.
        cart::add(&b, KEY, "bread").await.unwrap();
    };
    tokio::join!(side_a, side_b);
    // Each side saw only its own changes: the partition was real.
    let seen_a = cart::items(&a, KEY).await.unwrap();
    let seen_b = cart::items(&b, KEY).await.unwrap();
    assert!(
        seen_a.contains("a0") && !seen_a.contains("b0"),
        "{seen_a:?}"
    );
    assert!(
        seen_b.contains("b0") && !seen_b.contains("a0"),
        "{seen_b:?}"
    );
    cluster.isolate(0, false);

    let mut expected: BTreeSet<String> = (0..15)
        .flat_map(|n| [format!("a{n}"), format!("b{n}")])
        .collect();
    expected.remove("a3");
    expected.insert("bread".into());

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut seen = Vec::new();
        for i in 0..3 {
            seen.push(cart::items(&writer(&cluster, i), KEY).await.unwrap());
        }
        if seen.iter().all(|items| *items == expected) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the nodes' carts did not converge to {expected:?}: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(cart::items(&everyone, KEY).await.unwrap(), expected);
}
