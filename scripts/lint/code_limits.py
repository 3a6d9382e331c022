#!/usr/bin/env python3
"""Checks the house limits of dockless's C++ sources.

- No source file over MAX_FILE lines.
- No function body over MAX_FUNCTION lines. A "function" is a brace block
  opened at namespace or class level by a line that ends a parameter list;
  lambdas and nested blocks count towards the function they sit in. Tables of
  option declarations are exempt when marked `// code-limits: table`.
- Dependencies point one way (src/cli -> src/build -> src/cache|src/sandbox
  -> src/transfer -> layers -> oci -> base): an #include of a folder that is
  not allowed for the including file's folder is an error.

Prints one line per breach and exits 1 if there is any. `--only includes`
checks the one-way dependencies alone (the build runs that on every build);
`--stamp FILE` touches FILE when everything passes.
"""
import argparse
import os
import re
import sys

MAX_FILE = 800
MAX_FUNCTION = 80

# folder -> folders whose headers it may include (besides its own).
ALLOWED = {
    "base": set(),
    "oci": {"base"},
    "layers": {"oci", "base"},
    "src/transfer": {"layers", "oci", "base"},
    "src/sandbox": {"layers", "oci", "base"},
    "src/cache": {"src/transfer", "layers", "oci", "base"},
    "src/build": {"src/cache", "src/sandbox", "src/transfer", "layers", "oci", "base"},
    "src/cli": {"src/build", "src/cache", "src/sandbox", "src/transfer", "layers", "oci", "base"},
}
FOLDERS = sorted(ALLOWED, key=len, reverse=True)
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')
HEAD = re.compile(r'\)\s*(const|noexcept|override|final|->\s*[\w:<>,\s*&]+|\s)*\s*(\{)?\s*$')
NOT_FUNCTION = re.compile(r'^\s*(if|for|while|switch|catch|do|else|namespace|class|struct|enum|union)\b|=\s*\[|\]\s*\(')


def folder_of(path):
    for f in FOLDERS:
        if path.startswith(f + "/"):
            return f
    return None


def strip_code(text):
    """Blanks out comments, strings and char literals, keeping line breaks."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append("\n" * text.count("\n", i, j))
            i = j
        elif text.startswith('R"', i):
            m = re.match(r'R"([^(]*)\(', text[i:])
            end = ")" + m.group(1) + '"' if m else '"'
            j = text.find(end, i + 2)
            j = n if j < 0 else j + len(end)
            out.append('""' + "\n" * text.count("\n", i, j))
            i = j
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            out.append(c + c)
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def long_functions(path, text):
    raw_lines = text.split("\n")
    lines = strip_code(text).split("\n")
    depth = 0
    scopes = []  # (kind, start line) for each open brace
    found = []
    for no, line in enumerate(lines, 1):
        for ci, ch in enumerate(line):
            if ch == "{":
                inside_function = any(k == "fn" for k, _ in scopes)
                before = line[:ci]
                head = before if before.strip() else (lines[no - 2] if no >= 2 else "")
                is_fn = (not inside_function and HEAD.search(head + "{")
                         and not NOT_FUNCTION.search(head))
                scopes.append(("fn" if is_fn else "block", no))
            elif ch == "}" and scopes:
                kind, start = scopes.pop()
                if kind == "fn":
                    length = no - start + 1
                    marked = "code-limits: table" in raw_lines[start - 1] or (
                        start >= 2 and "code-limits: table" in raw_lines[start - 2])
                    if length > MAX_FUNCTION and not marked:
                        found.append((start, length))
    return found


def main(root, only):
    breaches = []
    for top in ("base", "oci", "layers", "src", "tests"):
        for dirpath, _, names in os.walk(os.path.join(root, top)):
            for name in sorted(names):
                if not name.endswith((".cc", ".h")):
                    continue
                path = os.path.join(dirpath, name)
                rel = os.path.relpath(path, root)
                text = open(path, encoding="utf-8").read()
                if rel.startswith("tests/"):
                    continue
                count = text.count("\n")
                if only != "includes" and count > MAX_FILE:
                    breaches.append(f"{rel}: {count} lines (limit {MAX_FILE})")
                for start, length in long_functions(rel, text) if only != "includes" else []:
                    breaches.append(f"{rel}:{start}: function of {length} lines (limit {MAX_FUNCTION})")
                here = folder_of(rel)
                for no, line in enumerate(text.split("\n"), 1):
                    m = INCLUDE.match(line)
                    if not m or here is None:
                        continue
                    there = folder_of(m.group(1))
                    if there is None:
                        breaches.append(f"{rel}:{no}: include \"{m.group(1)}\" is not under a known folder")
                    elif there != here and there not in ALLOWED[here]:
                        breaches.append(f"{rel}:{no}: {here} may not include {there} (\"{m.group(1)}\")")
    for b in breaches:
        print(b)
    return 1 if breaches else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="dockless's code limits")
    parser.add_argument("root", nargs="?", default=os.path.join(os.path.dirname(__file__), "..", ".."))
    parser.add_argument("--only", choices=["includes"])
    parser.add_argument("--stamp")
    args = parser.parse_args()
    status = main(args.root, args.only)
    if status == 0 and args.stamp:
        open(args.stamp, "w").close()
    sys.exit(status)
