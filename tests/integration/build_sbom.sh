#!/usr/bin/env bash
# dockless build --sbom: the test project built and pushed with a CycloneDX
# 1.5 SBOM attached as an OCI referrer. `dockless sbom REF` (registry, found
# through the sha256-<hex> tag index, as Debian's docker-registry has no
# referrers API) and `dockless sbom oci:DIR:TAG` print it; it validates
# against the CycloneDX 1.5 schema (cyclonedx-python-lib's strict validator),
# lists every venv's packages with uv.lock's hashes, the shipped uv cache,
# the base's Debian packages, uv and Python. skopeo sees the referrers tag
# index. A --skip vllm build (spec image.sbom = true)'s SBOM lacks the skipped venv's packages. An
# image without an SBOM: one error line, exit 1.
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname -- "${BASH_SOURCE[0]}")/registry_lib.sh"
source "$(dirname -- "${BASH_SOURCE[0]}")/build_lib.sh"

# The validator: cyclonedx-python-lib (scripts/setup.sh installs it), else a
# venv under /var/tmp made once (pip from PyPI: the only network use, before
# any check, and only on a machine setup.sh has not run on).
CDX_PY=/opt/dockless-tools/cyclonedx/bin/python
if ! "$CDX_PY" -c 'import cyclonedx.validation.json' 2>/dev/null; then
  CDX_PY=/var/tmp/dockless-cyclonedx/bin/python
  if ! "$CDX_PY" -c 'import cyclonedx.validation.json' 2>/dev/null; then
    python3 -m venv /var/tmp/dockless-cyclonedx >/dev/null &&
      /var/tmp/dockless-cyclonedx/bin/pip install -q 'cyclonedx-python-lib[json-validation]' ||
      fail "cannot install cyclonedx-python-lib into /var/tmp/dockless-cyclonedx"
  fi
fi

build_setup
H=$REGISTRY_HOST
CACHE=$T/cache

# validate FILE: cyclonedx-python-lib's strict JSON validator for 1.5.
validate() {
  "$CDX_PY" - "$1" <<'PY'
import sys
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
err = JsonStrictValidator(SchemaVersion.V1_5).validate_str(open(sys.argv[1]).read())
if err:
    print(err)
    sys.exit(1)
PY
}

# venv_packages FILE: "VENV: pkg pkg ..." per venv (normalized names), sorted.
venv_packages() {
  python3 - "$1" <<'PY'
import json, re, sys
d = json.load(open(sys.argv[1]))
by = {}
for c in d["components"]:
    for p in c.get("properties", []):
        if p["name"] == "dockless:venv":
            by.setdefault(p["value"], set()).add(re.sub(r"[-_.]+", "_", c["name"].lower()))
for v in sorted(by):
    print("%s: %s" % (v, " ".join(sorted(by[v]))))
PY
}

section "build --sbom --push"
check_build "build --sbom, pushed to $H/app:sbom" "$T/b-full" "$PROJ" --set "image.base=$BASE_REF" \
  --output "oci:$T/full:app" --cache-dir "$CACHE" --sbom --tag "$H/app:sbom" --push
((CHECK_OK)) || fail "the build failed; nothing else can be judged"
FULL=$DIGEST

section "dockless sbom"
dl "$T/sbom-reg" sbom "$H/app:sbom" --cache-dir "$CACHE"
check_eq "dockless sbom $H/app:sbom: exit 0" 0 "$RC"
check "the SBOM validates against CycloneDX 1.5 (JsonStrictValidator)" validate "$T/sbom-reg.out"
dl "$T/sbom-oci" sbom "oci:$T/full:app"
check_eq "dockless sbom oci:$T/full:app: exit 0" 0 "$RC"
check "the layout's SBOM is the registry's, byte for byte" cmp "$T/sbom-reg.out" "$T/sbom-oci.out"

expected=""
for v in "${VENV_NAMES[@]}"; do
  expected+="$v: $(sorted_words ${VENV_HAS[$v]})"$'\n'
done
check_eq "every venv's packages, by its dockless:venv properties" \
  "$(printf '%s' "$expected" | sort)" "$(venv_packages "$T/sbom-reg.out" | sort)"

check_python "each Python package: purl pkg:pypi/NAME@VERSION and exactly uv.lock's sha256 hashes" "$T/sbom-reg.out" '
import re, tomllib
lock = tomllib.load(open("'"$PROJ"'/uv.lock", "rb"))
want = {}
for p in lock["package"]:
    files = ([p["sdist"]] if "sdist" in p else []) + p.get("wheels", [])
    want[(re.sub(r"[-_.]+", "-", p["name"].lower()), p["version"])] = sorted(f["hash"][7:] for f in files)
