"""The CPU and GPU clock drivers against fake sysfs trees laid out as on Jetson Nano, Xavier NX
and Orin NX: discovery, clamping, the safe write order, refused writes, restore, garbage."""

from __future__ import annotations

from pathlib import Path

import pytest

from inferedge.runtime.clocks import ClockDomain, ClockError, ClockKind, Clocks, discover_clocks
from tests.runtime import sysfs_trees as trees
from tests.runtime.sysfs_trees import BOARDS, Board, limits, watch_writes

# Written out rather than taken from sysfs_trees, so a wrong table there fails here: cores,
# (first, last, count) of the CPU table and of the GPU table, in kHz.
EXPECTED = {
    "nano": (4, (102_000, 1_479_000, 15), (76_800, 921_600, 12)),
    "xavier_nx": (6, (115_200, 1_907_200, 25), (114_750, 1_109_250, 15)),
    "orin": (8, (115_200, 1_984_000, 26), (306_000, 918_000, 7)),
}


@pytest.fixture(params=sorted(BOARDS))
def board_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


def build(name: str, root: Path) -> Board:
    return BOARDS[name](root)


def summary(table: tuple[int, ...]) -> tuple[int, int, int]:
    return table[0], table[-1], len(table)


def one_line_naming(exc: ClockError, fragment: str) -> None:
    message = str(exc)
    assert "\n" not in message
    assert fragment in message, message


def test_discovery_covers_every_cpu_once_and_finds_the_gpu(tmp_path: Path, board_name: str) -> None:
    board = build(board_name, tmp_path)
    clocks = discover_clocks(tmp_path)
    cores, cpu_table, gpu_table = EXPECTED[board_name]

    cpu = [d for d in clocks.domains if d.kind == "cpu"]
    assert {d.name: d.cpus for d in cpu} == board.policies
    covered = [c for d in cpu for c in d.cpus]
    assert sorted(covered) == list(range(cores))  # each core exactly once
    assert all(summary(d.frequencies_khz) == cpu_table for d in cpu)
    assert all((d.default_min_khz, d.default_max_khz) == cpu_table[:2] for d in cpu)

    (gpu,) = [d for d in clocks.domains if d.kind == "gpu"]
    assert (gpu.name, gpu.cpus) == (board.gpu, ())
    assert gpu.path.resolve() == board.gpu_dir.resolve()
    assert summary(gpu.frequencies_khz) == gpu_table
    assert (gpu.default_min_khz, gpu.default_max_khz) == gpu_table[:2]

    assert summary(clocks.table("cpu")) == cpu_table
    assert clocks.table("gpu") == gpu.frequencies_khz
    assert clocks.skipped == ()


@pytest.mark.parametrize(
    ("device", "name"),
    [
        ("gpu.0", "57000000.gpu"),
        ("17000000.gv11b", "17000000.gv11b"),
        ("17000000.ga10b", "17000000.ga10b"),
        ("platform/bus@0/17000000.gpu", "17000000.gpu"),  # Orin on JetPack 6
    ],
)
@pytest.mark.parametrize("class_link", [True, False])
def test_the_gpu_is_found_by_glob_wherever_it_lies(
    tmp_path: Path, device: str, name: str, class_link: bool
) -> None:
    directory = trees.devfreq_gpu(tmp_path, device, name, (300_000_000, 600_000_000))
    if not class_link:
        (tmp_path / "sys/class/devfreq" / name).unlink()
    # A devfreq device of another SoC is not a Jetson GPU.
    trees.devfreq_gpu(tmp_path, "fdab0000.npu", "fdab0000.npu", (300_000_000,))
    (gpu,) = discover_clocks(tmp_path).domains
    assert (gpu.kind, gpu.name, gpu.frequencies_khz) == ("gpu", name, (300_000, 600_000))
    assert gpu.path.resolve() == directory.resolve()


