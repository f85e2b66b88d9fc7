#!/usr/bin/env python3
"""What e2e/run.sh reads from `kubectl get -o json` (standard library only).

Both commands read a kubectl List on stdin and look for the objects a
DynamoCluster named CLUSTER owns.

  cluster_objects.py pods CLUSTER            (kubectl get statefulsets,pods -o json)
      Prints `name ready|notready image[,image...]` for every pod of a
      StatefulSet the DynamoCluster owns, leaving out pods being deleted.

  cluster_objects.py client-service CLUSTER  (kubectl get services -o json)
      Prints the name of the first non-headless Service the DynamoCluster
      owns; nothing if it owns none.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from typing import Any

KubeObject = dict[str, Any]


def owner_names(obj: KubeObject, kind: str) -> list[str | None]:
    """Names of the owners of `obj` that are of `kind`, in order."""
    return [o.get("name") for o in obj["metadata"].get("ownerReferences", []) if o.get("kind") == kind]


def owned_by_cluster(obj: KubeObject, cluster: str) -> bool:
    return cluster in owner_names(obj, "DynamoCluster")


def is_ready(pod: KubeObject) -> bool:
    conditions = pod.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def cluster_pods(items: Iterable[KubeObject], cluster: str) -> list[str]:
    """`name ready|notready images` of every live pod of the cluster's StatefulSets."""
    items = list(items)
    statefulsets = {
        i["metadata"]["name"] for i in items if i["kind"] == "StatefulSet" and owned_by_cluster(i, cluster)
    }
    lines = []
    for pod in items:
        if pod["kind"] != "Pod":
            continue
        owners = owner_names(pod, "StatefulSet")
        if not owners or owners[0] not in statefulsets or pod["metadata"].get("deletionTimestamp"):
            continue
        images = ",".join(c["image"] for c in pod["spec"]["containers"])
        lines.append(f"{pod['metadata']['name']} {'ready' if is_ready(pod) else 'notready'} {images}")
    return lines


def client_service(items: Iterable[KubeObject], cluster: str) -> str | None:
    """The first non-headless Service the cluster owns."""
    for service in items:
        if owned_by_cluster(service, cluster) and service["spec"].get("clusterIP") != "None":
            return service["metadata"]["name"]
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["pods", "client-service"])
    parser.add_argument("cluster", metavar="CLUSTER", help="name of the DynamoCluster")
    args = parser.parse_args()
    items = json.load(sys.stdin)["items"]
    if args.command == "pods":
        for line in cluster_pods(items, args.cluster):
            print(line)
    else:
        name = client_service(items, args.cluster)
        if name is not None:
            print(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
