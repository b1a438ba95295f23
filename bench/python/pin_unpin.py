#!/usr/bin/env python3
"""Python pin+unpin of a resident buffer, the way a Python program writes it.

Prints one JSON line per form, in ns per pin+unpin (best of --repeat rounds of
--number iterations each), beside two floors measured in the same process: an
empty Python function call, and ``memoryview(bytearray)`` creation and
release (what any zero-copy view costs). Run with the interpreter that has
the Debian packages::

    PYTHONPATH=build/release/python /usr/bin/python3 bench/python/pin_unpin.py
"""

from __future__ import annotations

import argparse
import json
import tempfile
import timeit

import spillway


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--number", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    with spillway.Pool(host_bytes="64M", disk_dir=tempfile.gettempdir()) as pool:
        buf = pool.allocate(4096, label="pin_unpin")
        raw = bytearray(4096)

        def with_block() -> None:
            with buf.pin("host", "r"):
                pass

        def pin_release() -> None:
            buf.pin("host", "r").release()

        def with_view() -> None:
            with buf.pin("host", "r") as pin:
                memoryview(pin).release()

        def empty() -> None:
            pass

        def bytearray_view() -> None:
            memoryview(raw).release()

        for name, fn in [("with pin", with_block), ("pin().release()", pin_release),
                         ("with pin + memoryview", with_view), ("floor: empty call", empty),
                         ("floor: memoryview(bytearray)", bytearray_view)]:
            best = min(timeit.repeat(fn, number=args.number, repeat=args.repeat)) / args.number
            print(json.dumps({"bench": "python_pin_unpin", "form": name, "ns": round(best * 1e9, 1),
                              "number": args.number, "repeat": args.repeat}))


if __name__ == "__main__":
    main()