@pytest.mark.parametrize("kind", ["cpu", "gpu"])
def test_pin_clamps_to_the_highest_step_not_above(
    tmp_path: Path, board_name: str, kind: ClockKind
) -> None:
    build(board_name, tmp_path)
    clocks = discover_clocks(tmp_path)
    table = clocks.table(kind)
    middle = len(table) // 2
    names = [d.name for d in clocks.domains if d.kind == kind]
    cases = {
        10**9: table[-1],  # above the table
        1: table[0],  # below it
        table[middle] + 1: table[middle],  # between two steps
        table[middle]: table[middle],  # on a step
    }
    for asked, expected in cases.items():
        pinned = clocks.pin(kind, asked)
        assert pinned == dict.fromkeys(names, expected)
        found = limits(tmp_path)
        assert all(found[name] == (expected, expected) for name in names)


def test_pin_writes_the_units_of_each_file(tmp_path: Path) -> None:
    board = trees.xavier_nx(tmp_path)
    clocks = discover_clocks(tmp_path)
    assert clocks.pin("cpu", 1_200_000) == dict.fromkeys(board.policies, 1_190_400)
    assert clocks.pin("gpu", 600_000) == {"17000000.gv11b": 599_250}
    policy = tmp_path / trees.CPUFREQ / "policy2"
    assert (policy / "scaling_max_freq").read_text().strip() == "1190400"  # kHz
    assert (board.gpu_dir / "min_freq").read_text().strip() == "599250000"  # Hz


def test_the_union_of_tables_and_per_domain_clamping(tmp_path: Path) -> None:
    trees.cpufreq_policy(tmp_path, 0, (0, 1), (100_000, 200_000, 300_000))
    trees.cpufreq_policy(tmp_path, 4, (4, 5), (200_000, 400_000, 200_000))
    trees.cpufreq_policy(tmp_path, 10, (10,), (50_000,))
    clocks = discover_clocks(tmp_path)
    # Numeric order (policy10 after policy4), each table sorted and deduplicated.
    assert [d.name for d in clocks.domains] == ["policy0", "policy4", "policy10"]
    assert clocks.domains[1].frequencies_khz == (200_000, 400_000)
    assert clocks.table("cpu") == (50_000, 100_000, 200_000, 300_000, 400_000)
    assert clocks.table("gpu") == ()
    assert clocks.pin("cpu", 350_000) == {
        "policy0": 300_000,
        "policy4": 200_000,
        "policy10": 50_000,
    }


def test_min_never_exceeds_max_after_any_write(tmp_path: Path) -> None:
    board = trees.xavier_nx(tmp_path)
    clocks = discover_clocks(tmp_path)
    top, bottom = board.cpu_khz[-1], board.cpu_khz[0]
    # (kind, kHz asked, the file written first): down to a step below the current min must
    # lower min first, up to one above the current max must raise max first.
    steps: list[tuple[ClockKind, int, str]] = [
        ("cpu", top, "min_freq"),
        ("cpu", bottom, "min_freq"),
        ("cpu", top, "max_freq"),
        ("gpu", 1, "min_freq"),
        ("gpu", 10**9, "max_freq"),
    ]
    for kind, khz, first in steps:
        with watch_writes(tmp_path) as log:
            clocks.pin(kind, khz)
        domains = 3 if kind == "cpu" else 1
        assert len(log.paths) == 2 * domains  # a min and a max per domain
        assert [p.name.endswith(first) for p in log.paths] == [True, False] * domains
        for state in log.after_each_write:
            assert all(s is not None and s[0] <= s[1] for s in state.values()), state
    with watch_writes(tmp_path) as log:
        clocks.restore()
    assert len(log.paths) == 2 * 4
    for state in log.after_each_write:
        assert all(s is not None and s[0] <= s[1] for s in state.values()), state


