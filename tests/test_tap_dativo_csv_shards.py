"""`shard_count` / `shard_index`: N workers read disjoint sets of files that together cover all of
them, the split is stable when files arrive, each worker's state covers only its files, and bad
settings exit 2 naming the setting."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from tap_pipe import Pipeline
from test_tap_dativo_csv import bookmarks, run_tap, write_people

from tap_dativo_csv.shards import shard_of

COUNT = 3


def files(root: Path, first: int, count: int) -> list[Path]:
    """`count` files of 4 people each, file k holding ids 100k .. 100k+3."""
    return [write_people(root / f"part-{k:03d}.csv", 100 * k, 4) for k in range(first, first + count)]


def covering_dir(parent: Path, count: int) -> Path:
    """A data directory whose first `count` files fall in every shard (a file's shard hashes its
    whole path, and the test's directory differs per run: 12 files leave a shard empty in ~2%)."""
    for n in itertools.count():
        root = parent / f"in{n}"
        if {shard_of(str(root / f"part-{k:03d}.csv"), COUNT) for k in range(count)} == set(range(COUNT)):
            return root
    raise AssertionError("unreachable")


def shard_config(root: Path, index: int, **extra: Any) -> dict[str, Any]:
    return {
        "files": [{"path": str(root / "*.csv"), "object": "people"}],
        "shard_count": COUNT,
        "shard_index": index,
        **extra,
    }


def test_shards_are_disjoint_covering_and_stable(tmp_path: Path) -> None:
    data = covering_dir(tmp_path, 12)
    old = files(data, 0, 12)
    runs = [run_tap(tmp_path, shard_config(data, i)) for i in range(COUNT)]
    read = [set(bookmarks(run.final_state, "people")) for run in runs]
    assert set().union(*read) == {str(p) for p in old}  # covering
    assert sum(len(r) for r in read) == len(old)  # disjoint
    for index, paths in enumerate(read):
        assert paths == {str(p) for p in old if shard_of(str(p), COUNT) == index}
        assert paths, "12 files should give every one of 3 shards some"
    ids = sorted(int(r["id"]) for run in runs for r in run.records())
    assert ids == sorted(100 * k + j for k in range(12) for j in range(4))

    new = files(data, 12, 9)  # files arrive: old files stay in their shard, new ones are read once
    again = [run_tap(tmp_path, shard_config(data, i), runs[i].final_state) for i in range(COUNT)]
    for index, run in enumerate(again):
        assert set(bookmarks(run.final_state, "people")) == {
            str(p) for p in old + new if shard_of(str(p), COUNT) == index
        }
        assert {r["id"] for r in run.records()} <= {str(100 * k + j) for k in range(12, 21) for j in range(4)}
    assert sorted(int(r["id"]) for run in again for r in run.records()) == sorted(
        100 * k + j for k in range(12, 21) for j in range(4)
    )

    # A state holding every file's bookmark (e.g. from an unsharded run): a worker keeps only its own.
    whole = run_tap(tmp_path, {"files": [{"path": str(data / "*.csv"), "object": "people"}]})
    assert len(bookmarks(whole.final_state, "people")) == 21
    one = run_tap(tmp_path, shard_config(data, 1), whole.final_state)
    assert one.records() == []
    assert set(bookmarks(one.final_state, "people")) == {
        str(p) for p in old + new if shard_of(str(p), COUNT) == 1
    }


def test_shard_settings_are_validated(tmp_path: Path) -> None:
    data = tmp_path / "in"
    files(data, 0, 2)
    for extra, setting in (
        ({"shard_index": 3}, "shard_index"),
        ({"shard_index": -1}, "shard_index"),
        ({"shard_count": 0, "shard_index": 0}, "shard_count"),
    ):
        for args in ((), ("--discover",)):
            config = {**shard_config(data, 0), **extra}
            run = run_tap(tmp_path, config, None, *args, check=False)
            assert run.returncode == 2, (extra, run.stderr[-2000:])
            assert f"{setting} must be" in run.stderr
            assert "Traceback" not in run.stderr


def test_sharded_workers_land_every_row_once(tmp_path: Path) -> None:
    """Three workers (own state each, one catalog) land every row of every file exactly once,
    also after new files arrive; a shard with no file of a stream emits nothing for it."""
    data = tmp_path / "in"
    files(data, 0, 7)
    lake = tmp_path / "lake"
    workers = [Pipeline(lake, target={"load_method": "append-only"}) for _ in range(COUNT)]
    config = {"infer_types": True}
    for index, worker in enumerate(workers):
        worker.run(shard_config(data, index, **config))
    files(data, 7, 5)
    for index, worker in enumerate(workers):
        worker.run(shard_config(data, index, **config))
    landed = workers[0].landed("people", ("id", "name"))
    assert sorted(landed.elements()) == [
        (100 * k + j, f"name-{100 * k + j}") for k in range(12) for j in range(4)
    ]

    lonely = tmp_path / "one"
    only = write_people(lonely / "only.csv", 1, 2)
    empty = 1 - shard_of(str(only), 2)
    run = run_tap(tmp_path, {**shard_config(lonely, empty), "shard_count": 2})
    assert run.records() == [] and "no file to read (in this shard)" in run.stderr
