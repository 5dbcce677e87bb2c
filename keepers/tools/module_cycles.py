#!/usr/bin/env python3
"""Import circles between the modules of a Rust crate.

Builds the module graph of each source folder given (e.g. keepers/keeper/src) from every
`crate::a::b` path and `super::x` path in non-test code (comments stripped, code after the first
`#[cfg(test)]` of a file ignored, `use crate::{a, b::c}` groups expanded, a path counted for the
longest prefix that names a module), then prints the strongly connected components with more
than one module. Exit status 1 when there is a cycle. Set V=-v to print the graph.

    python3 keepers/tools/module_cycles.py keepers/keeper/src keepers/proof/src
"""
import os, re, sys
def modname(src, path):
    rel = os.path.relpath(path, src)[:-3]
    parts = rel.split(os.sep)
    if parts[-1] in ("mod", "lib", "main"): parts = parts[:-1]
    return "::".join(parts) or "crate"
def run(src):
    mods = {}
    for root, _, files in os.walk(src):
        if "/bin" in root: continue
        for f in files:
            if f.endswith(".rs"):
                p = os.path.join(root, f)
                txt = open(p).read().split("\n#[cfg(test)]")[0]
                txt = re.sub(r"//[^\n]*", "", txt)
                mods[modname(src, p)] = txt
    names = set(mods)
    g = {m: set() for m in mods}
    for m, txt in mods.items():
        # expand `use crate::{a, b::c}` groups roughly: take every identifier path after crate::
        for use in re.findall(r"crate::\{([^;]*?)\};", txt, re.S):
            for item in re.findall(r"(?:^|[,{\s])([a-z_][a-z0-9_]*(?:::[a-z_][a-z0-9_]*)*)", use):
                txt += f"\ncrate::{item}"
        for path in re.findall(r"crate::([a-z_][a-z0-9_]*(?:::[a-z_][a-z0-9_]*)*)", txt):
            parts = path.split("::")
            # longest prefix that is a module
            for k in range(len(parts), 0, -1):
                cand = "::".join(parts[:k])
                if cand in names:
                    if cand != m and not m.startswith(cand + "::") : g[m].add(cand)
                    break
        # parent modules reach children via `mod x; use x::...` is not an import back; `super::` counts
        for path in re.findall(r"\bsuper::([a-z_][a-z0-9_]*)", txt):
            parent = m.rsplit("::", 1)[0] if "::" in m else "crate"
            cand = (parent + "::" + path) if parent != "crate" else path
            if cand in names and cand != m: g[m].add(cand)
            elif parent in names and parent != m: g[m].add(parent)
    # Tarjan
    idx, low, st, on, out, c = {}, {}, [], set(), [], [0]
    def sc(v):
        idx[v] = low[v] = c[0]; c[0] += 1; st.append(v); on.add(v)
        for w in g[v]:
            if w not in idx: sc(w); low[v] = min(low[v], low[w])
            elif w in on: low[v] = min(low[v], idx[w])
        if low[v] == idx[v]:
            comp = []
            while True:
                w = st.pop(); on.discard(w); comp.append(w)
                if w == v: break
            if len(comp) > 1: out.append(sorted(comp))
    sys.setrecursionlimit(10000)
    for v in g:
        if v not in idx: sc(v)
    return g, out
for src in sys.argv[1:]:
    g, cyc = run(src)
    print(f"{src}: {len(g)} modules, {sum(len(v) for v in g.values())} edges, cycles: {cyc or 'none'}")
    if "-v" in os.environ.get("V", ""):
        for k in sorted(g): print("  ", k, "->", sorted(g[k]))
sys.exit(1 if any(run(src)[1] for src in sys.argv[1:]) else 0)