py = [c for c in d["components"] if c.get("purl", "").startswith("pkg:pypi/") and c["name"] != "uv"]
assert len(py) >= 8, [c["name"] for c in py]
for c in py:
    n = re.sub(r"[-_.]+", "-", c["name"].lower())
    assert c["purl"] == "pkg:pypi/%s@%s" % (n, c["version"]), c["purl"]
    assert (n, c["version"]) in want, ("not in uv.lock", n, c["version"])
    got = sorted(h["content"] for h in c.get("hashes", []) if h["alg"] == "SHA-256")
    assert got and got == want[(n, c["version"])], (n, got, want[(n, c["version"])])
'
check_python "the shipped uv cache: every fixture package marked dockless:uv-cache" "$T/sbom-reg.out" '
cached = {c["name"] for c in d["components"] for p in c.get("properties", []) if p["name"] == "dockless:uv-cache"}
want = set("'"$(sorted_words "${EXTRA_PACKAGES[@]}")"'".split())
assert want <= cached, sorted(want - cached)
'
check_python "Debian packages of the base: python3 and libc6 as pkg:deb/debian/NAME@VERSION?arch=" "$T/sbom-reg.out" '
debs = {c["name"]: c for c in d["components"] if c.get("purl", "").startswith("pkg:deb/debian/")}
assert len(debs) > 50, len(debs)
for n in ("python3", "libc6"):
    c = debs[n]
    assert c["purl"].startswith("pkg:deb/debian/%s@" % n) and "?arch=" in c["purl"], c["purl"]
'
check_python "uv and Python are components with versions; the serial number and subject are the image" "$T/sbom-reg.out" '
names = {c["name"]: c.get("version") for c in d["components"]}
assert names.get("uv") and names.get("python"), (names.get("uv"), names.get("python"))
assert d["metadata"]["component"]["version"] == "'"$FULL"'", d["metadata"]["component"]
assert "timestamp" not in d["metadata"], d["metadata"]
'

section "the referrer in the registry (tag schema fallback)"
REFTAG=sha256-${FULL#sha256:}
skopeo inspect --tls-verify=false --raw "docker://$H/app:$REFTAG" >"$T/refindex.json" 2>"$T/refindex.err"
check_python "skopeo: $H/app:$REFTAG is an index listing one application/vnd.cyclonedx+json referrer" "$T/refindex.json" '
ms = [m for m in d["manifests"] if m.get("artifactType") == "application/vnd.cyclonedx+json"]
assert d["mediaType"] == "application/vnd.oci.image.index.v1+json" and len(ms) == 1, d
'
SBOM_MAN=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifests"][0]["digest"])' "$T/refindex.json" 2>/dev/null)
skopeo inspect --tls-verify=false --raw "docker://$H/app@$SBOM_MAN" >"$T/sbom-man.json" 2>/dev/null
check_python "the referrer manifest: subject = the image, empty config, one CycloneDX layer" "$T/sbom-man.json" '
assert d["subject"]["digest"] == "'"$FULL"'", d
assert d["artifactType"] == "application/vnd.cyclonedx+json", d
assert d["config"]["mediaType"] == "application/vnd.oci.empty.v1+json" and d["config"]["size"] == 2, d
assert [l["mediaType"] for l in d["layers"]] == ["application/vnd.cyclonedx+json"], d
'

section "--skip vllm: the variant's SBOM"
# The spec's image.sbom = true (through --set) instead of --sbom.
check_build "build --skip vllm --set image.sbom=true, pushed to $H/app:novllm" "$T/b-novllm" "$PROJ" \
  --set "image.base=$BASE_REF" --set image.sbom=true \
  --output "oci:$T/novllm:app" --cache-dir "$CACHE" --skip vllm --tag "$H/app:novllm" --push
dl "$T/sbom-novllm" sbom "$H/app:novllm" --cache-dir "$CACHE"
check "the --skip vllm SBOM validates" validate "$T/sbom-novllm.out"
expected=""
for v in "${VENV_NAMES[@]}"; do
  [[ $v == app.workers.VllmWorker ]] && continue
  expected+="$v: $(sorted_words ${VENV_HAS[$v]})"$'\n'
done
check_eq "--skip vllm: the venvs' packages, without app.workers.VllmWorker" \
  "$(printf '%s' "$expected" | sort)" "$(venv_packages "$T/sbom-novllm.out" | sort)"
check_python "--skip vllm: only_vllm and vllm_dep are nowhere (not in the cache either); shared_vs stays" \
  "$T/sbom-novllm.out" '
names = {c["name"] for c in d["components"]}
assert "only_vllm" not in names and "vllm_dep" not in names, sorted(names)
assert "shared_vs" in names
'

section "bad input"
check_build "a build without --sbom" "$T/b-plain" "$PROJ" --set "image.base=$BASE_REF" \
  --output "oci:$T/plain:app" --cache-dir "$CACHE"
check_dl_error "dockless sbom of an image without an SBOM" "$T/sbom-none" "no SBOM" -- sbom "oci:$T/plain:app"
check_dl_error "dockless sbom of the base in the registry (no SBOM)" "$T/sbom-none-reg" "no SBOM" -- \
  sbom "$BASE_REF" --cache-dir "$CACHE"

