#!/usr/bin/env python3
"""Files and functions a reader can hold: fails when a non-test Rust source file under
crates/*/src is longer than MAX_FILE lines or a function in one is longer than MAX_FN lines
(from its `fn` line to its closing brace). Test modules (`tests.rs`, `tests/`, `#[cfg(test)]`
blocks at the end of a file) are not counted. Usage: scripts/check-sizes.py [--list N]"""
import pathlib
import re
import sys

MAX_FILE = 500
MAX_FN = 80
ROOT = pathlib.Path(__file__).resolve().parent.parent
FN = re.compile(r"^(\s*)(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?fn\s+(\w+)")


def is_test_file(p: pathlib.Path) -> bool:
    return p.name == "tests.rs" or "tests" in p.parts[p.parts.index("src"):] or p.name == "fixtures.rs"


def code_lines(lines):
    """The lines before a trailing `#[cfg(test)]` module."""
    for i, line in enumerate(lines):
        if line.startswith("#[cfg(test)]") and i + 1 < len(lines) and lines[i + 1].startswith("mod "):
            if "{" in lines[i + 1]:
                return lines[:i]
    return lines


def functions(lines):
    for i, line in enumerate(lines):
        m = FN.match(line)
        if not m or line.rstrip().endswith(";"):
            continue
        indent = m.group(1)
        for j in range(i, len(lines)):
            if lines[j].startswith(indent + "}") or (j > i and lines[j].rstrip().endswith("}") and lines[j].startswith(indent + "}")):
                yield m.group(7), i + 1, j - i + 1
                break
            if j == i and line.rstrip().endswith("}"):
                yield m.group(7), i + 1, 1
                break


def main():
    listing = int(sys.argv[2]) if len(sys.argv) > 2 and sys.argv[1] == "--list" else 0
    problems, all_fns, all_files = [], [], []
    for p in sorted(ROOT.glob("crates/*/src/**/*.rs")):
        if is_test_file(p):
            continue
        lines = code_lines(p.read_text().split("\n"))
        rel = p.relative_to(ROOT)
        all_files.append((len(lines), str(rel)))
        if len(lines) > MAX_FILE:
            problems.append(f"{rel}: {len(lines)} lines (at most {MAX_FILE})")
        for name, at, n in functions(lines):
            all_fns.append((n, f"{rel}:{at} {name}"))
            if n > MAX_FN:
                problems.append(f"{rel}:{at}: fn {name} is {n} lines (at most {MAX_FN})")
    if listing:
        for n, where in sorted(all_files, reverse=True)[:listing]:
            print(f"{n:5} {where}")
        for n, where in sorted(all_fns, reverse=True)[:listing]:
            print(f"{n:5} fn {where}")
    for p in problems:
        print(p, file=sys.stderr)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
