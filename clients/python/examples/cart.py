"""The shopping cart of the Dynamo paper, as an OR-set (observed-remove set) in JSON.

One key holds ``{"adds": {"<item>": ["<tag>", ...]}, "removes": {"<item>": ["<tag>", ...]}}``.
An item is in the cart when it has an add tag that is not in its removes. Adding an item
puts a new random tag in its adds; removing it copies the add tags visible now into its
removes, so a concurrent add elsewhere (a tag the remover did not see) survives: an add
wins over a concurrent remove, and no add is ever lost. Concurrent writes become siblings;
their merge is the union of the adds and of the removes, item by item, which every change
does first (``Client.update`` hands it the siblings and writes with the read's context).

Run it against a node: ``python examples/cart.py http://127.0.0.1:7000``.
"""

from __future__ import annotations

import argparse
import json
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from dynamo_client import Client


@dataclass
class CartState:
    """The OR-set: per item, the tags of its adds and of its removes."""

    adds: dict[str, set[str]] = field(default_factory=dict)
    removes: dict[str, set[str]] = field(default_factory=dict)

    @classmethod
    def decode(cls, raw: bytes) -> CartState:
        """A state from its JSON."""
        document = json.loads(raw)
        return cls(
            {item: set(tags) for item, tags in document.get("adds", {}).items()},
            {item: set(tags) for item, tags in document.get("removes", {}).items()},
        )

    def encode(self) -> bytes:
        """The JSON of the state (sorted, so equal states encode equally)."""
        document = {
            "adds": {item: sorted(tags) for item, tags in sorted(self.adds.items())},
            "removes": {item: sorted(tags) for item, tags in sorted(self.removes.items())},
        }
        return json.dumps(document, separators=(",", ":")).encode()

    def merge(self, other: CartState) -> None:
        """Takes in `other`: the union of the adds and of the removes, item by item."""
        for mine, theirs in ((self.adds, other.adds), (self.removes, other.removes)):
            for item, tags in theirs.items():
                mine.setdefault(item, set()).update(tags)

    def items(self) -> set[str]:
        """The items in the cart: those with an add tag not removed."""
        return {item for item, tags in self.adds.items() if tags - self.removes.get(item, set())}

    def add(self, item: str) -> None:
        """Adds `item` with a new unique tag."""
        self.adds.setdefault(item, set()).add(uuid.uuid4().hex)

    def remove(self, item: str) -> None:
        """Removes `item` as seen now: its visible add tags go to its removes."""
        visible = self.adds.get(item, set()) - self.removes.get(item, set())
        if visible:
            self.removes.setdefault(item, set()).update(visible)


class Cart:
    """A cart stored under `key`, changed with read-modify-write (`Client.update`).

    `r` and `w` are the quorums of its reads and writes (default: the nodes').
    """

    def __init__(self, client: Client, key: str, *, r: int | None = None, w: int | None = None) -> None:
        self.client = client
        self.key = key
        self.r = r
        self.w = w

    @staticmethod
    def merge(siblings: Iterable[bytes]) -> CartState:
        """One state from the sibling values of a read (none: an empty cart)."""
        state = CartState()
        for raw in siblings:
            state.merge(CartState.decode(raw))
        return state

    def state(self) -> CartState:
        """The cart as read now, siblings merged."""
        return self.merge(self.client.get(self.key, r=self.r).values)

    def items(self) -> set[str]:
        """The items in the cart now."""
        return self.state().items()

    def add(self, item: str) -> None:
        """Adds `item`."""
        self._change(lambda state: state.add(item))

    def remove(self, item: str) -> None:
        """Removes `item` (as far as this read sees it)."""
        self._change(lambda state: state.remove(item))

    def _change(self, change: Callable[[CartState], None]) -> None:
        def apply(siblings: list[bytes]) -> bytes:
            state = self.merge(siblings)
            change(state)
            return state.encode()

        self.client.update(self.key, apply, r=self.r, w=self.w)


def main() -> None:
    """A short tour: add, remove, a concurrent (blind) write making siblings, the merge."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("urls", nargs="+", help="base URL(s) of node(s), e.g. http://127.0.0.1:7000")
    parser.add_argument("--key", default=f"carts/demo-{uuid.uuid4().hex[:8]}")
    parser.add_argument("--token", help="bearer token (nodes with --auth-dir)")
    parser.add_argument("--ca-file", help="CA bundle to trust (nodes with --tls-dir)")
    args = parser.parse_args()

    with Client(args.urls, token=args.token, ca_file=args.ca_file) as client:
        cart = Cart(client, args.key)
        cart.add("apple")
        cart.add("bread")
        print(f"{args.key}: {sorted(cart.items())}")

        # Another writer that never read the cart (no context) adds cheese: a sibling.
        other = CartState()
        other.add("cheese")
        client.put(args.key, other.encode())
        read = client.get(args.key)
        print(f"after a concurrent write: {len(read.values)} siblings, merged {sorted(cart.items())}")

        cart.remove("apple")  # merges the siblings and writes one version
        print(f"after removing apple: {len(client.get(args.key).values)} version, {sorted(cart.items())}")
        client.delete(args.key)


if __name__ == "__main__":
    main()