@pytest.mark.parametrize(
    ("kind", "broken", "fragment"),
    [
        ("cpu", "policy2/scaling_min_freq", "cannot write 1190400 to"),  # the first write
        ("cpu", "policy2/scaling_max_freq", "cannot read"),  # read before any write
        ("gpu", "min_freq", "cannot write 599250000 to"),
    ],
)
def test_a_refused_write_is_one_line_and_leaves_other_domains_as_they_were(
    tmp_path: Path, kind: ClockKind, broken: str, fragment: str
) -> None:
    board = trees.xavier_nx(tmp_path)
    clocks = discover_clocks(tmp_path)
    # The driver names the GPU by its /sys/class/devfreq link.
    base = tmp_path / "sys/class/devfreq" / board.gpu if kind == "gpu" else tmp_path / trees.CPUFREQ
    # Root may write any file: a directory in its place refuses the write as sysfs would.
    (base / broken).unlink()
    (base / broken).mkdir()
    before = limits(tmp_path)

    with pytest.raises(ClockError) as refused:
        clocks.pin(kind, 1_200_000 if kind == "cpu" else 600_000)
    one_line_naming(refused.value, fragment)
    assert str(base / broken) in str(refused.value)

    after = limits(tmp_path)
    if kind == "cpu":
        assert after["policy0"] == (1_190_400, 1_190_400)  # pinned before the failure, kept
        assert after["policy4"] == before["policy4"]  # never reached
        assert after["17000000.gv11b"] == before["17000000.gv11b"]
        # The refused domain keeps the limit that was not refused.
        defaults = {"scaling_min_freq": board.cpu_khz[0], "scaling_max_freq": board.cpu_khz[-1]}
        for name, value in defaults.items():
            if not broken.endswith(name):
                assert (base / "policy2" / name).read_text().strip() == str(value)
    else:
        assert {k: v for k, v in after.items() if k != board.gpu} == {
            k: v for k, v in before.items() if k != board.gpu
        }
        assert (board.gpu_dir / "max_freq").read_text().strip() == "1109250000"


def test_restore_gives_back_exactly_the_defaults(tmp_path: Path, board_name: str) -> None:
    build(board_name, tmp_path)
    # Defaults inside the tables, as a power mode's caps would leave them.
    for policy in (tmp_path / trees.CPUFREQ).iterdir():
        table = (policy / "scaling_available_frequencies").read_text().split()
        (policy / "scaling_min_freq").write_text(f"{table[1]}\n")
        (policy / "scaling_max_freq").write_text(f"{table[-3]}\n")
    defaults = limits(tmp_path)
    clocks = discover_clocks(tmp_path)
    clocks.pin("cpu", 1)
    clocks.pin("gpu", 10**9)
    assert limits(tmp_path) != defaults
    clocks.restore()
    assert limits(tmp_path) == defaults


def test_leaving_the_context_restores_even_after_an_error(tmp_path: Path) -> None:
    trees.orin(tmp_path)
    defaults = limits(tmp_path)

    def serve() -> None:
        with discover_clocks(tmp_path) as clocks:
            clocks.pin("cpu", 1_000_000)
            clocks.pin("gpu", 500_000)
            assert limits(tmp_path) != defaults
            raise RuntimeError("serving failed")

    with pytest.raises(RuntimeError, match="serving failed"):
        serve()
    assert limits(tmp_path) == defaults


def test_restore_tries_every_domain_and_names_each_failure(tmp_path: Path) -> None:
    board = trees.xavier_nx(tmp_path)
    defaults = limits(tmp_path)
    clocks = discover_clocks(tmp_path)
    clocks.pin("cpu", 1_190_400)
    clocks.pin("gpu", 599_250)
    broken = [
        tmp_path / trees.CPUFREQ / name / "scaling_min_freq" for name in ("policy0", "policy4")
    ]
    for path in broken:
        path.unlink()
        path.mkdir()

    with pytest.raises(ClockError) as failed:
        clocks.restore()
    one_line_naming(failed.value, "restore failed on 2 domain(s)")
    assert all(str(path) in str(failed.value) for path in broken)
    after = limits(tmp_path)
    assert after["policy2"] == defaults["policy2"]
    assert after[board.gpu] == defaults[board.gpu]


def test_a_node_without_clocks(tmp_path: Path) -> None:
    clocks = discover_clocks(tmp_path)
    assert (clocks.domains, clocks.skipped) == ((), ())
    assert clocks.table("cpu") == clocks.table("gpu") == ()
    assert clocks.pin("gpu", 500_000) == {}
    clocks.restore()


