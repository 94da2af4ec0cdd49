"""A Kubernetes API emulator good enough for kopf and kubectl: kmock 0.8 plus fix-ups.

Stock kmock 0.8 (pinned in pyproject: this subclasses its internals) serves discovery and keeps
objects in memory, but a kopf operator and kubectl need more. This subclass keeps kmock's
discovery (and its 404s for unknown paths) and serves every request on a declared resource
itself:

- objects get metadata.uid, creationTimestamp, resourceVersion (one counter) and generation,
  which bumps on spec changes only; the URL's namespace is stored; generateName works;
- POST answers 201, PUT replaces (409 on a stale resourceVersion), PATCH takes JSON merge
  patches (strategic merge is treated as merge), and RFC 6902 JSON patches whose failed `test`
  answers 422 as kopf expects;
- the status subresource is enforced: writes to an object keep its status, writes to /status
  change only the status;
- deletion honours finalizers (deletionTimestamp first) and garbage-collects dependents through
  ownerReferences, as the real garbage collector does;
- lists carry kind, apiVersion and a resourceVersion, and can be rendered as meta.k8s.io Tables
  (printer columns of registered CRDs), which `kubectl get` asks for;
- watches resume from ?resourceVersion=, stream application/json lines, honour timeoutSeconds
  and label/field selectors, and send the initial-events-end bookmark `kubectl wait` waits for;
- the core group's discovery says groupVersion "v1" (kmock writes "/v1");
- POSTing a CustomResourceDefinition registers its resource (kind, short names, categories,
  scope, printer columns) for discovery; v1 namespaces and events are served.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime
import json
import re
import secrets
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import aiohttp.web
import attrs
import kmock
from kmock._internal import rendering

BUILTINS: dict[str, tuple[str, bool]] = {
    # "group/version/plural": (kind, namespaced)
    "/v1/namespaces": ("Namespace", False),
    "/v1/pods": ("Pod", True),
    "/v1/services": ("Service", True),
    "/v1/configmaps": ("ConfigMap", True),
    "/v1/secrets": ("Secret", True),
    "/v1/events": ("Event", True),
    "apps/v1/deployments": ("Deployment", True),
    "batch/v1/jobs": ("Job", True),
    "apiextensions.k8s.io/v1/customresourcedefinitions": ("CustomResourceDefinition", False),
}
WITH_STATUS = {"pods", "services", "deployments", "jobs", "namespaces", "customresourcedefinitions"}
VERBS = {"get", "list", "watch", "create", "update", "patch", "delete"}
ResourceKey = tuple[str, str, str]  # group, version, plural
ObjectKey = tuple[ResourceKey, str | None, str]


def _now() -> str:
    return (
        datetime.datetime.now(datetime.UTC)
        .replace(microsecond=0)
        .isoformat()
        .replace("+00:00", "Z")
    )


def _status(code: int, reason: str, message: str) -> aiohttp.web.Response:
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "code": code,
        "reason": reason,
        "message": message,
    }
    return aiohttp.web.json_response(body, status=code)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, null deletes, everything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


class PatchTestFailed(Exception):
    """A JSON patch `test` operation did not match."""


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    return [p.replace("~1", "/").replace("~0", "~") for p in path.lstrip("/").split("/")]


def json_patch(doc: Any, ops: list[dict[str, Any]]) -> Any:
    """RFC 6902 add / remove / replace / test (what kopf and kubectl send)."""
    doc = copy.deepcopy(doc)
    for op in ops:
        parts = _pointer(op["path"])
        parent: Any = doc
        for part in parts[:-1]:
            parent = parent[int(part)] if isinstance(parent, list) else parent.setdefault(part, {})
        last = parts[-1] if parts else None
        kind = op["op"]
        if kind == "test":
            current: Any = doc
            try:
                for part in parts:
                    current = current[int(part)] if isinstance(current, list) else current[part]
            except (KeyError, IndexError, ValueError):
                current = None
            if current != op.get("value"):
                raise PatchTestFailed(f"test failed at {op['path']}")
        elif kind in ("add", "replace"):
            if isinstance(parent, list):
                index = len(parent) if last == "-" else int(str(last))
                if kind == "add":
                    parent.insert(index, op["value"])
                else:
                    parent[index] = op["value"]
            elif last is None:
                doc = op["value"]
            else:
                parent[last] = op["value"]
        elif kind == "remove":
            if isinstance(parent, list):
                parent.pop(int(str(last)))
            else:
                parent.pop(last, None)
        else:
            raise ValueError(f"unsupported JSON patch op {kind!r}")
    return doc


def _labels_match(labels: Mapping[str, str], selector: str) -> bool:
    for raw in re.split(r",(?![^()]*\))", selector):
        term = raw.strip()
        if not term:
            continue
        if m := re.fullmatch(r"([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)", term):
            key, op, values = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",")}
            if (labels.get(key) in values) != (op == "in"):
                return False
        elif m := re.fullmatch(r"([\w./-]+)\s*(!=|==|=)\s*([\w./-]*)", term):
            key, op, value = m.groups()
            if (labels.get(key) == value) != (op != "!="):
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def _field(obj: Mapping[str, Any], path: str) -> Any:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def _fields_match(obj: Mapping[str, Any], selector: str) -> bool:
    for term in selector.split(","):
        if not term.strip():
            continue
        m = re.fullmatch(r"\s*([\w.]+)\s*(!=|==|=)\s*(.*?)\s*", term)
        if m is None:
            continue
        path, op, value = m.groups()
        actual = _field(obj, path)
        if (str(actual) == value) != (op != "!="):
            return False
    return True


def jsonpath(obj: Any, path: str) -> Any:
    """The subset of kubectl JSONPath printer columns use: .a.b, [N], [?(@.k=="v")]."""
    tokens = re.findall(r"\.([\w-]+)|\[(\d+)\]|\[\?\(@\.([\w-]+)==\"([^\"]*)\"\)\]", path)
    value: Any = obj
    for name, index, key, wanted in tokens:
        if value is None:
            return None
        if name:
            value = value.get(name) if isinstance(value, Mapping) else None
        elif index:
            value = (
                value[int(index)] if isinstance(value, list) and int(index) < len(value) else None
            )
        else:
            matches = [v for v in value or [] if isinstance(v, Mapping) and v.get(key) == wanted]
            value = matches[0] if matches else None
    return value


def _age(timestamp: str | None) -> str:
    if not timestamp:
        return "<unknown>"
    then = datetime.datetime.fromisoformat(timestamp)
    seconds = int((datetime.datetime.now(datetime.UTC) - then).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


@attrs.frozen
class Route:
    """What a request addresses, parsed from its path (kmock reads /api/v1/namespaces/x as a
    namespace, not as the namespace object x)."""

    key: ResourceKey
    namespace: str | None
    name: str | None
    sub: str | None


def route(path: str) -> Route | None:
    """Parse an API path; None for discovery and anything else that is not a resource."""
    parts = [p for p in path.strip("/").split("/") if p]
    if len(parts) >= 3 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 4 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    namespace = None
    if rest[0] == "namespaces" and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    name = rest[1] if len(rest) > 1 else None
    sub = "/".join(rest[2:]) or None
    return Route((group, version, rest[0]), namespace, name, sub)


@attrs.define
class ResourceMeta:
    """What the emulator knows about a resource beyond discovery."""

    kind: str
    namespaced: bool
    status_subresource: bool
    columns: list[dict[str, Any]] = attrs.field(factory=list)


@attrs.define(kw_only=True)
class ClusterEmulator(kmock.KubernetesEmulator):
    """kmock's emulator with the fix-ups above; see the module docstring."""

    _store: dict[ObjectKey, dict[str, Any]] = attrs.field(factory=dict, init=False)
    _meta: dict[ResourceKey, ResourceMeta] = attrs.field(factory=dict, init=False)
    _log: list[tuple[int, ResourceKey, str, dict[str, Any]]] = attrs.field(factory=list, init=False)
    _rv: int = attrs.field(default=1, init=False)
    _changed: asyncio.Condition | None = attrs.field(default=None, init=False)
    _closing: bool = attrs.field(default=False, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        for path, (kind, namespaced) in BUILTINS.items():
            group, version, plural = path.split("/")
            self.declare((group, version, plural), kind, namespaced, plural in WITH_STATUS)
        self._put_new(("", "v1", "namespaces"), None, {"metadata": {"name": "default"}})

    # -- resources ------------------------------------------------------------------------------

    def declare(
        self,
        key: ResourceKey,
        kind: str,
        namespaced: bool,
        status_subresource: bool,
        *,
        short_names: tuple[str, ...] = (),
        categories: tuple[str, ...] = (),
        singular: str | None = None,
        columns: list[dict[str, Any]] | None = None,
    ) -> None:
        """Serve a resource (discovery included)."""
        group, version, plural = key
        self._meta[key] = ResourceMeta(kind, namespaced, status_subresource, columns or [])
        self.resources[kmock.resource(group, version, plural)] = kmock.ResourceInfo(
            kind=kind,
            singular=singular or kind.lower(),
            namespaced=namespaced,
            verbs=VERBS,
            shortnames=set(short_names),
            categories=set(categories),
            subresources={"status"} if status_subresource else set(),
        )

    def _register_crd(self, crd: Mapping[str, Any]) -> None:
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        for version in spec.get("versions") or []:
            self.declare(
                (spec["group"], version["name"], names["plural"]),
                names["kind"],
                spec.get("scope", "Namespaced") == "Namespaced",
                "status" in (version.get("subresources") or {}),
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                singular=names.get("singular"),
                columns=list(version.get("additionalPrinterColumns") or []),
            )

    async def _serve_version(self, request: rendering.Request) -> rendering.Payload:
        # kmock writes the core group's groupVersion as "/v1"; kubectl needs "v1".
        payload = await super()._serve_version(request)
        if isinstance(payload, dict) and str(payload.get("groupVersion", "")).startswith("/"):
            payload["groupVersion"] = payload["groupVersion"][1:]
        return payload

    # -- request dispatch -------------------------------------------------------------------------

    async def _handle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        where = route(request.url.path)
        if where is None or where.key not in self._meta:
            return await super()._handle(request)  # discovery, or kmock's 404 for the unknown
        if self._changed is None:
            self._changed = asyncio.Condition()
        method = str(request.method.value).upper()
        name, sub = where.name, where.sub
        if method == "GET" and request.params.get("watch") in ("true", "1"):
            return await self._watch(request, where)
        if method == "GET":
            return self._get(where) if name else self._list(request, where)
        async with self._changed:
            if method == "POST" and not name:
                response = self._create(request, where)
            elif method == "PUT" and name:
                response = self._write(request, where, replace=True)
            elif method == "PATCH" and name:
                response = self._write(request, where, replace=False)
            elif method == "DELETE" and name and not sub:
                response = self._delete(where)
            else:
                response = _status(405, "MethodNotAllowed", f"{method} {request.url.path}")
            self._changed.notify_all()
        return response

    def _namespace(self, where: Route) -> str | None:
        if not self._meta[where.key].namespaced:
            return None
        return where.namespace

    def _record(self, key: ResourceKey, kind: str, obj: dict[str, Any]) -> None:
        self._log.append((self._rv, key, kind, copy.deepcopy(obj)))

    def _bump(self, obj: dict[str, Any]) -> None:
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)

    # -- reads ----------------------------------------------------------------------------------

    def _get(self, where: Route) -> aiohttp.web.Response:
        obj = self._store.get((where.key, self._namespace(where), str(where.name)))
        if obj is None:
            return _status(404, "NotFound", f'{where.key[2]} "{where.name}" not found')
        return aiohttp.web.json_response(obj)

    def _matching(self, request: rendering.Request, where: Route) -> Iterator[dict[str, Any]]:
        ns = self._namespace(where)
        for (rkey, ons, name), obj in sorted(self._store.items(), key=lambda kv: str(kv[0])):
            wanted = rkey == where.key and (ns is None or ons == ns)
            if wanted and where.name in (None, name) and self._selected(request, obj):
                yield obj

    def _selected(self, request: rendering.Request, obj: Mapping[str, Any]) -> bool:
        labels = obj.get("metadata", {}).get("labels") or {}
        label_selector = request.params.get("labelSelector", "")
        field_selector = request.params.get("fieldSelector", "")
        return _labels_match(labels, label_selector) and _fields_match(obj, field_selector)

    def _api_version(self, key: ResourceKey) -> str:
        return f"{key[0]}/{key[1]}" if key[0] else key[1]

    def _list(self, request: rendering.Request, where: Route) -> aiohttp.web.Response:
        key = where.key
        items = list(self._matching(request, where))
        if "as=Table" in request.headers.get("Accept", ""):
            return aiohttp.web.json_response(self._table(key, items))
        return aiohttp.web.json_response(
            {
                "kind": f"{self._meta[key].kind}List",
                "apiVersion": self._api_version(key),
                "metadata": {"resourceVersion": str(self._rv)},
                "items": items,
            }
        )

    def _table(self, key: ResourceKey, items: list[dict[str, Any]]) -> dict[str, Any]:
        columns = self._meta[key].columns or [
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
        ]
        definitions = [
            {"name": "Name", "type": "string", "format": "name", "description": "", "priority": 0}
        ] + [
            {
                "name": c["name"],
                "type": c.get("type", "string"),
                "format": c.get("format", ""),
                "description": c.get("description", ""),
                "priority": c.get("priority", 0),
            }
            for c in columns
        ]
        rows = []
        for obj in items:
            cells: list[Any] = [obj["metadata"]["name"]]
            for column in columns:
                value = jsonpath(obj, column["jsonPath"])
                if column.get("type") == "date":
                    value = _age(value)
                elif isinstance(value, dict | list):
                    value = json.dumps(value)
                cells.append(value)
            partial = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj["metadata"],
            }
            rows.append({"cells": cells, "object": partial})
        return {
            "kind": "Table",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": {"resourceVersion": str(self._rv)},
            "columnDefinitions": definitions,
            "rows": rows,
        }

    async def _watch(self, request: rendering.Request, where: Route) -> aiohttp.web.StreamResponse:
        assert self._changed is not None
        key, ns = where.key, self._namespace(where)
        raw = request._raw_request
        assert raw is not None
        params = request.params
        since = params.get("resourceVersion", "")
        initial = params.get("sendInitialEvents") == "true"
        timeout = float(params.get("timeoutSeconds") or 0) or None
        response = aiohttp.web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(raw)
        deadline = asyncio.get_running_loop().time() + timeout if timeout else None
        async with self._changed:
            position = len(self._log)
            events: list[dict[str, Any]] = []
            if initial or since in ("", "0"):
                events = [{"type": "ADDED", "object": o} for o in self._matching(request, where)]
            else:
                position = next(
                    (i for i, (rv, *_rest) in enumerate(self._log) if rv > int(since)),
                    len(self._log),
                )
            if initial:
                bookmark = {
                    "kind": self._meta[key].kind,
                    "apiVersion": self._api_version(key),
                    "metadata": {
                        "resourceVersion": str(self._rv),
                        "annotations": {"k8s.io/initial-events-end": "true"},
                    },
                }
                events.append({"type": "BOOKMARK", "object": bookmark})
        try:
            for event in events:
                await response.write(json.dumps(event).encode() + b"\n")
            while True:
                async with self._changed:
                    while position >= len(self._log):
                        if self._closing:
                            await response.write_eof()
                            return response
                        left = (
                            None
                            if deadline is None
                            else deadline - asyncio.get_running_loop().time()
                        )
                        if left is not None and left <= 0:
                            await response.write_eof()
                            return response
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self._changed.wait(), timeout=left)
                    batch = self._log[position:]
                    position = len(self._log)
                for _, rkey, kind, obj in batch:
                    if rkey != key:
                        continue
                    if ns is not None and obj["metadata"].get("namespace") != ns:
                        continue
                    if where.name and obj["metadata"]["name"] != where.name:
                        continue
                    if self._selected(request, obj):
                        await response.write(
                            json.dumps({"type": kind, "object": obj}).encode() + b"\n"
                        )
        except (ConnectionResetError, asyncio.CancelledError):
            return response

    # -- writes ---------------------------------------------------------------------------------

    def _put_new(self, key: ResourceKey, ns: str | None, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj.setdefault("metadata", {})
        if ns is not None:
            meta["namespace"] = ns
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = _now()
        meta["generation"] = 1
        kind = self._meta[key].kind
        obj.setdefault("kind", kind)
        obj.setdefault("apiVersion", self._api_version(key))
        self._bump(obj)
        self._store[(key, ns, meta["name"])] = obj
        self._record(key, "ADDED", obj)
        return obj

    def _create(self, request: rendering.Request, where: Route) -> aiohttp.web.Response:
        key = where.key
        obj = copy.deepcopy(request.data)
        if not isinstance(obj, dict):
            return _status(400, "BadRequest", "expected a JSON object")
        meta = obj.setdefault("metadata", {})
        ns = self._namespace(where)
        if ns is not None:
            ns = ns or meta.get("namespace") or "default"
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + secrets.token_hex(3)
        name = meta.get("name")
        if not name:
            return _status(422, "Invalid", "metadata.name: Required value")
        if (key, ns, name) in self._store:
            return _status(409, "AlreadyExists", f'{key[2]} "{name}" already exists')
        if self._meta[key].status_subresource:
            obj.pop("status", None)
        for field in ("resourceVersion", "uid", "creationTimestamp", "deletionTimestamp"):
            meta.pop(field, None)
        created = self._put_new(key, ns, obj)
        if key == ("apiextensions.k8s.io", "v1", "customresourcedefinitions"):
            self._register_crd(created)
        return aiohttp.web.json_response(created, status=201)

    def _write(
        self, request: rendering.Request, where: Route, *, replace: bool
    ) -> aiohttp.web.Response:
        key = where.key
        okey = (key, self._namespace(where), str(where.name))
        current = self._store.get(okey)
        if current is None:
            return _status(404, "NotFound", f'{key[2]} "{where.name}" not found')
        body = request.data
        content_type = request.headers.get("Content-Type", "application/json").split(";")[0]
        try:
            if replace:
                new = copy.deepcopy(body)
            elif content_type == "application/json-patch+json":
                new = json_patch(current, body)
            elif content_type in (
                "application/merge-patch+json",
                "application/strategic-merge-patch+json",
            ):
                new = merge_patch(current, body)
            else:
                return _status(415, "UnsupportedMediaType", f"unsupported patch {content_type}")
        except PatchTestFailed as exc:
            return _status(422, "Invalid", str(exc))
        sent_rv = (
            (body.get("metadata") or {}).get("resourceVersion") if isinstance(body, dict) else None
        )
        if sent_rv and sent_rv != current["metadata"]["resourceVersion"]:
            return _status(
                409, "Conflict", "the object has been modified; resourceVersion is stale"
            )
        status_only = where.sub == "status"
        if status_only:
            result = copy.deepcopy(current)
            if "status" in new:
                result["status"] = new["status"]
            else:
                result.pop("status", None)
        else:
            result = new
            if self._meta[key].status_subresource:
                if "status" in current:
                    result["status"] = copy.deepcopy(current["status"])
                else:
                    result.pop("status", None)
        meta = result.setdefault("metadata", {})
        old_meta = current["metadata"]
        for field in (
            "uid",
            "creationTimestamp",
            "name",
            "namespace",
            "generation",
            "deletionTimestamp",
        ):
            if field in old_meta:
                meta[field] = old_meta[field]
            else:
                meta.pop(field, None)
        spec_of = {k: v for k, v in current.items() if k not in ("metadata", "status")}
        new_spec = {k: v for k, v in result.items() if k not in ("metadata", "status")}
        if spec_of != new_spec:
            meta["generation"] = int(old_meta.get("generation", 1)) + 1
        if result == current:
            return aiohttp.web.json_response(current)
        self._bump(result)
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            self._remove(okey, result)
            return aiohttp.web.json_response(result)
        self._store[okey] = result
        self._record(key, "MODIFIED", result)
        return aiohttp.web.json_response(result)

    def _delete(self, where: Route) -> aiohttp.web.Response:
        okey = (where.key, self._namespace(where), str(where.name))
        current = self._store.get(okey)
        if current is None:
            return _status(404, "NotFound", f'{where.key[2]} "{where.name}" not found')
        self._terminate(okey)
        return aiohttp.web.json_response(current)

    def _terminate(self, okey: ObjectKey) -> None:
        obj = self._store[okey]
        meta = obj["metadata"]
        if meta.get("finalizers"):
            if not meta.get("deletionTimestamp"):
                meta["deletionTimestamp"] = _now()
                self._bump(obj)
                self._record(okey[0], "MODIFIED", obj)
            return
        self._remove(okey, obj)

    def _remove(self, okey: ObjectKey, obj: dict[str, Any]) -> None:
        self._store.pop(okey, None)
        self._bump(obj)
        self._record(okey[0], "DELETED", obj)
        uid = obj["metadata"].get("uid")
        dependents = [
            k
            for k, o in self._store.items()
            if any(r.get("uid") == uid for r in o["metadata"].get("ownerReferences") or [])
        ]
        for dependent in dependents:  # the garbage collector's background propagation
            if dependent in self._store:
                self._terminate(dependent)

    async def shutdown(self) -> None:
        """End every open watch (clients may be gone without the server having noticed)."""
        self._closing = True
        if self._changed is not None:
            async with self._changed:
                self._changed.notify_all()

    # -- for tests ------------------------------------------------------------------------------

    def objects(self, group: str, version: str, plural: str) -> list[dict[str, Any]]:
        """A snapshot of the stored objects of one resource (read from the emulator's thread)."""
        return [
            copy.deepcopy(o)
            for (k, _, _), o in self._store.items()
            if k == (group, version, plural)
        ]
