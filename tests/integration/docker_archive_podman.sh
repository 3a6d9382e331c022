#!/usr/bin/env bash
# docker-archive: `dockless copy oci:DIR:TAG docker-archive:FILE:REF` writes a
# tarball that podman load and skopeo read and that podman runs; dockless reads
# it back with the same manifest digest, and reads what `podman save` writes
# (Docker's legacy form, uncompressed layers) too.
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

ROOTFS=$(fixture_rootfs)
LAYOUT=$T/layout
ARCHIVE=$T/py.tar
# A tag of this run's own, so podman's store never mixes two runs (or a user's
# localhost/py:1) and the cleanup removes only what this run loaded.
IMAGE=localhost/py:it-${T##*-}
echo "rootfs: $ROOTFS"
echo "dockless: $DOCKLESS"
echo "scratch: $T"
echo "image: $IMAGE"

# The JSON of one tar member, to FILE (empty file if absent).
tar_member() {
  tar -xOf "$1" "$2" >"$3" 2>/dev/null || : >"$3"
}

section "import"
require "dockless import into oci:$LAYOUT:py" \
  "$DOCKLESS" import "$ROOTFS" --output "oci:$LAYOUT:py" --cmd '["python3"]'
ORIG=$(layout_manifest_digest "$LAYOUT" py)
echo "manifest: $ORIG"

section "write a docker-archive"
require "dockless copy oci:$LAYOUT:py docker-archive:$ARCHIVE:$IMAGE" \
  "$DOCKLESS" copy "oci:$LAYOUT:py" "docker-archive:$ARCHIVE:$IMAGE"
members=$(tar -tf "$ARCHIVE" | sort)
for m in manifest.json repositories oci-layout index.json "blobs/sha256/${ORIG#sha256:}"; do
  check_contains "the archive holds $m" "$members" "$m"
done
check_eq "nothing but the archive was written beside it" "py.tar" \
  "$(cd "$T" && ls -A | grep -v -e '^layout$' -e '^\.podman-images$' | tr '\n' ' ' | sed 's/ $//')"
tar_member "$ARCHIVE" manifest.json "$T/manifest.json"
check_python "manifest.json: one image, RepoTags [$IMAGE], Config and Layers are blobs of the archive" \
  "$T/manifest.json" "
import subprocess
names = set(subprocess.run(['tar', '-tf', '$ARCHIVE'], capture_output=True, text=True, check=True).stdout.split())
assert len(d) == 1, d
e = d[0]
assert e['RepoTags'] == ['$IMAGE'], e['RepoTags']
assert e['Config'].startswith('blobs/sha256/') and e['Config'] in names, e['Config']
assert len(e['Layers']) == 1 and all(l in names for l in e['Layers']), e['Layers']"
tar_member "$ARCHIVE" index.json "$T/index.json"
check_python "index.json: the original manifest, named $IMAGE" "$T/index.json" "
ms = d['manifests']
assert len(ms) == 1, ms
assert ms[0]['digest'] == '$ORIG', ms[0]
a = ms[0]['annotations']
assert a['io.containerd.image.name'] == '$IMAGE', a
assert a['org.opencontainers.image.ref.name'] == '${IMAGE##*:}', a"
tar_member "$ARCHIVE" repositories "$T/repositories"
check_python "repositories: {\"localhost/py\": {\"${IMAGE##*:}\": <hex of the layer>}}" "$T/repositories" "
m = json.load(open('$T/manifest.json'))[0]
assert d == {'localhost/py': {'${IMAGE##*:}': m['Layers'][-1].split('/')[-1]}}, d"

check "a second copy writes the same bytes" \
  "$DOCKLESS" copy "oci:$LAYOUT:py" "docker-archive:$T/py-again.tar:$IMAGE"
((CHECK_OK)) && check_same_file "the two archives are identical" "$ARCHIVE" "$T/py-again.tar"
rm -f -- "$T/py-again.tar"

section "skopeo"
run_capture "$T/skopeo" skopeo inspect "docker-archive:$ARCHIVE"
if ((RC == 0)); then
  pass "skopeo inspect docker-archive:$ARCHIVE"
  check_python "skopeo sees one layer, Os linux, Architecture $(host_arch)" "$T/skopeo.out" "
assert len(d['Layers']) == 1, d['Layers']
assert d['Os'] == 'linux' and d['Architecture'] == '$(host_arch)', (d['Os'], d['Architecture'])"
else
  failed "skopeo inspect docker-archive:$ARCHIVE" "exit $RC" "$(tail -n 20 "$T/skopeo.err")"
fi
check "skopeo inspect docker-archive:$ARCHIVE:$IMAGE (selected by name)" \
  skopeo inspect "docker-archive:$ARCHIVE:$IMAGE"
check "skopeo copy docker-archive:$ARCHIVE oci:$T/skopeo-copy:x" \
  skopeo copy "docker-archive:$ARCHIVE" "oci:$T/skopeo-copy:x"
rm -rf --one-file-system -- "$T/skopeo-copy"

section "podman load and run"
printf '%s\n' "$IMAGE" >>"$T/.podman-images"
run_capture "$T/load" podman load -i "$ARCHIVE"
if ((RC == 0)); then
  pass "podman load -i $ARCHIVE"
  check_contains "podman load names the image $IMAGE" "$(cat "$T/load.out" "$T/load.err")" "$IMAGE"
else
  failed "podman load -i $ARCHIVE" "exit $RC" "$(tail -n 20 "$T/load.err")"
fi
out=$(podman --runtime runc run --rm --network none "$IMAGE" python3 -c 'print(42)' 2>"$T/run.err") || true
check_eq "podman run $IMAGE python3 -c 'print(42)' prints exactly 42" 42 "$out"
[[ $out == 42 ]] || tail -n 20 "$T/run.err" | sed 's/^/        | /'

section "read back"
check "dockless copy docker-archive:$ARCHIVE oci:$T/back:py" \
  "$DOCKLESS" copy "docker-archive:$ARCHIVE" "oci:$T/back:py"
check_digests_equal "the manifest digest read back is the original's" \
  "$ORIG" "$(layout_manifest_digest "$T/back" py)"
check "dockless copy docker-archive:$ARCHIVE:$IMAGE (selected by name) oci:$T/back:named" \
  "$DOCKLESS" copy "docker-archive:$ARCHIVE:$IMAGE" "oci:$T/back:named"
check_digests_equal "selected by name: the same manifest digest" \
  "$ORIG" "$(layout_manifest_digest "$T/back" named)"
check "skopeo inspect oci:$T/back:py" skopeo inspect "oci:$T/back:py"
run_capture "$T/wrongname" "$DOCKLESS" copy "docker-archive:$ARCHIVE:localhost/nope:1" "oci:$T/wrong:x"
check_eq "a name the archive lacks is an error (exit 1)" 1 "$RC"
check_contains "... that lists the names it has" "$(cat "$T/wrongname.err")" "$IMAGE"

section "a tampered archive"
python3 - "$ARCHIVE" "$T/tampered.tar" "$T/tampered.digests" <<'PY'
import hashlib, io, json, sys, tarfile
src, dst, out = sys.argv[1:4]
with tarfile.open(src) as t:
    members = [(m, t.extractfile(m).read() if m.isfile() else None) for m in t.getmembers()]
cfg = json.loads(dict((m.name, b) for m, b in members)["manifest.json"])[0]["Config"]
with tarfile.open(dst, "w", format=tarfile.PAX_FORMAT) as t:
    for m, b in members:
        if m.name == cfg:
            b = b.replace(b'"os":"linux"', b'"os":"Linux"')
            open(out, "w").write("sha256:%s sha256:%s\n" % (m.name.split("/")[-1], hashlib.sha256(b).hexdigest()))
            m.size = len(b)
        t.addfile(m, io.BytesIO(b) if b is not None else None)
PY
read -r want got <"$T/tampered.digests"
run_capture "$T/tampered" "$DOCKLESS" copy "docker-archive:$T/tampered.tar" "oci:$T/tampered:x"
check_eq "a blob whose bytes do not match its name is refused (exit 1)" 1 "$RC"
check_contains "... with an error naming the expected digest" "$(cat "$T/tampered.err")" "$want"
check_contains "... and the actual one" "$(cat "$T/tampered.err")" "$got"
check_eq "... and nothing stored under the wrong name" "" \
  "$(ls "$T/tampered/blobs/sha256" 2>/dev/null | grep -x "${want#sha256:}" || true)"

section "what podman save writes (Docker's legacy form)"
run_capture "$T/save" podman save --format docker-archive -o "$T/saved.tar" "$IMAGE"
if ((RC == 0)); then
  pass "podman save --format docker-archive $IMAGE"
  check "dockless copy docker-archive:$T/saved.tar oci:$T/saved:py" \
    "$DOCKLESS" copy "docker-archive:$T/saved.tar" "oci:$T/saved:py"
  run_capture "$T/orig-config" "$DOCKLESS" inspect "oci:$LAYOUT:py" --format config
  run_capture "$T/saved-config" "$DOCKLESS" inspect "oci:$T/saved:py" --format config
  check_python "the layer podman saved is the original layer, uncompressed (same diff_ids)" "$T/saved-config.out" "
o = json.load(open('$T/orig-config.out'))
assert d['rootfs']['diff_ids'] == o['rootfs']['diff_ids'], (d['rootfs'], o['rootfs'])"
  out=$(podman_run "oci:$T/saved:py" python3 -c 'print(43)' 2>"$T/run2.err") || true
  check_eq "podman runs the image dockless read from podman's archive" 43 "$out"
  [[ $out == 43 ]] || tail -n 20 "$T/run2.err" | sed 's/^/        | /'
else
  failed "podman save --format docker-archive $IMAGE" "exit $RC" "$(tail -n 20 "$T/save.err")"
fi
