#!/usr/bin/env python3
"""Checks that ctest sees the costs of tests/schedule/costs.cmake (test schedule.long_tests_start_first).

Usage: check_costs.py CTEST COSTS_CMAKE BUILD_DIR [--all]

Lists the build's tests as ctest does (ctest --show-only=json-v1) and fails when a test named in
costs.cmake is registered without that COST (costs.cmake was read before the test existed, or not
at all), or, with --all (a build with every test), when a name in costs.cmake is no test at all
(a renamed or removed test: its line is stale).
"""
import json
import re
import subprocess
import sys


def listed_costs(path):
    text = open(path, encoding="utf-8").read()
    entry = re.compile(r"set_tests_properties\(\s*(\[=\[(.*?)\]=\]|(\S+))\s+PROPERTIES\s+COST\s+([0-9.]+)\s*\)", re.S)
    return {(m.group(2) if m.group(2) is not None else m.group(3)): float(m.group(4)) for m in entry.finditer(text)}


def main():
    ctest, costs_path, build_dir = sys.argv[1], sys.argv[2], sys.argv[3]
    require_all = "--all" in sys.argv[4:]
    costs = listed_costs(costs_path)
    if not costs:
        print(f"{costs_path}: no set_tests_properties(... PROPERTIES COST n) lines found")
        return 1
    out = subprocess.run([ctest, "--show-only=json-v1"], cwd=build_dir, check=True,
                         capture_output=True, text=True).stdout
    registered = {}
    for t in json.loads(out)["tests"]:
        props = {p["name"]: p["value"] for p in t.get("properties", [])}
        registered[t["name"]] = props.get("COST")
    failures = []
    for name, cost in costs.items():
        if name not in registered:
            if require_all:
                failures.append(f"{name}: in costs.cmake but no such test in {build_dir}")
        elif registered[name] is None or float(registered[name]) != cost:
            failures.append(f"{name}: ctest has COST {registered[name]}, costs.cmake says {cost}")
    seen = sum(1 for name in costs if name in registered)
    for f in failures:
        print(f)
    print(f"{seen} of the {len(costs)} tests in costs.cmake are in this build; {len(failures)} problem(s)")
    return 1 if failures or seen == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
