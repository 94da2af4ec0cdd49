"""The clock agent's DaemonSet in the chart: off by default; when on, it lints, validates, runs
`inferedge agent` with the admin's bounds, and holds only the privileges it needs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest

from inferedge.cli.agent_command import agent
from inferedge.controller.pods import NON_ROOT_UID
from inferedge.runtime.clock_agent import DEFAULT_SOCKET
from tests.chart.helpers import CHART, NAMESPACE, Manifest, chart, find, one, render, render_files

ON: dict[str, Any] = {"clockAgent": {"enabled": True}}
BOUNDED: dict[str, Any] = {
    "clockAgent": {
        "enabled": True,
        "cpuMinKhz": 422400,
        "cpuMaxKhz": 1907200,
        "gpuMaxKhz": 1109250,
        "allowedUids": [65532, 1001],
        "leaseSeconds": 300,
        "socketDir": "/var/run/clocks/",
        "tolerations": [{"key": "nvidia.com/jetson", "operator": "Exists", "effect": "NoSchedule"}],
        "nodeSelector": {"nvidia.com/jetson": "true"},
        "priorityClassName": "system-node-critical",
        "image": "registry.local/inferedge-agent:1",
    },
    "imagePullSecrets": ["regcred"],
}
PRIVILEGED: dict[str, Any] = {"clockAgent": {"enabled": True, "privileged": True}}


def daemonset(values: dict[str, Any]) -> Manifest:
    return one(render(values), "DaemonSet")


def pod_of(values: dict[str, Any]) -> dict[str, Any]:
    pod: dict[str, Any] = daemonset(values)["spec"]["template"]["spec"]
    return pod


def container_of(values: dict[str, Any]) -> dict[str, Any]:
    (container,) = pod_of(values)["containers"]
    return container  # type: ignore[no-any-return]


@pytest.mark.parametrize("values", [ON, BOUNDED, PRIVILEGED], ids=["on", "bounded", "privileged"])
def test_enabled_agent_lints_and_validates(values: dict[str, Any]) -> None:
    report = helm.lint(CHART, values, strict=True, kube_version="v1.30.0", namespace=NAMESPACE)
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []
    objects = render(values)
    for obj in objects:
        if obj["kind"] == "DaemonSet":
            kubernetes_validate.validate(obj, "1.37.0", strict=True)
    assert len(find(objects, "DaemonSet")) == 1


def test_disabled_by_default_renders_nothing() -> None:
    files = render_files()
    assert files[f"{chart().name}/templates/clock-agent.yaml"].strip() == ""
    assert not find(render(), "DaemonSet")
    assert not find(render({"clockAgent": {"enabled": False, "cpuMaxKhz": 1}}), "DaemonSet")


def test_the_bounds_and_settings_reach_the_agents_arguments(tmp_path: Path) -> None:
    args = container_of(BOUNDED)["args"]
    assert args[0] == "agent"
    pairs = list(zip(args[1::2], args[2::2], strict=True))
    assert ("--cpu-min-khz", "422400") in pairs
    assert ("--cpu-max-khz", "1907200") in pairs
    assert ("--gpu-max-khz", "1109250") in pairs
    assert not any(flag == "--gpu-min-khz" for flag, _ in pairs), "0 means no bound"
    # The real command parses them as the agent will (with the host's / stood in for).
    given = [str(tmp_path) if a == "/host" else a for a in args[1:]]
    params = agent.make_context("agent", given).params
    assert (params["cpu_min_khz"], params["cpu_max_khz"]) == (422400, 1907200)
    assert (params["gpu_min_khz"], params["gpu_max_khz"]) == (None, 1109250)
    assert params["allowed_uids"] == (65532, 1001)
    assert params["lease_s"] == 300
    assert params["socket_path"] == Path("/var/run/clocks/clocks.sock")


def test_defaults_agree_with_the_agent_and_the_runtime_images() -> None:
    container = container_of(ON)
    params = agent.make_context("agent", ["--help"], resilient_parsing=True).params
    args = container["args"]
    assert args[args.index("--socket") + 1] == str(DEFAULT_SOCKET) == str(params["socket_path"])
    assert args[args.index("--allowed-uid") + 1] == str(NON_ROOT_UID)
    assert not [a for a in args if a.endswith("-khz")], "no bound unless the admin sets one"
    assert container["image"] == "ghcr.io/inferedge/operator:0.1.0"
    assert pod_of(ON)["nodeSelector"] == {"kubernetes.io/arch": "arm64"}


def test_the_agent_holds_only_what_it_needs() -> None:
    pod = pod_of(ON)
    assert pod["automountServiceAccountToken"] is False
    assert not {"hostNetwork", "hostPID", "hostIPC"} & pod.keys()
    assert pod["securityContext"]["runAsUser"] == 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    ctx = container["securityContext"]
    assert ctx["privileged"] is False
    assert ctx["allowPrivilegeEscalation"] is False
    assert ctx["capabilities"] == {"drop": ["ALL"]}
    assert ctx["readOnlyRootFilesystem"] is True
    assert container["resources"]["limits"]["memory"]
    volumes = {v["name"]: v["hostPath"] for v in pod["volumes"]}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert volumes == {
        "host-sys": {"path": "/sys", "type": "Directory"},
        "socket-dir": {"path": "/run/inferedge", "type": "DirectoryOrCreate"},
    }
    args = container["args"]
    sysfs_root = args[args.index("--sysfs-root") + 1]
    assert mounts["host-sys"] == f"{sysfs_root}/sys", "the agent reads the host's /sys"
    assert mounts["socket-dir"] == str(Path(args[args.index("--socket") + 1]).parent)


def test_privileged_only_when_asked() -> None:
    ctx = container_of(PRIVILEGED)["securityContext"]
    assert ctx["privileged"] is True
    assert "allowPrivilegeEscalation" not in ctx
    assert "capabilities" not in ctx


def test_scheduling_and_image_come_from_values() -> None:
    pod = pod_of(BOUNDED)
    assert pod["nodeSelector"] == {"nvidia.com/jetson": "true"}
    assert pod["tolerations"] == BOUNDED["clockAgent"]["tolerations"]
    assert pod["priorityClassName"] == "system-node-critical"
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["containers"][0]["image"] == "registry.local/inferedge-agent:1"


def test_agent_pods_are_not_the_operators() -> None:
    objects = render(ON)
    operator_selector = one(objects, "Deployment")["spec"]["selector"]["matchLabels"]
    agent_set = one(objects, "DaemonSet")
    labels = agent_set["spec"]["template"]["metadata"]["labels"]
    assert agent_set["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert not operator_selector.items() <= labels.items()
    assert labels["app.kubernetes.io/component"] == "clock-agent"


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        ({"cpuMaxKhz": -1}, "/clockAgent/cpuMaxKhz"),
        ({"gpuMinKhz": "fast"}, "/clockAgent/gpuMinKhz"),
        ({"allowedUids": []}, "/clockAgent/allowedUids"),
        ({"allowedUids": [-5]}, "/clockAgent/allowedUids/0"),
        ({"socketDir": "run/inferedge"}, "/clockAgent/socketDir"),
        ({"leaseSeconds": 0}, "/clockAgent/leaseSeconds"),
        ({"resources": {"limits": {"memory": "lots"}}}, "/clockAgent/resources/limits/memory"),
        ({"hostNetwork": True}, "hostNetwork"),
    ],
)
def test_schema_rejects_bad_agent_values_naming_the_field(
    values: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(helm.HelmValuesError) as err:
        render_files({"clockAgent": {"enabled": True, **values}})
    assert fragment in str(err.value)


def test_crossed_bounds_are_refused_with_a_reason() -> None:
    values = {"clockAgent": {"enabled": True, "gpuMinKhz": 900000, "gpuMaxKhz": 600000}}
    with pytest.raises(helm.HelmRenderError, match=r"clockAgent\.gpuMinKhz \(900000\) is above"):
        render_files(values)
