"""What a failed control-plane test prints: the DynamoClusters' status,
nodes, workloads, pods with their events, the namespace's events, the last
operator log lines, the harness log and the pods' logs."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import yaml

from .kube import Kube, Obj, meta


def _safe(title: str, produce) -> str:
    try:
        body = produce()
    except Exception as error:  # noqa: BLE001 - diagnostics must not fail
        body = f"(unavailable: {error})"
    return f"===== {title}\n{body}\n"


def _conditions(obj: Obj) -> str:
    return ", ".join(
        f"{c.get('type')}={c.get('status')}"
        + (
            f"({c.get('reason')}: {c.get('message', '')[:300]})"
            if c.get("status") != "True" and c.get("reason")
            else ""
        )
        for c in (obj.get("status") or {}).get("conditions") or []
    )


def _events(kube: Kube, namespace: str, uid: str | None = None, limit: int = 40) -> list[str]:
    query = {"fieldSelector": f"involvedObject.uid={uid}"} if uid else {}
    items = kube.get(f"/api/v1/namespaces/{namespace}/events", **query).get("items", [])

    def when(e: Obj) -> str:
        return e.get("lastTimestamp") or e.get("eventTime") or meta(e).get("creationTimestamp") or ""

    lines = []
    for e in sorted(items, key=when)[-limit:]:
        involved = e.get("involvedObject") or {}
        source = (e.get("source") or {}).get("component") or e.get("reportingComponent") or ""
        count = e.get("count") or (e.get("series") or {}).get("count") or 1
        lines.append(
            f"{when(e)} {e.get('type')} {e.get('reason')} {involved.get('kind')}/{involved.get('name')} "
            f"[{source}] x{count}: {e.get('message') or e.get('note') or ''}"
        )
    return lines


def clusters(kube: Kube, namespace: str) -> str:
    items = kube.get(f"/apis/kv.dynamo.dev/v1alpha1/namespaces/{namespace}/dynamoclusters").get("items", [])
    out = []
    for c in items:
        out.append(f"--- DynamoCluster {namespace}/{meta(c)['name']} generation {meta(c).get('generation')}")
        out.append(yaml.safe_dump({"status": c.get("status")}, sort_keys=False).rstrip())
        out.extend("  event: " + line for line in _events(kube, namespace, meta(c)["uid"]))
    return "\n".join(out) or "(none)"


def backups(kube: Kube, namespace: str) -> str:
    """The backups, schedules and restores of `namespace` with their status."""
    out = []
    for plural in ("dynamobackups", "dynamobackupschedules", "dynamorestores"):
        items = kube.get(f"/apis/kv.dynamo.dev/v1alpha1/namespaces/{namespace}/{plural}").get("items", [])
        for item in items:
            out.append(f"--- {plural}/{meta(item)['name']}")
            out.append(yaml.safe_dump({"status": item.get("status")}, sort_keys=False).rstrip())
    return "\n".join(out) or "(none)"


def nodes(kube: Kube) -> str:
    out = []
    for n in kube.get("/api/v1/nodes").get("items", []):
        labels = meta(n).get("labels") or {}
        taints = [f"{t['key']}:{t['effect']}" for t in (n.get("spec") or {}).get("taints") or []]
        out.append(
            f"{meta(n)['name']} zone={labels.get('topology.kubernetes.io/zone', '-')} "
            f"taints={taints} {_conditions(n)}"
        )
    return "\n".join(out) or "(none)"


def workloads(kube: Kube, namespace: str) -> str:
    out = []
    for s in kube.get(f"/apis/apps/v1/namespaces/{namespace}/statefulsets").get("items", []):
        st = s.get("status") or {}
        out.append(
            f"StatefulSet {meta(s)['name']}: replicas={s['spec'].get('replicas')} "
            f"ready={st.get('readyReplicas', 0)} current={st.get('currentRevision')} "
            f"update={st.get('updateRevision')}"
        )
    for p in kube.get(f"/api/v1/namespaces/{namespace}/persistentvolumeclaims").get("items", []):
        out.append(
            f"PVC {meta(p)['name']}: {(p.get('status') or {}).get('phase')} "
            f"volume={p['spec'].get('volumeName')} class={p['spec'].get('storageClassName')}"
        )
    for s in kube.get(f"/api/v1/namespaces/{namespace}/services").get("items", []):
        spec = s.get("spec") or {}
        out.append(
            f"Service {meta(s)['name']}: clusterIP={spec.get('clusterIP')} "
            f"publishNotReady={spec.get('publishNotReadyAddresses', False)} selector={spec.get('selector')}"
        )
    return "\n".join(out) or "(none)"


def pods(kube: Kube, namespace: str) -> str:
    out = []
    for p in kube.get(f"/api/v1/namespaces/{namespace}/pods").get("items", []):
        status = p.get("status") or {}
        spec = p.get("spec") or {}
        containers = []
        for cs in status.get("containerStatuses") or []:
            state = cs.get("state") or {}
            containers.append(
                f"{cs['name']}: ready={cs.get('ready')} restarts={cs.get('restartCount')} "
                f"state={json.dumps(state)} last={json.dumps(cs.get('lastState') or {})}"
            )
        out.append(
            f"--- Pod {meta(p)['name']} node={spec.get('nodeName')} phase={status.get('phase')} "
            f"podIP={status.get('podIP')} deleting={bool(meta(p).get('deletionTimestamp'))}"
        )
        out.append(f"  conditions: {_conditions(p)}")
        out.extend(f"  {c}" for c in containers)
        if not spec.get("nodeName"):
            out.append(f"  nodeSelector: {spec.get('nodeSelector')}")
            out.append(f"  affinity: {json.dumps(spec.get('affinity'))}")
        out.extend("  event: " + line for line in _events(kube, namespace, meta(p)["uid"]))
    return "\n".join(out) or "(none)"


def tail(path: Path, lines: int) -> str:
    if not path.exists():
        return f"({path} does not exist)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def report(
    kube: Kube,
    *,
    namespaces: Iterable[str],
    kubelet=None,
    operators: Iterable = (),  # OperatorProcess
    plane=None,
    log_lines: int = 40,
) -> str:
    parts = [_safe("nodes", lambda: nodes(kube))]
    for ns in namespaces:
        parts.append(_safe(f"DynamoClusters in {ns}", lambda ns=ns: clusters(kube, ns)))
        parts.append(_safe(f"Backups and restores in {ns}", lambda ns=ns: backups(kube, ns)))
        parts.append(_safe(f"workloads in {ns}", lambda ns=ns: workloads(kube, ns)))
        parts.append(_safe(f"pods in {ns} (with their events)", lambda ns=ns: pods(kube, ns)))
        parts.append(_safe(f"events in {ns}", lambda ns=ns: "\n".join(_events(kube, ns))))
    for process in operators:
        parts.append(
            _safe(
                f"operator {process.pod_name} (alive={process.alive()}) last {log_lines} log lines",
                lambda process=process: process.log_tail(log_lines),
            )
        )
    if kubelet is not None:
        parts.append(_safe("harness (kubelet stand-in) log", lambda: tail(kubelet.log_path, log_lines)))
        for ns in namespaces:

            def pod_logs(ns: str = ns) -> str:
                names = sorted({meta(p)["name"] for p in kube.get(f"/api/v1/namespaces/{ns}/pods")["items"]})
                logs = (kubelet.pod_logs(ns, n, tail=log_lines // 2) for n in names)
                return "\n".join(text for text in logs if text) or "(none)"

            parts.append(_safe(f"pod logs in {ns}", pod_logs))
        parts.append(_safe("/etc/hosts", lambda: kubelet.hosts.path.read_text()))
    if plane is not None:
        parts.append(_safe("kube-scheduler log", lambda: plane.log_tail("kube-scheduler", 15)))
    return "\n".join(parts)