def test_a_policy_without_a_frequency_table_is_skipped_with_its_reason(tmp_path: Path) -> None:
    # intel_pstate: bounds only, no steps.
    policy = trees.cpufreq_policy(tmp_path, 0, (0, 1, 2, 3), (800_000, 3_000_000))
    (policy / "scaling_available_frequencies").unlink()
    clocks = discover_clocks(tmp_path)
    assert clocks.domains == ()
    (reason,) = clocks.skipped
    assert "\n" not in reason
    assert str(policy / "scaling_available_frequencies") in reason
    assert "missing" in reason


@pytest.mark.parametrize(
    ("file", "content", "fragment"),
    [
        ("scaling_available_frequencies", "fast slow\n", "expected integers, got 'fast slow'"),
        ("scaling_available_frequencies", "\n", "got an empty list"),
        ("scaling_available_frequencies", "115200 -76800\n", "expected integers >= 1"),
        ("scaling_available_frequencies", b"\xff\xfe\x00", "binary content"),
        ("scaling_min_freq", "1.5 GHz\n", "expected integers"),
        ("scaling_max_freq", "115200 192000\n", "expected one frequency, got 2"),
        ("related_cpus", "\n", "expected cpu numbers, got none"),
    ],
)
def test_garbage_in_a_policy_skips_that_policy_alone(
    tmp_path: Path, file: str, content: str | bytes, fragment: str
) -> None:
    trees.xavier_nx(tmp_path)
    path = tmp_path / trees.CPUFREQ / "policy2" / file
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    clocks = discover_clocks(tmp_path)
    assert [d.name for d in clocks.domains] == ["policy0", "policy4", "17000000.gv11b"]
    (reason,) = clocks.skipped
    assert "\n" not in reason
    assert str(path) in reason
    assert fragment in reason, reason


def test_a_gpu_frequency_that_is_not_whole_khz_is_skipped(tmp_path: Path) -> None:
    trees.devfreq_gpu(tmp_path, "gpu.0", "57000000.gpu", (76_800_000, 153_600_001))
    clocks = discover_clocks(tmp_path)
    assert clocks.domains == ()
    (reason,) = clocks.skipped
    assert "expected whole kHz, got 153600001 Hz" in reason


def test_garbage_found_when_pinning_is_a_clock_error(tmp_path: Path) -> None:
    trees.nano(tmp_path)
    clocks = discover_clocks(tmp_path)
    max_file = tmp_path / trees.CPUFREQ / "policy0/scaling_max_freq"
    max_file.write_text("max\n")
    with pytest.raises(ClockError) as garbage:
        clocks.pin("cpu", 1_000_000)
    one_line_naming(garbage.value, f"{max_file}: expected integers, got 'max'")
    assert (max_file.parent / "scaling_min_freq").read_text().strip() == "102000"  # untouched


@pytest.mark.parametrize(
    ("kind", "khz", "fragment"),
    [
        ("tpu", 1_000_000, "kind: expected 'cpu' or 'gpu', got 'tpu'"),
        ("cpu", 0, "khz: expected a positive whole number of kHz, got 0"),
        ("cpu", -5, "got -5"),
        ("cpu", True, "got True"),
        ("cpu", 1.5e6, "got 1500000.0"),
    ],
)
def test_pin_validates_its_arguments(tmp_path: Path, kind: str, khz: object, fragment: str) -> None:
    trees.nano(tmp_path)
    clocks = discover_clocks(tmp_path)
    before = limits(tmp_path)
    with pytest.raises(ClockError) as invalid:
        clocks.pin(kind, khz)  # type: ignore[arg-type]
    one_line_naming(invalid.value, fragment)
    assert limits(tmp_path) == before


def test_domains_and_their_names_are_validated(tmp_path: Path) -> None:
    def domain(name: str, table: tuple[int, ...]) -> ClockDomain:
        return ClockDomain("cpu", name, tmp_path / name, table, (0,), 100, 200)

    with pytest.raises(ClockError, match="frequencies_khz: expected positive kHz, strictly"):
        domain("policy0", (200, 100))
    with pytest.raises(ClockError, match="frequencies_khz"):
        domain("policy0", ())
    with pytest.raises(ClockError, match="expected unique names, got policy0 twice"):
        Clocks([domain("policy0", (100, 200)), domain("policy0", (100, 200))])
