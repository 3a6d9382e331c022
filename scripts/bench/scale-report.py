#!/usr/bin/env python3
"""Prints the table of scripts/bench/scale.sh from its run directory.

    scale-report.py RUN GIB WORKERS PACKAGES_JSON LOAD BUILDAH_VERSION UV_VERSION REGISTRY DL_GROWTH BH_GROWTH
stdin: "T phase,tool seconds" and "RSS phase,tool KiB" lines.
"""
import json
import os
import sys
import urllib.request

MiB = 1048576


def manifest(registry, ref):
    repo, tag = ref.split(":")
    req = urllib.request.Request("http://%s/v2/%s/manifests/%s" % (registry, repo, tag), headers={"Accept": ", ".join(
        ["application/vnd.oci.image.manifest.v1+json", "application/vnd.docker.distribution.manifest.v2+json"])})
    try:
        with urllib.request.urlopen(req) as r:
            return json.load(r)
    except OSError:
        return None


def events(path):
    """(seconds, event) of a time-stamped --progress json log."""
    out = []
    for line in open(path):
        t, _, rest = line.partition(" ")
        try:
            out.append((float(t), json.loads(rest)))
        except ValueError:
            pass
    return out


def split(run, phase):
    """dockless's phases from its report and events: uv span, then layers, then the push."""
    rep = json.load(open(os.path.join(run, "dl-%s.json" % phase)))
    ev = events(os.path.join(run, "dl-%s.log" % phase))
    envs = rep["environments"]
    uv = (min(e["start"] for e in envs), max(e["end"] for e in envs)) if envs else None
    pushes = [t for t, e in ev if e.get("event") == "started" and e.get("label", "").startswith("blob")]
    end = max(t for t, _ in ev)
    first_push = min(pushes) if pushes else end
    layers_from = uv[1] if uv else 0.0
    parts = []
    if uv:
        parts.append("uv %.1f-%.1f s (%.1f s, %d runs)" % (uv[0], uv[1], uv[1] - uv[0], len(envs)))
    ups = [u for u in rep.get("uploads", []) if not u["name"].startswith("base layer")]
    if ups:
        # Pipelined push: uploads overlap the layers; the report has both spans.
        last_made = max([l.get("made", 0) for l in rep["layers"]] or [layers_from])
        u0, u1 = min(u["start"] for u in ups), max(u["end"] for u in ups)
        parts.append("layers %.1f-%.1f s (%.1f s)" % (layers_from, last_made, last_made - layers_from))
        parts.append("uploads %.1f-%.1f s (%d blobs, overlapping the layers)" % (u0, u1, len(ups)))
        parts.append("manifest and end %.1f-%.1f s" % (max(u1, last_made), end))
        return rep, "; ".join(parts)
    parts.append("layers %.1f-%.1f s (%.1f s)" % (layers_from, first_push, first_push - layers_from))
    parts.append("push %.1f-%.1f s (%.1f s)" % (first_push, end, end - first_push))
    return rep, "; ".join(parts)


def main(argv):
    run, gib, workers, pkgs_json, load, bh_version, uv_version, registry, dl_grow, bh_grow = argv[1:11]
    T, RSS = {}, {}
    for line in sys.stdin:
        f = line.split()
        if len(f) == 3:
            (T if f[0] == "T" else RSS)[f[1]] = float(f[2])
    pk = json.load(open(pkgs_json))
    peer = "cold,buildah" in T

    def ratio(a, b):
        return "%.3f" % (a / b) if b else "-"

    print()
    print("dockless scale benchmark: %s GiB of wheels, %s workers; dockless vs buildah bud (%s) + push" % (
        gib, workers, bh_version or "-"))
    print("machine: %d cores, load average before: %s; %s" % (os.cpu_count(), load, uv_version))
    print("packages: %d wheels, %.1f MiB (%.1f MiB, %d files unpacked)" % (
        len(pk), sum(x["size"] for x in pk) / MiB, sum(x["unpacked"] for x in pk) / MiB, sum(x["files"] for x in pk)))
    print("project: main venv + %s worker venvs + cache-only extra automodel (17 uv runs cold)" % workers)
    print()
    print("%-36s %11s %11s %8s   %s" % ("phase", "dockless s", "buildah s", "ratio", "goal"))
    for phase, label, goal in (("cold", "1. cold build + push", 0.3), ("edit", "2. one source file edited", 0.05),
                               ("skip", "3. --skip vllm (worker w00)", None)):
        d, b = T.get(phase + ",dockless", 0), T.get(phase + ",buildah", 0)
        r = ratio(d, b) if peer else "-"
        g = "" if goal is None or not peer else "ratio <= %g: %s" % (goal, "met" if d / b <= goal else "MISSED")
        print("%-36s %11.3f %11s %8s   %s" % (label, d, "%.3f" % b if peer else "-", r, g))
    print("%-36s %11s %11s %8s" % ("4. registry growth, skip variant", dl_grow, bh_grow if peer else "-",
                                   ratio(float(dl_grow), float(bh_grow)) if peer and float(bh_grow) else "-"))
    print()
    print("peak RSS (MiB), goal dockless < 256:")
    for phase in ("cold", "edit", "skip"):
        d = RSS.get(phase + ",dockless", 0) / 1024
        b = RSS.get(phase + ",buildah", 0) / 1024
        print("   %-5s dockless %7.1f   buildah %7s   %s" % (phase, d, "%.1f" % b if peer else "-",
                                                          "met" if d < 256 else "MISSED"))
    print()
    print("dockless's time split (seconds since its start; overlapping spans overlap):")
    for phase in ("cold", "edit", "skip"):
        print("   %-5s %s" % (phase, split(run, phase)[1]))
    if peer:
        print("buildah's split: cold bud %.2f s + push %.2f s" % (
            T["cold,buildah"] - T["cold,buildah-push"], T["cold,buildah-push"]))
    print()
    print("images in the registry (layers, compressed bytes):")
    for img in ("scale-dockless:full", "scale-dockless:novllm", "scale-buildah:full", "scale-buildah:novllm"):
        m = manifest(registry, img)
        if not m:
            continue
        sizes = [l["size"] for l in m["layers"]]
        print("   %-24s %3d layers  %9.1f MiB  %3d under 4 KiB  largest %.1f MiB" % (
            img, len(sizes), sum(sizes) / MiB, sum(1 for s in sizes if s < 4096), max(sizes) / MiB))
    rep = json.load(open(os.path.join(run, "dl-cold.json")))
    names = [l["name"] for l in rep["layers"]]
    idx = [n for n in names if n.startswith("uv cache index")]
    arc = [n for n in names if n.startswith("uv cache (")]
    venvs = [n for n in names if n.startswith("venv ")]
    m = manifest(registry, "scale-dockless:full")
    base = len(m["layers"]) - len(names) if m else 0
    print("dockless cold image: %d layers = %d base + %d uv cache archive layers + %d uv cache index layers"
          " + %d venvs + %d other (uv, source); runtime limit 127" % (
              base + len(names), base, len(arc), len(idx), len(venvs), len(names) - len(arc) - len(idx) - len(venvs)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
