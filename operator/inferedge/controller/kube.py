"""A small async face over the official Kubernetes client: plain dicts in and out.

kopf watches and runs handlers; this client is what those handlers use to create children,
write status and read Secrets. It signs in the way kopf does (in-cluster service account, else
the kubeconfig named by KUBECONFIG) and runs the blocking client in worker threads.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

from inferedge.controller import naming

MERGE_PATCH: Final = "application/merge-patch+json"
JSON_PATCH: Final = "application/json-patch+json"
JSON: Final = "application/json"


class KubeError(Exception):
    """An API call failed; `status` is the HTTP status (0 when the server was not reached)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"Kubernetes API: HTTP {status}: {message}" if status else message)
        self.status = status


class NotFound(KubeError):
    """HTTP 404."""


class Conflict(KubeError):
    """HTTP 409: already exists, or a stale resourceVersion."""


@dataclass(frozen=True)
class Resource:
    """A resource type as the API addresses it."""

    group: str
    version: str
    plural: str
    kind: str

    @property
    def api_version(self) -> str:
        """`group/version`, or `v1` for the core group."""
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str, name: str | None = None, subresource: str | None = None) -> str:
        """The URL path of the collection, an object, or an object's subresource."""
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        path = f"{base}/namespaces/{quote(namespace)}/{self.plural}"
        if name is not None:
            path += f"/{quote(name)}"
        if subresource is not None:
            path += f"/{subresource}"
        return path


JOBS: Final = Resource("batch", "v1", "jobs", "Job")
DEPLOYMENTS: Final = Resource("apps", "v1", "deployments", "Deployment")
SERVICES: Final = Resource("", "v1", "services", "Service")
CONFIG_MAPS: Final = Resource("", "v1", "configmaps", "ConfigMap")
SECRETS: Final = Resource("", "v1", "secrets", "Secret")
PODS: Final = Resource("", "v1", "pods", "Pod")
EVENTS: Final = Resource("", "v1", "events", "Event")
PIPELINES: Final = Resource(naming.GROUP, naming.VERSION, naming.PIPELINES, "InferencePipeline")
DEVICE_PROFILES: Final = Resource(
    naming.GROUP, naming.VERSION, naming.DEVICE_PROFILES, "DeviceProfile"
)
_BY_KIND: Final = {
    r.kind: r for r in (JOBS, DEPLOYMENTS, SERVICES, CONFIG_MAPS, SECRETS, PODS, EVENTS, PIPELINES)
}


def resource_of(obj: Mapping[str, Any]) -> Resource:
    """The resource type of a built object, from its kind."""
    return _BY_KIND[str(obj["kind"])]


class Kube:
    """Typed-enough calls on the API; every method raises KubeError (NotFound, Conflict)."""

    def __init__(self, api_client: Any) -> None:
        self._client = api_client

    @classmethod
    def connect(cls) -> Kube:
        """Sign in in-cluster if a service account is mounted, else from the kubeconfig."""
        import kubernetes.client
        import kubernetes.config

        configuration = kubernetes.client.Configuration()
        try:
            kubernetes.config.load_incluster_config(  # type: ignore[no-untyped-call]
                client_configuration=configuration
            )
        except kubernetes.config.ConfigException:
            kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=os.environ.get("KUBECONFIG") or None,
                client_configuration=configuration,
            )
        return cls(kubernetes.client.ApiClient(configuration))

    def close(self) -> None:
        """Release the connection pool."""
        self._client.close()

    async def _call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: Sequence[tuple[str, str]] = (),
        content_type: str = JSON,
    ) -> Any:
        return await asyncio.to_thread(self._call_sync, method, path, body, query, content_type)

    def _call_sync(
        self,
        method: str,
        path: str,
        body: Any,
        query: Sequence[tuple[str, str]],
        content_type: str,
    ) -> Any:
        headers = {"Accept": JSON}
        if body is not None:
            headers["Content-Type"] = content_type
        request = self._client.param_serialize(
            method,
            path,
            query_params=list(query),
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        try:
            response = self._client.call_api(*request, _request_timeout=30)
            data = response.read()
        except Exception as exc:  # urllib3 and client errors: the server was not reached
            raise KubeError(0, f"{method} {path}: {type(exc).__name__}: {exc}") from exc
        payload = json.loads(data) if data else None
        if 200 <= response.status < 300:
            return payload
        message = payload.get("message", "") if isinstance(payload, dict) else str(data[:200])
        error = {404: NotFound, 409: Conflict}.get(response.status, KubeError)
        raise error(response.status, f"{method} {path}: {message}")

    async def get(self, resource: Resource, namespace: str, name: str) -> dict[str, Any] | None:
        """The object, or None if it does not exist."""
        try:
            result: dict[str, Any] = await self._call("GET", resource.path(namespace, name))
        except NotFound:
            return None
        return result

    async def list(
        self, resource: Resource, namespace: str, labels: Mapping[str, str] | None = None
    ) -> list[dict[str, Any]]:
        """Objects in `namespace` carrying all of `labels`."""
        query = []
        if labels:
            query.append(("labelSelector", ",".join(f"{k}={v}" for k, v in labels.items())))
        result = await self._call("GET", resource.path(namespace), query=query)
        return list(result.get("items") or [])

    async def create(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Create the object; Conflict if it exists already."""
        resource = resource_of(obj)
        namespace = obj["metadata"]["namespace"]
        result: dict[str, Any] = await self._call("POST", resource.path(namespace), body=dict(obj))
        return result

    async def replace(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Replace the object (PUT); its metadata.resourceVersion guards against lost updates."""
        resource = resource_of(obj)
        meta = obj["metadata"]
        path = resource.path(meta["namespace"], meta["name"])
        result: dict[str, Any] = await self._call("PUT", path, body=dict(obj))
        return result

    async def patch(
        self,
        resource: Resource,
        namespace: str,
        name: str,
        patch: Mapping[str, Any],
        *,
        subresource: str | None = None,
    ) -> dict[str, Any]:
        """A JSON merge patch (null deletes a key) of the object or its subresource."""
        path = resource.path(namespace, name, subresource)
        result: dict[str, Any] = await self._call(
            "PATCH", path, body=dict(patch), content_type=MERGE_PATCH
        )
        return result

    async def json_patch(
        self,
        resource: Resource,
        namespace: str,
        name: str,
        ops: Sequence[Mapping[str, Any]],
        *,
        subresource: str | None = None,
    ) -> dict[str, Any]:
        """An RFC 6902 JSON patch of the object or its subresource: reaches into list items,
        and a failed `test` operation refuses it whole (KubeError, HTTP 422)."""
        path = resource.path(namespace, name, subresource)
        body = [dict(op) for op in ops]
        result: dict[str, Any] = await self._call("PATCH", path, body=body, content_type=JSON_PATCH)
        return result

    async def delete(self, resource: Resource, namespace: str, name: str) -> bool:
        """Delete with background propagation (dependents go too); False if already gone."""
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
        try:
            await self._call("DELETE", resource.path(namespace, name), body=body)
        except NotFound:
            return False
        return True
