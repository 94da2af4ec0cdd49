"""`inferedge run` for a site of several edge pools: every version prepared, every class profiled.

A pipeline with `spec.distribution` is a site: each version of `spec.model` (the model itself,
then `spec.model.versions`) goes through the same steps as a one-pool run (`local.runner.prepare`:
profile on the reference pool's class and the cloud, plan, train, calibrate, export), each into
its own directory under `versions/`; then every version is profiled on every other pool's device
class too, as the same `inferedge cluster profile` step a Job runs. From those profiles and each
version's measured test accuracy (at its calibrated threshold) comes the exploration table (a
version's rows as served with its early exits: a request costs on average the share of the whole
model's time its evaluation expects at that threshold), and from the table the distribution
policy decides each pool's version and share for the target.

A site's versions run whole on their pools: the dispatcher spreads requests over boards, not
layers, and the versions' clouds would share one offload subject. A version whose plan offloads
is refused in one line naming the fix (partitioning strategy memory, memoryFraction 1).
A truncated version (`exit: k`) is the model itself served with `--answer-at-exit k`: its
artifact set, its k-th edge exit's accuracy, and the share of the whole model's time that path
takes (`core.site_table`, which the operator uses too).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from inferedge.api.device_profile import DeviceProfile
from inferedge.api.documents import DocumentError, Documents
from inferedge.api.edge_pools import EdgePool
from inferedge.api.jobs import ProfileJob
from inferedge.api.keys import profile_store_key, profiling_key
from inferedge.api.model_spec import ModelVersion
from inferedge.api.pipeline import InferencePipeline, StorageSpec
from inferedge.core.distribution import Distribution, Pool, distribute
from inferedge.core.errors import InferedgeError
from inferedge.core.exploration import ExplorationRow
from inferedge.core.profile import MeasuredProfile, parse_profile
from inferedge.core.site_choice import policy_pools
from inferedge.core.site_table import served_version, site_rows
from inferedge.local.runner import Prepared, prepare, run_step, thread_env
from inferedge.local.site_measure import Candidate, table_as_served
from inferedge.steps.reporting import Reporter
from inferedge.storage import open_store, read_text


@dataclass(frozen=True)
class PreparedSite:
    """Every version prepared, the pools' device classes, the table and the decision."""

    pipeline: InferencePipeline
    versions: dict[str, Prepared]
    """By version label, in the spec's order (the model itself first); a truncated version
    has the model's own."""
    truncations: dict[str, int]
    """The truncated versions' labels, with the edge exit each answers at."""
    pools: tuple[EdgePool, ...]
    devices: dict[str, DeviceProfile]
    """Each pool's DeviceProfile, by pool name."""
    table: tuple[ExplorationRow, ...]
    """One row per (device class, version); `device` is the DeviceProfile's name."""
    distribution: Distribution
    out: Path

    def policy_pools(self) -> list[Pool]:
        """The distribution policy's pools: each pool's replicas and its class's rows."""
        return policy_pools(self.pools, self.table)

    def row(self, pool: str, version: str) -> ExplorationRow:
        """The table's row of `version` on `pool`'s device class."""
        profile = next(p.profile for p in self.pools if p.name == pool)
        return next(r for r in self.table if r.device == profile and r.version == version)


def _version_pipeline(pipeline: InferencePipeline, version: ModelVersion) -> InferencePipeline:
    model = pipeline.spec.model.model_copy(
        update={
            "name": version.name,
            "uri": version.uri,
            "weights_uri": version.weights_uri,
            "versions": (),
        }
    )
    return pipeline.model_copy(update={"spec": pipeline.spec.model_copy(update={"model": model})})


def _pool_devices(
    docs: Documents, pipeline: InferencePipeline, source: str
) -> dict[str, DeviceProfile]:
    devices = {}
    for i, pool in enumerate(pipeline.spec.edge.resolved_pools()):
        found = docs.profile(pool.profile, pipeline.metadata.namespace, source)
        if found.spec.role != "edge":
            raise DocumentError(
                f"{source}: spec.edge.pools[{i}].profile {pool.profile!r} is a DeviceProfile of "
                f"role {found.spec.role!r}, expected 'edge'"
            )
        devices[pool.name] = found
    return devices


def _check_whole_on_edge(label: str, prepared: Prepared) -> None:
    plan = prepared.plan
    if plan.split < plan.final_cut:
        raise InferedgeError(
            f"version {label}: its plan offloads after cut {plan.split} of {plan.final_cut}; a "
            "local site runs each version whole on its pools (set spec.partitioning.strategy "
            "memory with memoryFraction 1)"
        )


