#!/usr/bin/env python3
"""Instructions per guest function from a callgrind run of the harness.

Usage: bench/guest_profile.py CALLGRIND_OUT PERF_MAP [TOP]
       bench/guest_profile.py CALLGRIND_OUT PERF_MAP --annotate NAME CWASM [MIN]

CALLGRIND_OUT is the main thread's file of `valgrind --tool=callgrind --separate-threads=yes`
over `component_pass` (see bench/README.md, "Profiling the component"); PERF_MAP is the
`/tmp/perf-PID.map` wasmtime wrote for that run (`GCR_USAGE_PERFMAP=1`). callgrind cannot name
JIT code (it shows `???:0xADDR [???]`); the perf map holds each compiled function's address
range and name. Prints the guest's total and its TOP (default 30) functions.

With --annotate (the run needs `--dump-instr=yes`): the first function whose name contains NAME,
disassembled from CWASM (the harness's cached compilation of the same component, an ELF file:
target/host-test-cache/*.cwasm, the one whose symbols name the function) with the instructions
each address executed; only instructions executed at least MIN times (default 1) are printed.
"""

import bisect
import re
import subprocess
import sys


def self_costs(out_file: str, start: int, size: int) -> dict[int, int]:
    """Instructions executed per address in [start, start + size), from the raw callgrind file
    (`positions: instr line`, addresses absolute or relative to the line before; a `calls=`
    line's next cost line is the call's inclusive cost and is not the caller's own)."""
    costs: dict[int, int] = {}
    address, after_call = 0, False
    with open(out_file) as f:
        for line in f:
            if line.startswith("calls="):
                after_call = True
                continue
            if not (line[0].isdigit() or line[0] in "+-*"):
                continue
            parts = line.split()
            a = parts[0]
            if a.startswith("0x"):
                address = int(a, 16)
            elif a[0] in "+-":
                step = int(a[1:], 0)
                address += step if a[0] == "+" else -step
            elif a != "*":
                address = int(a, 0)
            if after_call:
                after_call = False
            elif len(parts) > 2 and start <= address < start + size:
                costs[address - start] = costs.get(address - start, 0) + int(parts[2])
    return costs


def annotate(out_file: str, ranges: list, name: str, cwasm: str, minimum: int) -> None:
    # A perf map may name a function twice (with and without the `wasm[N]::function[M]::` prefix
    # the .cwasm's symbols carry): the prefixed entry is the one that can be looked up.
    found = next((r for r in ranges if name in r[2] and r[2].startswith("wasm[")), None)
    if found is None:
        sys.exit(f"no function named like {name!r} in the perf map")
    start, size, full = found
    wasm_function = re.match(r"(wasm\[\d+\]::function\[\d+\])", full)
    symbols = subprocess.run(["objdump", "-t", cwasm], capture_output=True, text=True, check=True).stdout
    symbol = next((l.split() for l in symbols.splitlines() if wasm_function and wasm_function.group(1) + "::" in l), None)
    if symbol is None:
        sys.exit(f"{cwasm}: no symbol for {full} (is it the same component's .cwasm?)")
    base, length = int(symbol[0], 16), int(symbol[4], 16)
    costs = self_costs(out_file, start, size)
    listing = subprocess.run(
        ["objdump", "-d", "--no-show-raw-insn", f"--start-address={base:#x}", f"--stop-address={base + length:#x}", cwasm],
        capture_output=True, text=True, check=True,
    ).stdout
    print(f"{full}: {sum(costs.values()):,} instructions")
    for line in listing.splitlines():
        m = re.match(r"\s*([0-9a-f]+):\s+(.*)", line)
        if not m:
            continue
        offset = int(m.group(1), 16) - base
        if costs.get(offset, 0) >= minimum:
            print(f"{costs.get(offset, 0):>12,} {offset:6x}  {m.group(2)[:100]}")


def main() -> None:
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    out_file, map_file = sys.argv[1], sys.argv[2]
    annotating = len(sys.argv) > 3 and sys.argv[3] == "--annotate"
    top = int(sys.argv[3]) if len(sys.argv) > 3 and not annotating else 30
    ranges = []
    with open(map_file) as f:
        for line in f:
            start, size, name = line.rstrip("\n").split(" ", 2)
            ranges.append((int(start, 16), int(size, 16), name))
    ranges.sort()
    if annotating:
        if len(sys.argv) < 6:
            sys.exit(__doc__)
        minimum = int(sys.argv[6]) if len(sys.argv) > 6 else 1
        return annotate(out_file, ranges, sys.argv[4], sys.argv[5], minimum)
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
