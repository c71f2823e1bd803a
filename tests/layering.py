#!/usr/bin/env python3
"""layering.py SOURCE_DIR — fails when an #include breaks the layers (STYLE §1):

- common/ includes a program's folder (policyd/, milter/, admin/, web/);
- a layer of common/ includes a layer above it. The layers, each its own CMake target, are
  the core (common/*: configuration, addresses, logging, key schemes, metrics), dns
  (common/dns/) and redis (common/redis/) over the core, mail (common/mail/) over dns and the
  core, and the daemon's metrics endpoint (common/metrics_http.*) over the core; dns and redis
  do not include each other, so the sub-folders form no cycle;
- a file of the core includes a third-party I/O library (Asio or any of Boost, hiredis,
  libmilter, c-ares, libspf2, libopendkim, libpsl): the core target has none of them on its
  include path, and this says which line is wrong before the compiler does;
- a program's folder includes another program's folder (programs share code through common/);
- a header of common/ brings in Asio, hiredis or libmilter, directly or through the headers it
  includes, unless it is one of the SHELLS below: the rest of common/ (parsers, decisions, key
  schemes, the Redis client's pimpl interface) compiles without them;
- a quoted include does not name a file from the top of the tree ("common/dns/dns.hpp"), so the
  rules above could not see it;
- files include each other in a cycle. A header and the .cpp of the same name are one unit, so
  dns.cpp → dns_cache.hpp → dns.hpp is a cycle between dns and dns_cache, though no header
  includes itself: the two could not be understood, tested or replaced one without the other.
  Each cycle prints once, as the units of one strongly connected component.

Reads the source files only. tests/ may include any folder; its includes must still be paths
from the top and form no cycle.
"""

import re
import sys
from pathlib import Path

PROGRAMS = ("policyd", "milter", "admin", "web")
FOLDERS = ("common",) + PROGRAMS + ("tests",)
SUFFIXES = (".cpp", ".hpp", ".h", ".cc")
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.MULTILINE)
# The headers of common/ that are shells around I/O and may include the libraries below.
SHELLS = {"common/redis/list_cache.hpp", "common/redis/redis_connection.hpp"}
IO_LIBRARY = re.compile(r'^\s*#\s*include\s+<(boost/asio|hiredis|libmilter)[/.>]', re.MULTILINE)
# What the core target may not include at all, headers and .cpp files alike.
CORE_FORBIDDEN = re.compile(
    r'^\s*#\s*include\s+<(boost|hiredis|libmilter|ares|spf2|opendkim|libpsl)[/.>_]', re.MULTILINE)
# The layers of common/ and what each may include besides itself.
DAEMON = {"common/metrics_http.hpp", "common/metrics_http.cpp"}
MAY_INCLUDE = {"core": set(), "dns": {"core"}, "redis": {"core"}, "mail": {"core", "dns"},
               "daemon": {"core"}}


def layer(path):
    """The layer of a file of common/ ("core", "dns", ...); None outside common/."""
    parts = path.split("/")
    if parts[0] != "common":
        return None
    if path in DAEMON:
        return "daemon"
    return parts[1] if len(parts) > 2 else "core"


def sources(root):
    for folder in FOLDERS:
        base = root / folder
        if base.is_dir():
            yield from (p for p in sorted(base.rglob("*")) if p.suffix in SUFFIXES)


def io_headers(root, graph):
    """The headers that include an I/O library themselves."""
    return {p for p in graph if not p.endswith(".cpp")
            and IO_LIBRARY.search((root / p).read_text(errors="replace"))}


def purity_errors(root, graph):
    direct = io_headers(root, graph)
    errors = []
    for path in sorted(graph):
        if not path.startswith("common/") or path.endswith(".cpp") or path in SHELLS:
            continue
        seen, todo = set(), [path]
        while todo:
            here = todo.pop()
            if here in seen or here not in graph:
                continue
            seen.add(here)
            if here in direct:
                via = "" if here == path else f" through \"{here}\""
                errors.append(f"{path}: includes Asio, hiredis or libmilter{via}, and is not a "
                              "shell header (SHELLS in tests/layering.py)")
                break
            todo += graph[here]
    return errors


def core_errors(root, graph):
    errors = []
    for path in sorted(graph):
        if layer(path) != "core":
            continue
        match = CORE_FORBIDDEN.search((root / path).read_text(errors="replace"))
        if match:
            errors.append(f"{path}: the core includes <{match.group(1)}...>, a third-party I/O "
                          "library: move the file to the layer that owns it")
    return errors


def includes(root):
    """{file relative to root: [quoted includes, in order]}"""
    return {p.relative_to(root).as_posix(): INCLUDE.findall(p.read_text(errors="replace"))
            for p in sources(root)}


def layer_errors(root, graph):
    errors = []
    for path, targets in graph.items():
        folder = path.split("/", 1)[0]
        for target in targets:
            top = target.split("/", 1)[0]
            if not (root / target).is_file():
                errors.append(f"{path}: includes \"{target}\", not a path from the top of the tree")
            elif folder == "common" and top in PROGRAMS:
                errors.append(f"{path}: common/ includes the program folder \"{target}\"")
            elif (layer(path) and layer(target) and layer(target) != layer(path)
                  and layer(target) not in MAY_INCLUDE[layer(path)]):
                errors.append(f"{path}: the {layer(path)} layer includes \"{target}\" of the "
                              f"{layer(target)} layer, which is not below it")
            elif folder in PROGRAMS and top in PROGRAMS and top != folder:
                errors.append(f"{path}: program {folder}/ includes another program's \"{target}\"")
    return errors


def unit(path):
    """"common/dns/dns.cpp" and "common/dns/dns.hpp" → "common/dns/dns"."""
    return path.rsplit(".", 1)[0]


def cycles(graph):
    """Strongly connected components of the graph of units with more than one unit (Tarjan's
    algorithm, iterative)."""
    units = {}
    for path, targets in graph.items():
        edges = units.setdefault(unit(path), [])
        edges += [unit(t) for t in targets if t in graph and unit(t) != unit(path)]
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    for start in sorted(units):
        if start in index:
            continue
        work = [(start, iter(units[start]))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            nxt = next(edges, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(units[nxt])))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def main():
    root = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    graph = includes(root)
    errors = layer_errors(root, graph) + purity_errors(root, graph) + core_errors(root, graph)
    errors += ["include cycle among the units " + ", ".join(c) for c in cycles(graph)]
    for error in errors:
        print(error, file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
