#!/usr/bin/env python3
"""Instructions per guest function from a callgrind run of the harness.

Usage: bench/guest_profile.py CALLGRIND_OUT PERF_MAP [TOP]

CALLGRIND_OUT is the main thread's file of `valgrind --tool=callgrind --separate-threads=yes`
over `component_pass` (see bench/README.md, "Profiling the component"); PERF_MAP is the
`/tmp/perf-PID.map` wasmtime wrote for that run (`GCR_USAGE_PERFMAP=1`). callgrind cannot name
JIT code (it shows `???:0xADDR [???]`); the perf map holds each compiled function's address
range and name. Prints the guest's total and its TOP (default 30) functions.
"""

import bisect
import re
import subprocess
import sys


def main() -> None:
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    out_file, map_file = sys.argv[1], sys.argv[2]
    top = int(sys.argv[3]) if len(sys.argv) > 3 else 30
    ranges = []
    with open(map_file) as f:
        for line in f:
            start, size, name = line.rstrip("\n").split(" ", 2)
            ranges.append((int(start, 16), int(size, 16), name))
    ranges.sort()
    starts = [r[0] for r in ranges]
    listing = subprocess.run(
        ["callgrind_annotate", "--inclusive=no", "--threshold=100", out_file],
        capture_output=True, text=True, check=True,
    ).stdout
    by_function: dict[str, int] = {}
    for line in listing.splitlines():
        m = re.match(r"\s*([\d,]+) \(\s*[\d.]+%\)\s+\?\?\?:0x([0-9a-f]+)\S* \[\?\?\?\]", line)
        if not m:
            continue
        count, address = int(m.group(1).replace(",", "")), int(m.group(2), 16)
        i = bisect.bisect_right(starts, address) - 1
        name = "?"
        if i >= 0 and address < ranges[i][0] + ranges[i][1]:
            name = re.sub(r"::h[0-9a-f]{16}$", "", ranges[i][2])
        by_function[name] = by_function.get(name, 0) + count
    total = sum(by_function.values())
    print(f"guest total {total:,} instructions")
    for name, count in sorted(by_function.items(), key=lambda kv: -kv[1])[:top]:
        print(f"{count:>14,} {100 * count / max(total, 1):5.1f}%  {name[:140]}")


if __name__ == "__main__":
    main()
