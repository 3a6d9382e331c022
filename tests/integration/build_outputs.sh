#!/usr/bin/env bash
# dockless build of the hermetic test project (tests/fixtures/make_project.sh)
# on the debootstrap base pulled from a real registry, written three ways in
# one build (registry push, OCI layout, docker-archive), each judged by
# skopeo and podman: in every venv the packages it should have import and
# the others don't; python3 on PATH is the main venv's; `uv sync --frozen
# --offline --extra X` works from the shipped cache for every enabled extra
# (podman run --network none); the layers are base, uv, uv cache parts,
# worker venvs, main venv, source, each named in the history; /opt/app is
# the project with .dockerignore applied; uv is at /usr/local/bin/uv.
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname -- "${BASH_SOURCE[0]}")/registry_lib.sh"
source "$(dirname -- "${BASH_SOURCE[0]}")/build_lib.sh"

build_setup
H=$REGISTRY_HOST

section "dockless build: registry + OCI layout + docker-archive in one build"
check_build "dockless build $PROJ with 3 outputs and --push" "$T/b1" \
  "$PROJ" --set "image.base=$BASE_REF" \
  --output "oci:$T/out:app" --output "docker-archive:$T/app.tar:localhost/app:1" \
  --tag "$H/app:1" --push --report "$T/r1.json" --cache-dir "$T/cache"
((CHECK_OK)) || fail "the build failed; nothing else can be judged"
BUILT=$DIGEST
echo "  built $BUILT in ${SECS}s"
report_layers "$T/r1.json" | sed 's/^/    /'
echo "  its stderr (head):"
head -n 40 "$T/b1.err" | sed 's/^/    | /'

check_python "the report: digest, uv_runs, one layer per part, names" "$T/r1.json" '
assert d["digest"] == "'"$BUILT"'", (d["digest"], "'"$BUILT"'")
assert d["uv_runs"] >= 5, "uv_runs %r: expected one per venv (4) and one for the cache extra" % d["uv_runs"]
names = [l["name"] for l in d["layers"]]
for want in ["venv app.workers.VllmWorker", "venv app.workers.SglangWorker", "venv app.workers.McoreWorker", "venv main"]:
    assert want in names, (want, names)
assert any(n.startswith("source") for n in names), names
assert any(n.startswith("uv cache") for n in names), names
assert d["skipped"] == [], d["skipped"]
assert d.get("base_digest") == "'"$BASE_DIGEST"'", d.get("base_digest")'

# ------------------------------------------------------------------ metadata
section "skopeo reads every output"
image_meta "$T/m-oci" "oci:$T/out:app" || failed "skopeo inspect oci:$T/out:app" "$(cat "$T/m-oci.skopeo.err")"
image_meta "$T/m-reg" "docker://$H/app:1" || failed "skopeo inspect docker://$H/app:1" "$(cat "$T/m-reg.skopeo.err")"
image_meta "$T/m-tar" "docker-archive:$T/app.tar" || failed "skopeo inspect docker-archive:$T/app.tar" "$(cat "$T/m-tar.skopeo.err")"
check_digests_equal "the OCI layout's tag names the built manifest" "$BUILT" "$(layout_manifest_digest "$T/out" app)"
check_digests_equal "the registry has the built manifest at $H/app:1" "$BUILT" "$(remote_digest "$H/app:1")"
check_eq "the docker-archive names localhost/app:1" '["localhost/app:1"]' \
  "$(tar -xOf "$T/app.tar" manifest.json 2>/dev/null | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)[0]["RepoTags"]))' 2>&1)"
for m in oci reg tar; do
  check_eq "$m: same diff_ids as the OCI layout" \
    "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["rootfs"]["diff_ids"])' "$T/m-oci.config.json" 2>&1)" \
    "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["rootfs"]["diff_ids"])' "$T/m-$m.config.json" 2>&1)"
done
check "oci-image-tool validate --type image --ref name=app $T/out" \
  oci-image-tool validate --type image --ref name=app "$T/out"
check_blobs_intact "every blob of the OCI layout has the digest it is named by" "$T/out"

section "layers: base, uv, uv cache, worker venvs, main venv, source; each named"
for m in oci reg tar; do
  check_layer_order "$m: layer order and history" "$T/m-$m"
done
check_python "the manifest: base layers as they are (same blobs as the base in the registry)" "$T/m-oci.manifest.json" '
base = json.load(open("'"$T"'/base/blobs/sha256/'"${BASE_DIGEST#sha256:}"'"))
bl = [l["digest"] for l in base["layers"]]
got = [l["digest"] for l in d["layers"]]
assert got[:len(bl)] == bl, (got[:len(bl)], bl)
assert len(got) > len(bl) + 5, "only %d layers" % len(got)'
check_python "the manifest: base.name / base.digest annotations" "$T/m-oci.manifest.json" '
a = d.get("annotations") or {}
assert a.get("org.opencontainers.image.base.name") == "'"$BASE_REF"'", a
assert a.get("org.opencontainers.image.base.digest") == "'"$BASE_DIGEST"'", a'
check_python "the config: env, PATH with the main venv first, cmd, workdir, labels" "$T/m-oci.config.json" '
c = d["config"]
env = dict(e.split("=", 1) for e in c.get("Env", []))
assert env.get("APP_IN_CONTAINER") == "1", env
assert env.get("PATH", "").startswith("/opt/app_venv/bin:"), env.get("PATH")
assert c.get("Cmd") == ["python3"], c.get("Cmd")
assert c.get("WorkingDir") == "/opt/app", c.get("WorkingDir")
labels = c.get("Labels") or {}
assert labels.get("org.opencontainers.image.title") == "dockless-test-app", labels
assert "org.opencontainers.image.revision" not in labels, "a revision label without --git: %r" % labels'

# ------------------------------------------------------------------ podman
section "podman: the registry image (podman pull)"
printf '%s\n' "$H/app:1" >>"$T/.podman-images"
if podman pull -q --tls-verify=false "$H/app:1" >"$T/pull.out" 2>"$T/pull.err"; then
  pass "podman pull $H/app:1"
  incheck registry "$H/app:1"
else
  failed "podman pull $H/app:1" "$(tail -n 10 "$T/pull.err")"
fi

section "podman: the OCI layout (podman run oci:...)"
incheck oci "oci:$T/out:app"

section "podman: the docker-archive (podman load)"
printf '%s\n' localhost/app:1 >>"$T/.podman-images"
if podman load -i "$T/app.tar" >"$T/load.out" 2>"$T/load.err"; then
  pass "podman load -i $T/app.tar ($(tail -n 1 "$T/load.out"))"
  incheck archive localhost/app:1
else
  failed "podman load -i $T/app.tar" "$(tail -n 10 "$T/load.err")"
fi

section "the shipped uv cache holds the packages of every enabled env"
check_eq "registry: fixture packages with a dist-info in $IMAGE_CACHE" \
  "$(sorted_words "${EXTRA_PACKAGES[@]}")" "$(cache_packages "$T/registry.cache")"
check_eq "registry: nothing of late_add (in the index, unused) in the cache" "" "$(cache_mentions "$T/registry.cache" late_add)"
