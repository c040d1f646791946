"""A deterministic Singer tap for the crash tests: ids 1..N after the `pos` in --state, a STATE
every `every` records and at the end. Same input state, same output: it replays deterministically.
With `--streams 2`, odd ids go to stream `items` and even ids to `others` (one position for both)."""

from __future__ import annotations

import argparse
import json
import sys


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=70)
    parser.add_argument("--every", type=int, default=7)
    parser.add_argument("--state")
    parser.add_argument("--streams", type=int, default=1, choices=(1, 2))
    args = parser.parse_args()
    pos = 0
    if args.state:
        with open(args.state) as f:
            pos = json.load(f).get("bookmarks", {}).get("items", {}).get("pos", 0)
    out = sys.stdout
    schema = {"type": "object", "properties": {"id": {"type": "integer"}, "v": {"type": ["string", "null"]}}}
    streams = ["items", "others"][: args.streams]
    for stream in streams:
        message = {"type": "SCHEMA", "stream": stream, "schema": schema, "key_properties": ["id"]}
        out.write(json.dumps(message) + "\n")
    for i in range(pos + 1, args.records + 1):
        stream = streams[(i + 1) % len(streams)]
        out.write(
            json.dumps({"type": "RECORD", "stream": stream, "record": {"id": i, "v": f"value-{i}"}}) + "\n"
        )
        if i % args.every == 0:
            out.write(json.dumps({"type": "STATE", "value": {"bookmarks": {"items": {"pos": i}}}}) + "\n")
    out.write(json.dumps({"type": "STATE", "value": {"bookmarks": {"items": {"pos": args.records}}}}) + "\n")


if __name__ == "__main__":
    main()
