"""JSON arrays and NDJSON files in tap-dativo-csv (typed by the contract like CSV), and
`on_file_error`: an unreadable file stops the run (exit 2) or is reported while the others land."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from tap_pipe import Pipeline
from test_tap_dativo_csv import CONTRACT_YAML, bookmarks, run_tap, write_people

from tap_dativo_csv import jsonfiles
from tap_dativo_csv.fileread import FileRead
from tap_dativo_csv.reader import CSVOptions, FileLayout
from target_dativo_iceberg.errors import CSVReadError


def person(i: int) -> dict[str, Any]:
    """A person as a JSON source writes it: JSON types, a nested object."""
    return {
        "id": i,
        "name": f"name-{i}",
        "score": i + 0.5 if i % 3 else None,
        "active": bool(i % 2),
        "born": f"1960-01-{1 + i % 28:02d}",
        "seen_at": f"2025-01-{1 + i % 28:02d}T10:00:00Z",
        "tags": {"team": "a", "n": [i]},
    }


def test_json_and_ndjson_typed_by_contract(tmp_path: Path) -> None:
    contract = tmp_path / "person.odcs.yaml"
    contract.write_text(CONTRACT_YAML, encoding="utf-8")
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.json").write_text(json.dumps([person(i) for i in range(1, 4)], indent=2))
    (src / "b.ndjson").write_text("\n".join(json.dumps(person(i)) for i in range(4, 7)) + "\n\n")
    (src / "c.jsonl").write_text(json.dumps({**person(7), "late": "x"}) + "\n")
    (src / "notes.txt").write_text("not read: a directory picks up data files only\n")
    config = {
        "files": [{"path": str(src), "object": "person", "asset": str(contract)}],
        "add_metadata_columns": True,
    }
    run = run_tap(tmp_path, config)
    records = run.records()
    assert [r["id"] for r in records] == list(range(1, 8))
    first = records[0]
    assert first["score"] == 1.5 and first["active"] is True and first["born"] == "1960-01-02"
    assert first["seen_at"] == "2025-01-02T10:00:00.000000Z"
    assert json.loads(first["tags"]) == {"team": "a", "n": [1]}  # not in the contract: JSON text
    assert records[2]["score"] is None
    assert [r["_sdc_source_lineno"] for r in records] == [1, 2, 3, 1, 2, 3, 1]
    assert records[6]["late"] == "x"
    props = run.schema("person")["schema"]["properties"]
    assert props["id"]["type"] == "integer" and props["tags"]["type"] == ["string", "null"]
    assert set(bookmarks(run.final_state, "person")) == {
        str(src / n) for n in ("a.json", "b.ndjson", "c.jsonl")
    }

    # A key first seen after the sampled records is not a column: dropped, and the drop is logged.
    (src / "c.jsonl").write_text(
        "".join(json.dumps({"id": i, "name": "n", "seen_at": "2025-01-01"}) + "\n" for i in range(8, 11))
    )
    with (src / "c.jsonl").open("a") as handle:
        handle.write(json.dumps({"id": 11, "name": "n", "seen_at": "2025-01-01", "surprise": 1}) + "\n")
    narrow = {
        "files": [{"path": str(src / "c.jsonl"), "object": "c"}],
        "infer_sample_rows": 2,
        "infer_types": True,
    }
    run = run_tap(tmp_path, narrow)
    assert [r["id"] for r in run.records()] == [8, 9, 10, 11]
    assert "surprise" not in run.records()[-1]
    assert "that are not columns of stream 'c' were dropped: surprise" in run.stderr


def test_invalid_json_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.ndjson"
    bad.write_text('{"id": 1}\n{"id": 2\n[3]\n{"id": 4}\n')
    config: dict[str, Any] = {"files": [{"path": str(bad), "object": "b"}]}
    run = run_tap(tmp_path, config, check=False)
    assert run.returncode == 2 and f"{bad}: invalid JSON at line 2" in run.stderr
    assert "Traceback" not in run.stderr
    run = run_tap(tmp_path, {**config, "on_bad_rows": "skip"})
    assert [r["id"] for r in run.records()] == ["1", "4"]
    assert "Skipped 2 malformed row(s)" in run.stderr and "line 3: expected a JSON object" in run.stderr

    array = tmp_path / "cut.json"
    array.write_text('[{"id": 1}, {"id": 2}, {"id": ')
    run = run_tap(tmp_path, {"files": [{"path": str(array), "object": "c"}]}, check=False)
    assert run.returncode == 2 and f"{array}: invalid JSON at element 3" in run.stderr


def read_all(path: Path, **options: Any) -> tuple[list[tuple], list[int]]:
    """Rows (tuples of text) and numbers of a JSON file read in-process."""
    read = FileRead(
        str(path),
        lambda: pa.input_stream(str(path)),
        CSVOptions(**options),
        FileLayout((), ()),
        {},
        format="json",
    )
    rows, numbers = [], []
    for batch, nums in jsonfiles.read_json(read):
        rows += [tuple(r.values()) for r in batch.to_pylist()]
        numbers += list(nums)
    return rows, numbers


def test_json_array_streams_across_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Elements cut anywhere by the read blocks (7 characters here) parse the same; memory holds one
    element, and an element over the size limit fails naming the element."""
    values = [{"id": i, "text": f'a "quoted" ] , {{ é {i}', "n": i * 10} for i in range(300)]
    data = tmp_path / "big.json"
    data.write_text(json.dumps(values, ensure_ascii=False), encoding="utf-8")
    monkeypatch.setattr(jsonfiles, "_BLOCK", 7)
    rows, numbers = read_all(data, chunk_size=64)
    assert rows == [(str(v["id"]), v["text"], str(v["n"])) for v in values]
    assert numbers == list(range(1, 301))

    concatenated = tmp_path / "objects.json"
    concatenated.write_text('{"id": 1}\n{"id": 2}  {"id": 3}')
    assert read_all(concatenated)[0] == [("1",), ("2",), ("3",)]

    monkeypatch.setattr(jsonfiles, "MAX_VALUE", 40)
    (tmp_path / "wide.json").write_text(json.dumps([{"id": 1}, {"id": 2, "pad": "x" * 100}]))
    with pytest.raises(CSVReadError, match=r"wide.json: invalid JSON at element 2"):
        read_all(tmp_path / "wide.json")


