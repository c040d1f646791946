"""Memory stays flat: the tap's peak RSS on a ~200 MB CSV (local, S3, gzip) is bounded.

The peak is the tap's own `VmHWM` (polled from /proc), compared with the same tap reading a tiny file: a reader that held the file, or an unbounded readahead, would add
hundreds of MB. No timing is asserted.
"""

from __future__ import annotations

import gzip
import json
import re
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

try:  # tests/ is a rootdir-relative directory without __init__.py (pytest "prepend" import mode)
    from test_tap_dativo_csv import TAP
except ImportError:  # pragma: no cover - when tests/ becomes a package
    from tests.test_tap_dativo_csv import TAP

pytest_plugins = ["servers"]

BIG_MB = 200
#: Absolute ceiling from the issue, and the most a 200 MB file may add over reading a tiny file.
MAX_PEAK_MB = 400
MAX_GROWTH_MB = 120
_EMITTED = re.compile(r"Emitted (\d+) records from (\S+)")
_HWM = re.compile(r"^VmHWM:\s+(\d+) kB", re.M)


def generate_csv(path: Path, megabytes: int) -> int:
    """Write a CSV of about `megabytes` MB fast (wide rows built once per 1,000); return its rows."""
    pad = "p" * 4000
    rows = 0
    target = megabytes * 1024 * 1024
    with path.open("w", encoding="utf-8") as handle:
        handle.write("id,name,score,pad,seen_at\n")
        written = 0
        while written < target:
            block = "".join(
                f"{i},name-{i},{i % 97}.5,{pad},2025-01-01T00:00:00Z\n" for i in range(rows, rows + 1000)
            )
            handle.write(block)
            written += len(block)
            rows += 1000
    return rows


def peak_rss(tmp_path: Path, config: dict[str, Any], name: str) -> tuple[float, dict[str, int]]:
    """Run the tap (stdout discarded) and return its peak RSS in MB and records emitted per file.

    The peak is the kernel's high-water mark of the tap's own address space (`VmHWM`), polled until it
    exits. `ru_maxrss` from `wait4` is not used: after fork + exec it still carries the parent's RSS,
    so a big pytest process would make every child look big.
    """
    config_file = tmp_path / f"{name}.json"
    config_file.write_text(json.dumps(config), encoding="utf-8")
    log = tmp_path / f"{name}.log"
    peak_kb = 0
    with log.open("w") as err:
        proc = subprocess.Popen([TAP, "--config", str(config_file)], stdout=subprocess.DEVNULL, stderr=err)
        status = Path(f"/proc/{proc.pid}/status")
        while proc.poll() is None:
            try:
                found = _HWM.search(status.read_text())
            except OSError:  # exited between poll() and the read
                break
            if found:
                peak_kb = max(peak_kb, int(found.group(1)))
            time.sleep(0.02)
        proc.wait()
    stderr = log.read_text()
    assert proc.returncode == 0, stderr[-3000:]
    assert peak_kb > 0, "no VmHWM sample: the tap exited before the first poll"
    emitted = {path: int(count) for count, path in _EMITTED.findall(stderr)}
    return peak_kb / 1024, emitted


def assert_flat(baseline: float, peak: float) -> None:
    """The big run stays under the ceiling and close to the tiny run."""
    assert peak < MAX_PEAK_MB, f"peak RSS {peak:.0f} MB"
    assert peak - baseline < MAX_GROWTH_MB, f"peak RSS {peak:.0f} MB vs {baseline:.0f} MB for a tiny file"


def test_memory_flat_local_file(tmp_path: Path) -> None:
    """A ~200 MB local file with the default chunk_size and inferred types."""
    tiny = tmp_path / "tiny.csv"
    generate_csv(tiny, 0)
    big = tmp_path / "big.csv"
    rows = generate_csv(big, BIG_MB)
    assert big.stat().st_size >= BIG_MB * 1024 * 1024

    def config(path: Path) -> dict[str, Any]:
        return {
            "files": [{"path": str(path), "object": "big"}],
            "infer_types": True,
            "add_metadata_columns": True,
        }

    baseline, _ = peak_rss(tmp_path, config(tiny), "tiny")
    peak, emitted = peak_rss(tmp_path, config(big), "big")
    assert emitted == {str(big): rows}
    assert_flat(baseline, peak)


def test_memory_flat_s3_and_gzip(tmp_path: Path, seaweedfs: Any) -> None:
    """A ~200 MB S3 object streamed, plus a gzipped one decompressing to ~200 MB, in one run."""
    seaweedfs.start()
    bucket = f"mem-{uuid.uuid4().hex[:12]}"
    client = seaweedfs.s3_client()
    client.create_bucket(Bucket=bucket)
    big = tmp_path / "big.csv"
    rows = generate_csv(big, BIG_MB)
    client.upload_file(str(big), bucket, "big/plain.csv")
    packed = tmp_path / "big.csv.gz"
    with big.open("rb") as src, gzip.open(packed, "wb", compresslevel=1) as dst:
        while chunk := src.read(8 * 1024 * 1024):
            dst.write(chunk)
    client.upload_file(str(packed), bucket, "big/packed.csv.gz")
    big.unlink()
    packed.unlink()
    client.put_object(
        Bucket=bucket, Key="tiny/t.csv", Body=b"id,name,score,pad,seen_at\n1,a,1.5,p,2025-01-01T00:00:00Z\n"
    )
    s3 = seaweedfs.s3_connection()

    def config(prefix: str) -> dict[str, Any]:
        return {"files": [{"path": f"s3://{bucket}/{prefix}", "object": "big"}], "connection": {"s3": s3}}

    try:
        baseline, _ = peak_rss(tmp_path, config("tiny/"), "tiny")
        peak, emitted = peak_rss(tmp_path, config("big/*"), "big")
    finally:
        client.delete_objects(
            Bucket=bucket, Delete={"Objects": [{"Key": "big/plain.csv"}, {"Key": "big/packed.csv.gz"}]}
        )
    assert emitted == {f"s3://{bucket}/big/packed.csv.gz": rows, f"s3://{bucket}/big/plain.csv": rows}
    assert_flat(baseline, peak)
