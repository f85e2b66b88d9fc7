"""The shopping cart (examples/cart.py) on a cluster whose node-to-node links go through
TCP proxies that can cut any pair of nodes: two writers change the cart on both sides of
a partition, and once it heals every node converges on the OR-set outcome (no add lost).

Why one proxy per node, filtering by source IP, and not one proxy per ordered pair listed
in each node's own --peer flags: the nodes' ring documents (which carry the members'
addresses) converge through gossip on one winner, so every node ends up dialing node j at
the same address whatever its own flags said. Nodes dial from their own internal IP, so a
proxy in front of node j still tells the links i -> j apart."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from cart import Cart, CartState
from conftest import Cluster, Proxy, fast_retry, make_cluster, wait_until
from dynamo_client import Unavailable

HERE = Path(__file__).resolve().parent
IPS = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]


@dataclass
class Proxied:
    """A cluster whose node i is on IPS[i] behind proxies[i], the address every node has
    for it; the link i -> j is proxies[j] taking connections from IPS[i]."""

    cluster: Cluster
    proxies: list[Proxy]

    def cut(self, side: list[int], other: list[int]) -> None:
        """Cuts every link between `side` and `other`, both ways."""
        for i in side:
            for j in other:
                self.proxies[j].block(IPS[i])
                self.proxies[i].block(IPS[j])

    def heal(self) -> None:
        """Lets every link through again."""
        for proxy in self.proxies:
            proxy.unblock()


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxied]:
    """The cluster of the module, anti-entropy every second."""
    proxies: list[Proxy] = []

    def behind_proxy(i: int, internal: str) -> str:
        proxies.append(Proxy(IPS[i], internal))
        return proxies[-1].address

    started = make_cluster(
        tmp_path_factory.mktemp("partition"),
        ["--anti-entropy-interval-ms=1000"],
        ips=IPS,
        advertise=behind_proxy,
    )
    try:
        started.start()
        yield Proxied(started, proxies)
    finally:
        started.stop()
        for proxy in proxies:
            proxy.close()


def test_cart_example_runs(proxied: Proxied) -> None:
    cluster = proxied.cluster
    src = HERE.parent / "src"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run(
        [sys.executable, str(HERE.parent / "examples" / "cart.py"), cluster.nodes[0].url],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].endswith("['apple', 'bread']")
    assert lines[1] == "after a concurrent write: 2 siblings, merged ['apple', 'bread', 'cheese']"
    assert lines[2] == "after removing apple: 1 version, ['bread', 'cheese']"


def test_or_set_merge_is_a_union() -> None:
    a, b = CartState(), CartState()
    a.add("x")
    b.merge(a)
    b.remove("x")  # removes the add it saw
    a.add("x")  # concurrently, a second add of x
    merged = Cart.merge([a.encode(), b.encode()])
    assert merged.items() == {"x"}  # the unseen add wins
    assert Cart.merge([b.encode()]).items() == set()
    assert Cart.merge([]).items() == set()
    assert Cart.merge([merged.encode(), a.encode(), b.encode()]) == merged


def test_partitioned_writers_converge_without_losing_adds(proxied: Proxied, key: str) -> None:
    cluster = proxied.cluster
    with cluster.client(0) as kv:
        start = Cart(kv, key, w=3)  # on every replica before the partition
        for item in ("apple", "bread", "cheese"):
            start.add(item)

    # Partition {n1} | {n2, n3}.
    proxied.cut([0], [1, 2])
    probes = (f"{key}/probe/{n}" for n in itertools.count())
    with cluster.client(0, retry=fast_retry(1)) as n1_alone:

        def n1_cut_off() -> bool:
            try:
                n1_alone.put(next(probes), b"p", w=2)  # a new key each time: no siblings pile up
            except Unavailable:
                return True
            return False

        wait_until("n1 cut off from n2 and n3", n1_cut_off, 30)

    # Writer A through n1, writer B through n2, at the same time; w = r = 1 so that the
    # minority side accepts writes too.
    a_ops: list[Callable[[Cart], None]] = [
        lambda c: c.add("milk"),
        lambda c: c.remove("apple"),
        lambda c: c.add("eggs"),
        lambda c: c.remove("eggs"),
        lambda c: c.remove("bread"),
    ]
    b_ops: list[Callable[[Cart], None]] = [
        lambda c: c.add("tea"),
        lambda c: c.add("bread"),  # concurrent with A's remove of bread: the add wins
        lambda c: c.add("juice"),
        lambda c: c.remove("cheese"),
        lambda c: c.remove("juice"),
    ]
    barrier = threading.Barrier(2)

    def writer(node: int, ops: list[Callable[[Cart], None]]) -> set[str]:
        """Applies `ops` through `node`; the cart as that side sees it at the end."""
        with cluster.client(node) as kv:
            cart = Cart(kv, key, r=1, w=1)
            barrier.wait(timeout=30)
            for op in ops:
                op(cart)
            return cart.items()

    with ThreadPoolExecutor(2) as pool:
        side_a = pool.submit(writer, 0, a_ops)
        side_b = pool.submit(writer, 1, b_ops)
        views = {0: side_a.result(timeout=60), 1: side_b.result(timeout=60)}
    # Each side saw only its own changes.
    assert views[0] == {"cheese", "milk"}
    assert views[1] == {"apple", "bread", "tea"}

    # Heal; wait until every node's own read (r = 1) gives the merged cart.
    proxied.heal()
    expected = {"bread", "milk", "tea"}
    clients = [cluster.client(i) for i in range(3)]
    try:

        def converged() -> bool:
            return all(Cart(c, key, r=1).items() == expected for c in clients)

        wait_until("every node reads the merged cart", converged, 60, interval=0.25)
        # The two sides' last versions are concurrent: siblings, which update() merges.
        assert len(clients[2].get(key, r=3).values) == 2
        Cart(clients[2], key).add("final")
        final = clients[0].get(key, r=3)
        assert len(final.values) == 1
        assert Cart.merge(final.values).items() == expected | {"final"}
    finally:
        for c in clients:
            c.close()