def test_on_file_error_skip_lands_the_other_files(tmp_path: Path) -> None:
    """`skip`: a file unreadable at discovery (broken JSON) and one that fails while read (a
    malformed CSV row) are reported and not bookmarked; the others land. `fail`: exit 2 naming it."""
    src = tmp_path / "src"
    write_people(src / "a.csv", 1, 3)
    (src / "b.json").write_text('[{"id": 1')
    broken = src / "c.csv"
    broken.write_text("id,name,score,active,born,seen_at\n" + "9,x,,,,2025-01-01T00:00:00Z\n" * 3 + "oops\n")
    write_people(src / "d.csv", 4, 2)
    tap = {"files": [{"path": str(src / "*"), "object": "people"}]}

    failed = run_tap(tmp_path, tap, check=False)
    assert failed.returncode == 2 and f"{src / 'b.json'}: invalid JSON at element 1" in failed.stderr
    assert "Traceback" not in failed.stderr
    (src / "b.json").rename(src / "b.json.bad")
    failed = run_tap(tmp_path, tap, check=False)
    assert failed.returncode == 2 and f"{broken}: malformed CSV at line 5" in failed.stderr
    (src / "b.json.bad").rename(src / "b.json")

    pipe = Pipeline(tmp_path / "lake", target={"load_method": "append-only"})
    run = pipe.run({**tap, "on_file_error": "skip"})
    skipped = [line for line in run.tap_stderr.splitlines() if "file_skipped" in line]
    assert len(skipped) == 2
    assert str(src / "b.json") in skipped[0] and "invalid JSON" in skipped[0]
    assert str(broken) in skipped[1] and "malformed CSV at line 5" in skipped[1]
    marked = {path for path, modified in bookmarks(pipe.state, "people").items() if modified}
    assert marked == {str(src / "a.csv"), str(src / "d.csv")}  # the others are read again next run
    landed = pipe.landed("people", ("id", "name"))
    # Rows of c.csv parsed before its bad row would have been sent; here its one read block fails whole.
    assert "0 row(s) of it were sent before the error" in skipped[1]
    assert sorted(landed.elements()) == [(str(i), f"name-{i}") for i in range(1, 6)]
