"""A small JSON client of the Kubernetes API for the control-plane tests.

It is built on the official `kubernetes` package: `kubernetes.config` reads
the kubeconfig (client certificates or bearer token, CA) and
`kubernetes.client.ApiClient` makes the requests over its urllib3 pool. The
objects stay plain dicts, exactly as the API server sends them, so the tests
see every field (also ones the generated models do not know) and write what
they mean, with the patch type they mean.

`Informer` lists and watches one resource in a background thread, keeps a
cache and calls a handler for every change, re-listing when the watch
expires (410 Gone), the same contract as client-go's reflector.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import urllib3
from kubernetes import client, config

log = logging.getLogger(__name__)

Obj = dict[str, Any]

PATCH_TYPES = {
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "json": "application/json-patch+json",
    "apply": "application/apply-patch+yaml",
}


class ApiError(Exception):
    """A non-2xx answer of the API server."""

    def __init__(self, status: int, body: Any, method: str, path: str) -> None:
        self.status = status
        self.body = body
        self.method = method
        self.path = path
        message = body.get("message") if isinstance(body, dict) else str(body)[:500]
        super().__init__(f"{method} {path}: {status} {message}")

    @property
    def reason(self) -> str:
        return self.body.get("reason", "") if isinstance(self.body, dict) else ""


@dataclass(frozen=True)
class ResourceInfo:
    """Where a kind lives in the API (from discovery)."""

    api_version: str
    kind: str
    plural: str
    namespaced: bool

    def path(self, namespace: str | None = None, name: str | None = None, sub: str = "") -> str:
        base = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{quote(namespace)}"
        base += f"/{self.plural}"
        if name:
            base += f"/{quote(name)}"
        if sub:
            base += f"/{sub}"
        return base


def meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def name_of(obj: Obj) -> str:
    return meta(obj).get("name", "")


def namespace_of(obj: Obj) -> str:
    return meta(obj).get("namespace", "")


def key_of(obj: Obj) -> str:
    ns = namespace_of(obj)
    return f"{ns}/{name_of(obj)}" if ns else name_of(obj)


class Kube:
    """Requests to one API server as the identity of one kubeconfig."""

    def __init__(self, kubeconfig: Path | str, *, pool_size: int = 64) -> None:
        configuration = client.Configuration()
        config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
        # Watches hold connections; give the many harness threads room.
        configuration.connection_pool_maxsize = pool_size
        self.kubeconfig = Path(kubeconfig)
        self.host = configuration.host
        self._api = client.ApiClient(configuration)
        self._discovery: dict[tuple[str, str], ResourceInfo] = {}
        self._discovery_lock = threading.Lock()
        # Open watches: close() ends them, since kube-apiserver's graceful
        # shutdown waits for every open watch (over 10 s).
        self._watches: set[urllib3.BaseHTTPResponse] = set()
        self._watches_lock = threading.Lock()

    def close(self) -> None:
        """Ends the open watches (their readers see the stream end) and
        closes the connection pool."""
        with self._watches_lock:
            watches = list(self._watches)
        for raw in watches:
            # ValueError or RuntimeError: closed or released already, so
            # that watch is ending by itself.
            with contextlib.suppress(ValueError, RuntimeError):
                raw.shutdown()
        self._api.close()

    # --- raw requests -------------------------------------------------

    def _send(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, Any] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float | tuple[float, float] = 30.0,
    ) -> Any:
        params = [(k, v) for k, v in (query or {}).items() if v is not None]
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        method, url, headers, body, post = self._api.param_serialize(
            method,
            path,
            query_params=params,
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        return self._api.call_api(method, url, headers, body, post, _request_timeout=timeout)

    def request(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, Any] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float = 30.0,
    ) -> Any:
        """One request; the decoded JSON answer, or ApiError."""
        response = self._send(
            method, path, query=query, body=body, content_type=content_type, timeout=timeout
        )
        data = response.read()
        try:
            decoded = json.loads(data) if data else None
        except ValueError:
            decoded = data.decode(errors="replace")
        if not 200 <= response.status <= 299:
            raise ApiError(response.status, decoded, method, path)
        return decoded

    def get(self, path: str, **query: Any) -> Any:
        return self.request("GET", path, query=query)

    def get_opt(self, path: str) -> Any | None:
        try:
            return self.get(path)
        except ApiError as error:
            if error.status == 404:
                return None
            raise

    def create(self, path: str, body: Obj, **query: Any) -> Obj:
        return self.request("POST", path, body=body, query=query)

    def replace(self, path: str, body: Obj) -> Obj:
        return self.request("PUT", path, body=body)

    def patch(
        self,
        path: str,
        body: Any,
        *,
        patch_type: str = "merge",
        field_manager: str | None = None,
        force: bool | None = None,
    ) -> Obj:
        query = {"fieldManager": field_manager, "force": "true" if force else None}
        return self.request("PATCH", path, body=body, content_type=PATCH_TYPES[patch_type], query=query)

    def delete(
        self,
        path: str,
        *,
        grace_period_seconds: int | None = None,
        uid: str | None = None,
        propagation: str | None = None,
        missing_ok: bool = True,
    ) -> Any:
        body: Obj = {"apiVersion": "v1", "kind": "DeleteOptions"}
        if grace_period_seconds is not None:
            body["gracePeriodSeconds"] = grace_period_seconds
        if uid:
            body["preconditions"] = {"uid": uid}
        if propagation:
            body["propagationPolicy"] = propagation
        try:
            return self.request("DELETE", path, body=body)
        except ApiError as error:
            if missing_ok and error.status == 404:
                return None
            raise

    def watch(
        self,
        path: str,
        *,
        resource_version: str,
        timeout_seconds: int = 240,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> Iterator[Obj]:
        """Watch events (`{"type", "object"}`) until the server ends the watch."""
        query = {
            "watch": "true",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(timeout_seconds),
            "labelSelector": label_selector,
            "fieldSelector": field_selector,
        }
        response = self._send("GET", path, query=query, timeout=(10.0, timeout_seconds + 30.0))
        raw = response.response
        with self._watches_lock:
            self._watches.add(raw)
        try:
            if response.status != 200:
                data = raw.read()
                try:
                    body = json.loads(data)
                except ValueError:
                    body = data.decode(errors="replace")
                raise ApiError(response.status, body, "WATCH", path)
            buffer = b""
            for chunk in raw.stream(amt=None, decode_content=True):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        yield json.loads(line)
        finally:
            with self._watches_lock:
                self._watches.discard(raw)
            raw.release_conn()

    # --- discovery and apply -----------------------------------------

    def resource(self, api_version: str, kind: str) -> ResourceInfo:
        """Plural name and scope of a kind, from the server's discovery."""
        key = (api_version, kind)
        with self._discovery_lock:
            if key in self._discovery:
                return self._discovery[key]
        path = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        listing = self.get(path)
        with self._discovery_lock:
            for entry in listing.get("resources", []):
                if "/" in entry["name"]:
                    continue
                info = ResourceInfo(api_version, entry["kind"], entry["name"], entry["namespaced"])
                self._discovery[(api_version, entry["kind"])] = info
            if key not in self._discovery:
                raise KeyError(f"the API server serves no {kind} in {api_version}")
            return self._discovery[key]

    def forget_discovery(self) -> None:
        """Drops the discovery cache (after CRDs were added)."""
        with self._discovery_lock:
            self._discovery.clear()

    def path_of(self, obj: Obj, *, sub: str = "", default_namespace: str | None = None) -> str:
        info = self.resource(obj["apiVersion"], obj["kind"])
        namespace = namespace_of(obj) or default_namespace
        if info.namespaced and not namespace:
            raise ValueError(f"{obj['kind']} {name_of(obj)} needs a namespace")
        return info.path(namespace if info.namespaced else None, name_of(obj), sub)

    def apply(
        self,
        obj: Obj,
        *,
        field_manager: str,
        namespace: str | None = None,
        force: bool = True,
    ) -> Obj:
        """Server-side apply of one object (as `kubectl apply --server-side`)."""
        info = self.resource(obj["apiVersion"], obj["kind"])
        body = json.loads(json.dumps(obj))
        if info.namespaced:
            body.setdefault("metadata", {}).setdefault("namespace", namespace or "default")
        path = self.path_of(body)
        return self.patch(path, body, patch_type="apply", field_manager=field_manager, force=force)


