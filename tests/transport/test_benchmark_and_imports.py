"""The transport benchmark is a script users run, and the wire format works without nats-py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_transport_benchmark_prints_a_table_and_json() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks/transport.py"), "--sizes", "10240", "2097152",
         "--repeats", "1", "--warmup", "0", "--json"],
        capture_output=True, text=True, check=True, timeout=300,
    )  # fmt: skip
    table, _, payload = done.stdout.partition("[")
    assert "raw nats-py" in table
    rows = json.loads("[" + payload)
    assert {(r["case"], r["server"], r["encoding"]) for r in rows if r["size_bytes"] == 10240} == {
        ("raw nats-py", "8MiB", "-"),
        ("nats-py+hdrs", "8MiB", "-"),
        *{("messenger", s, e) for s in ("8MiB", "1MiB") for e in ("raw", "fp16", "int8")},
    }
    assert all(r["median_ms"] > 0 for r in rows)
    chunked = {(r["server"], r["encoding"]) for r in rows if r["chunked"]}
    assert chunked == {("1MiB", "raw"), ("1MiB", "fp16")}  # 2 MiB float32: 2, 1, 0.5 MiB


def test_the_wire_format_does_not_import_nats() -> None:
    code = (
        "import sys, numpy as np; import inferedge.transport as t; "
        "h, p = t.encode(np.ones(3, np.float32), request_id='r', plan_hash='0123abcd'); "
        "t.decode(h, bytes(p)); "
        "assert not [m for m in sys.modules if m == 'nats' or m.startswith('nats.')]"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