def prepare_site(
    docs: Documents,
    pipeline: InferencePipeline,
    out: Path,
    reporter: Reporter,
    source: str,
    *,
    threads: int,
    measure_s: float = 6.0,
) -> PreparedSite:
    """Prepare every version, profile it on every pool's class, measure each (class, version)
    as served for `measure_s` seconds (0: keep the profiles' rows), and decide the
    distribution."""
    spec = pipeline.spec
    if spec.distribution is None:
        raise InferedgeError(f"{source}: spec.distribution: a site needs a target rate")
    devices = _pool_devices(docs, pipeline, source)
    versions: dict[str, Prepared] = {}
    truncations = {v.label: v.exit for v in spec.model.versions if v.exit is not None}
    for version in spec.model.all_versions():
        if version.exit is not None:
            continue
        reporter.info(f"version {version.label}: every step, as a one-pool run")
        prepared = prepare(
            docs,
            _version_pipeline(pipeline, version),
            out / "versions" / version.label,
            reporter,
            source,
            threads=threads,
        )
        _check_whole_on_edge(version.label, prepared)
        versions[version.label] = prepared
    reference = spec.model.all_versions()[0].label
    for label in truncations:
        versions[label] = versions[reference]
    table: list[ExplorationRow] = []
    classes = {p.profile: devices[p.name] for p in spec.edge.resolved_pools()}
    profiles: dict[tuple[str, str], MeasuredProfile] = {}
    for label, prepared in versions.items():
        calibration = prepared.manifest.calibration
        if calibration is None:
            raise InferedgeError(f"version {label}: its artifact set has no calibration")
        served = served_version(label, prepared.plan, calibration, truncations.get(label))
        for profile_name, device in classes.items():
            key = (prepared.plan.hash, profile_name)
            if key not in profiles:
                profiles[key] = (
                    prepared.edge
                    if profile_name == spec.edge.reference.profile
                    else _profile_on(prepared, device, reporter, threads)
                )
        table += site_rows({c: profiles[prepared.plan.hash, c] for c in classes}, served)
    if measure_s > 0:
        table = _measured(
            table, versions=versions, truncations=truncations, devices=devices, out=out,
            reporter=reporter, threads=threads, seconds=measure_s,
        )  # fmt: skip
    target = spec.distribution
    pools = spec.edge.resolved_pools()
    decided = distribute(
        policy_pools(pools, tuple(table)),
        target.target_rate,
        min_accuracy=target.min_accuracy,
        max_utilization=target.max_utilization,
    )
    return PreparedSite(pipeline, versions, truncations, pools, devices, tuple(table), decided, out)


def _measured(
    table: list[ExplorationRow],
    *,
    versions: dict[str, Prepared],
    truncations: dict[str, int],
    devices: dict[str, DeviceProfile],
    out: Path,
    reporter: Reporter,
    threads: int,
    seconds: float,
) -> list[ExplorationRow]:
    """`table` with every row's latency and throughput measured as served."""
    pool_of = {device.metadata.name: pool for pool, device in devices.items()}
    candidates = [
        Candidate(
            row=row,
            prepared=versions[row.version],
            answer_at=truncations.get(row.version),
            pool=pool_of[row.device],
            slowdown=devices[pool_of[row.device]].spec.emulation.slowdown,
        )
        for row in table
    ]
    first = next(iter(versions.values()))
    meta = first.pipeline.metadata
    return table_as_served(
        candidates, first.splits.test, namespace=meta.namespace, pipeline=meta.name,
        logs=out / "logs" / "measure", cache=out / "cache", reporter=reporter, threads=threads,
        seconds=seconds,
    )  # fmt: skip


def _profile_on(
    prepared: Prepared, device: DeviceProfile, reporter: Reporter, threads: int
) -> MeasuredProfile:
    """`prepared`'s version profiled on another device class, as a Job profiles it."""
    store = open_store(prepared.store_uri)
    spec = prepared.pipeline.spec.model_copy(update={"storage": StorageSpec(uri=store.uri)})
    namespace = prepared.pipeline.metadata.namespace
    key = profile_store_key(
        namespace, device.metadata.name, profiling_key(spec, device.spec, threads=threads)
    )
    run_step(
        ProfileJob.of(spec, device.metadata.name, device.spec, key, emulated=True),
        reporter,
        thread_env(threads),
    )
    text = read_text(store, key)
    (prepared.out / f"edge-profile-{device.metadata.name}.json").write_text(text, "utf-8")
    return parse_profile(text, key)