class Informer:
    """Lists and watches one collection in a background thread.

    `handler(event_type, obj)` is called with ADDED, MODIFIED or DELETED
    for every change, in order, from the informer's thread; a re-list after
    an expired watch replays ADDED/MODIFIED for what it finds and DELETED for
    what disappeared meanwhile. `cache` holds the current objects by
    `namespace/name`.
    """

    def __init__(
        self,
        kube: Kube,
        path: str,
        handler: Callable[[str, Obj], None] | None = None,
        *,
        name: str,
        label_selector: str | None = None,
        field_selector: str | None = None,
        resync_seconds: float | None = None,
    ) -> None:
        self.kube = kube
        self.path = path
        self.handler = handler
        self.name = name
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.resync_seconds = resync_seconds
        self.cache: dict[str, Obj] = {}
        self.lock = threading.RLock()
        self.synced = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"informer-{name}", daemon=True)

    def start(self) -> Informer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def wait_synced(self, timeout: float = 30.0) -> None:
        if not self.synced.wait(timeout):
            raise TimeoutError(f"informer {self.name} did not list {self.path} in {timeout}s")

    def get(self, key: str) -> Obj | None:
        with self.lock:
            return self.cache.get(key)

    def items(self) -> list[Obj]:
        with self.lock:
            return list(self.cache.values())

    def _emit(self, event_type: str, obj: Obj) -> None:
        if self.handler is None:
            return
        try:
            self.handler(event_type, obj)
        except Exception:  # a handler bug must not stop the informer
            log.exception("informer %s: handler failed on %s %s", self.name, event_type, key_of(obj))

    def _list(self) -> str:
        listing = self.kube.get(
            self.path, labelSelector=self.label_selector, fieldSelector=self.field_selector
        )
        fresh = {key_of(item): item for item in listing.get("items", [])}
        kind = listing.get("kind", "").removesuffix("List")
        api_version = listing.get("apiVersion", "v1")
        with self.lock:
            gone = [obj for key, obj in self.cache.items() if key not in fresh]
            previous = dict(self.cache)
            self.cache = fresh
        for obj in gone:
            self._emit("DELETED", obj)
        for key, obj in fresh.items():
            obj.setdefault("kind", kind)
            obj.setdefault("apiVersion", api_version)
            old = previous.get(key)
            if old is None:
                self._emit("ADDED", obj)
            elif meta(old).get("resourceVersion") != meta(obj).get("resourceVersion"):
                self._emit("MODIFIED", obj)
        self.synced.set()
        return meta(listing).get("resourceVersion", "")

    def _run(self) -> None:
        resource_version = ""
        last_list = 0.0
        while not self._stop.is_set():
            try:
                if not resource_version or (
                    self.resync_seconds and time.monotonic() - last_list > self.resync_seconds
                ):
                    resource_version = self._list()
                    last_list = time.monotonic()
                for event in self.kube.watch(
                    self.path,
                    resource_version=resource_version,
                    timeout_seconds=60 if self.resync_seconds else 240,
                    label_selector=self.label_selector,
                    field_selector=self.field_selector,
                ):
                    if self._stop.is_set():
                        return
                    kind = str(event.get("type", ""))
                    obj = event.get("object") or {}
                    if kind == "ERROR":
                        # 410 Gone: the resourceVersion is too old; list again.
                        log.info("informer %s: watch error %s; re-listing", self.name, obj)
                        resource_version = ""
                        break
                    resource_version = meta(obj).get("resourceVersion", resource_version)
                    if kind == "BOOKMARK":
                        continue
                    key = key_of(obj)
                    with self.lock:
                        if kind == "DELETED":
                            self.cache.pop(key, None)
                        else:
                            self.cache[key] = obj
                    self._emit(kind, obj)
            except ApiError as error:
                if error.status == 410:
                    resource_version = ""
                    continue
                if not self._stop.is_set():
                    log.warning("informer %s: %s; retrying", self.name, error)
                    self._stop.wait(1.0)
            except (urllib3.exceptions.HTTPError, OSError, ValueError) as error:
                if not self._stop.is_set():
                    log.info("informer %s: watch ended (%s); resuming", self.name, error)
                    self._stop.wait(0.5)
