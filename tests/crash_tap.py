"""A deterministic Singer tap for the crash tests: ids 1..N after the `pos` in --state, a STATE
every `every` records and at the end. Same input state, same output: it replays deterministically."""

from __future__ import annotations

import argparse
import json
import sys


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=70)
    parser.add_argument("--every", type=int, default=7)
    parser.add_argument("--state")
    args = parser.parse_args()
    pos = 0
    if args.state:
        with open(args.state) as f:
            pos = json.load(f).get("bookmarks", {}).get("items", {}).get("pos", 0)
    out = sys.stdout
    schema = {"type": "object", "properties": {"id": {"type": "integer"}, "v": {"type": ["string", "null"]}}}
    out.write(
        json.dumps({"type": "SCHEMA", "stream": "items", "schema": schema, "key_properties": ["id"]}) + "\n"
    )
    for i in range(pos + 1, args.records + 1):
        out.write(
            json.dumps({"type": "RECORD", "stream": "items", "record": {"id": i, "v": f"value-{i}"}}) + "\n"
        )
        if i % args.every == 0:
            out.write(json.dumps({"type": "STATE", "value": {"bookmarks": {"items": {"pos": i}}}}) + "\n")
    out.write(json.dumps({"type": "STATE", "value": {"bookmarks": {"items": {"pos": args.records}}}}) + "\n")


if __name__ == "__main__":
    main()
