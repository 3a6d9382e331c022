#!/usr/bin/env bash
# The CLI's contract on bad input: one line on stderr ("dockless: error: ..."
# for failures), nothing on stdout, exit 1 for a failure and 2 for a usage
# error, never a crash. Help and version. And a failed or killed import never
# leaves an index.json that claims the tag.
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

ROOTFS=$(fixture_rootfs) || fail "the debootstrap rootfs fixture is not available (scripts/fixtures/debian-rootfs.sh)"
echo "rootfs: $ROOTFS"
echo "dockless: $DOCKLESS"
echo "scratch: $T"

# check_error_line DESC PREFIX CODE [NEEDLE]: the captured stderr
# ($PREFIX.err) is exactly one non-empty line, with no sign of a crash, that
# starts with "dockless: error: " when CODE is 1 and contains NEEDLE; stdout
# ($PREFIX.out) is empty.
check_error_line() {
  local desc=$1 prefix=$2 code=$3 needle=${4:-} err problems=()
  err=$(cat -- "$prefix.err")
  local lines
  lines=$(printf '%s' "$err" | awk 'END { print NR }')
  [[ -n $err ]] || problems+=("stderr is empty")
  [[ -z $err || $lines -eq 1 ]] || problems+=("stderr has $lines lines, expected 1")
  if grep -Eiq 'terminate called|what\(\)|Aborted|Segmentation|core dumped|stack trace|backtrace|Traceback|AddressSanitizer|^#[0-9]+ ' <<<"$err"; then
    problems+=("stderr shows a crash")
  fi
  [[ $code != 1 || $err == "dockless: error: "* ]] || problems+=("the line does not start with 'dockless: error: '")
  [[ -z $needle || $err == *"$needle"* ]] || problems+=("the line does not mention $(_show "$needle")")
  [[ ! -s $prefix.out ]] || problems+=("stdout is not empty: $(head -c 300 "$prefix.out")")
  if ((${#problems[@]} == 0)); then
    pass "$desc: one clear line on stderr (${err:0:110})"
  else
    failed "$desc: one clear line on stderr" "${problems[@]}" "stderr was:" "$(head -n 15 <<<"$err")"
  fi
}

# expect_error DESC CODE NEEDLE CMD...: two checks, the exit status and the
# error line.
N=0
expect_error() {
  local desc=$1 code=$2 needle=$3
  shift 3
  N=$((N + 1))
  run_capture "$T/e$N" "$@"
  if [[ $RC == "$code" ]]; then
    pass "$desc: exit $code"
  else
    failed "$desc: exit $code" "command: $(_quote "$@")" "exit status $RC$( ((RC > 128)) && echo " (killed by signal $((RC - 128)))")"
  fi
  check_error_line "$desc" "$T/e$N" "$code" "$needle"
}

OUT=oci:$T/out:t
section "usage errors and failures of import"
expect_error "import without the rootfs argument (usage)" 2 "" \
  "$DOCKLESS" import --output "$OUT"
expect_error "import with an empty rootfs path" 1 "" \
  "$DOCKLESS" import "" --output "$OUT"
expect_error "import of a nonexistent rootfs" 1 "$T/nonexistent" \
  "$DOCKLESS" import "$T/nonexistent" --output "$OUT"
expect_error "import without --output (usage)" 2 "--output" \
  "$DOCKLESS" import "$ROOTFS"
expect_error "--output without the oci: prefix" 2 "$T/plain" \
  "$DOCKLESS" import "$ROOTFS" --output "$T/plain"
expect_error "--output with an unknown transport (docker-archive:)" 2 "docker-archive:" \
  "$DOCKLESS" import "$ROOTFS" --output "docker-archive:$T/x.tar"
expect_error "--output with an unknown transport (docker://)" 2 "docker://" \
  "$DOCKLESS" import "$ROOTFS" --output "docker://example.com/x:y"
expect_error "--platform foo" 2 "foo" \
  "$DOCKLESS" import "$ROOTFS" --output "$OUT" --platform foo
expect_error "--compression lz4" 2 "lz4" \
  "$DOCKLESS" import "$ROOTFS" --output "$OUT" --compression lz4
expect_error "--env NOEQUALS" 2 "NOEQUALS" \
  "$DOCKLESS" import "$ROOTFS" --output "$OUT" --env NOEQUALS
expect_error "unknown option --bogus" 2 "--bogus" \
  "$DOCKLESS" import "$ROOTFS" --output "$OUT" --bogus
expect_error "unknown subcommand frobnicate" 2 "frobnicate" \
  "$DOCKLESS" frobnicate
check "none of these created an image at $T/out" test ! -e "$T/out/index.json"

section "failures of inspect"
expect_error "inspect of a missing layout" 1 "$T/missing" \
  "$DOCKLESS" inspect "oci:$T/missing:latest"
check "import a small image for the inspect checks" \
  "$DOCKLESS" import "$ROOTFS" --output "oci:$T/small:present"
expect_error "inspect oci:DIR:missingtag" 1 "missingtag" \
  "$DOCKLESS" inspect "oci:$T/small:missingtag"
expect_error "inspect --format yaml (usage)" 2 "yaml" \
  "$DOCKLESS" inspect "oci:$T/small:present" --format yaml
expect_error "inspect without an image (usage)" 2 "" \
  "$DOCKLESS" inspect

section "help and version"
run_capture "$T/bare" "$DOCKLESS"
if [[ $RC == 0 || $RC == 2 ]] && grep -qi 'usage' "$T/bare.out" "$T/bare.err" &&
  grep -q import "$T/bare.out" "$T/bare.err" && grep -q inspect "$T/bare.out" "$T/bare.err" &&
  { [[ $RC == 2 ]] || grep -qi usage "$T/bare.out"; }; then
  pass "dockless alone prints usage naming import and inspect (exit $RC)"
else
  failed "dockless alone prints usage naming import and inspect (exit 0 with usage on stdout, or 2)" \
    "exit $RC" "stdout: $(head -c 400 "$T/bare.out")" "stderr: $(head -c 400 "$T/bare.err")"
fi
want_version=$(sed -n "s/^ *version *: *'\([^']*\)'.*/\1/p" "$SOURCE_ROOT/meson.build" | head -n1)
run_capture "$T/version" "$DOCKLESS" --version
check_eq "dockless --version exits 0" 0 "$RC"
check_contains "dockless --version prints the project version ($want_version) on stdout" \
  "$(cat "$T/version.out")" "${want_version:-<no version in meson.build>}"
run_capture "$T/help" "$DOCKLESS" help
check_eq "dockless help exits 0" 0 "$RC"
check "dockless help prints usage naming import and inspect on stdout" \
  bash -c 'grep -qi usage "$1" && grep -q import "$1" && grep -q inspect "$1"' _ "$T/help.out"
run_capture "$T/ihelp" "$DOCKLESS" import --help
check_eq "dockless import --help exits 0" 0 "$RC"
missing=()
for opt in --output --env --workdir --entrypoint --cmd --label --user --platform --compression; do
  grep -q -- "$opt" "$T/ihelp.out" || missing+=("$opt")
done
check_eq "dockless import --help mentions every option on stdout" "" "${missing[*]}"
run_capture "$T/nhelp" "$DOCKLESS" inspect --help
check_eq "dockless inspect --help exits 0" 0 "$RC"
check "dockless inspect --help mentions --format and its values on stdout" \
  bash -c 'grep -q -- --format "$1" && grep -q manifest "$1" && grep -q config "$1" && grep -q both "$1"' _ "$T/nhelp.out"

section "build steps: bad --arg, --context, --secret and step specs"
steps_dir=$T/steps
mkdir -p "$steps_dir"
printf '%s\n' '[image]' 'base = "oci:/nonexistent"' > "$steps_dir/dockless.toml"
BUILD=("$DOCKLESS" build "$steps_dir" --output "oci:$T/steps-out:t" --cache-dir "$T/steps-cache")
expect_error "build --arg without =VALUE (usage)" 2 "--arg \"FOO\": expected NAME=VALUE" "${BUILD[@]}" --arg FOO
expect_error "build --arg with a bad name (usage)" 2 "not an argument name" "${BUILD[@]}" --arg 1X=2
expect_error "build --context without =DIR (usage)" 2 "--context \"custom-setup\": expected NAME=DIR" \
  "${BUILD[@]}" --context custom-setup
expect_error "build --secret without id= (usage)" 2 "--secret: missing id=" "${BUILD[@]}" --secret src=/etc/hostname
expect_error "build --secret without src= (usage)" 2 "--secret id=token: missing src=FILE" "${BUILD[@]}" --secret id=token
# A mistaken --secret VALUE is never echoed.
run_capture "$T/secret-echo" "${BUILD[@]}" --secret s3cr3t-value
if grep -q s3cr3t-value "$T/secret-echo.err"; then
  failed "build --secret VALUE: the value is not echoed" "stderr: $(cat "$T/secret-echo.err")"
else
  pass "build --secret VALUE: the value is not echoed"
fi
cat > "$steps_dir/mount.toml" <<'TOML'
[image]
base = "oci:/nonexistent"

[[step]]
name = "apt"
run = "true"
mounts = [{ type = "volume", target = "/x" }]
TOML
expect_error "build with an unknown mount type" 1 '[[step]] "apt" mounts[1] type: unknown mount type "volume"' \
  "${BUILD[@]}" --file "$steps_dir/mount.toml"
cat > "$steps_dir/arg.toml" <<'TOML'
[image]
base = "oci:/nonexistent"

[[step]]
name = "setup"
run = "echo ${MISSING}"
TOML
expect_error "build with a \${NAME} that has no value" 1 '[[step]] "setup" run: ${MISSING} has no value' \
  "${BUILD[@]}" --file "$steps_dir/arg.toml"

section "a failed import claims no tag"
# check_no_claim DESC LAYOUT TAG: no index.json in LAYOUT names TAG, and the
# blobs there are intact.
check_no_claim() {
  local tags
  tags=$(layout_tags "$2")
  if grep -qxF -- "$3" <<<"$tags"; then
    failed "$1: no index.json claims the tag $3" "index.json: $(head -c 1000 "$2/index.json")"
  else
    pass "$1: no index.json claims the tag $3"
  fi
  check_blobs_intact "$1: every blob left in the layout is intact" "$2"
}

# check_layout_unchanged DESC LAYOUT SNAPSHOT: index.json is byte-identical to
# SNAPSHOT and its tag "good" still resolves with skopeo.
check_layout_unchanged() {
  check_same_file "$1: index.json is unchanged" "$3" "$2/index.json"
  check "$1: skopeo still resolves the tag good" skopeo inspect "oci:$2:good"
  check_blobs_intact "$1: every blob in the layout is intact" "$2"
}

tar -C "$ROOTFS" -cf "$T/rootfs.tar" .
gzip -1 -c "$T/rootfs.tar" >"$T/rootfs.tar.gz"
zstd -q -1 -c "$T/rootfs.tar" >"$T/rootfs.tar.zst"
for ext in tar tar.gz tar.zst; do
  cp -- "$T/rootfs.$ext" "$T/truncated.$ext"
  truncate -s $(($(stat -c %s "$T/rootfs.$ext") * 2 / 5)) "$T/truncated.$ext"
done
head -c 1048576 /dev/urandom >"$T/garbage.tar"
# A tar whose 200th header has a wrong checksum (one name byte changed): GNU
# tar rejects it (exit 2); libarchive reports ARCHIVE_RETRY "Damaged tar
# archive" and skips the entry, which an importer must not take as success.
python3 - "$T/rootfs.tar" "$T/corrupt.tar" <<'PY'
import shutil, sys, tarfile
src, dst = sys.argv[1:]
with tarfile.open(src) as t:
    offset = [m for i, m in zip(range(200), t)][-1].offset
shutil.copyfile(src, dst)
with open(dst, "r+b") as f:
    f.seek(offset + 3)
    b = f.read(1)
    f.seek(offset + 3)
    f.write(bytes([b[0] ^ 0x01]))
PY

for input in truncated.tar truncated.tar.gz truncated.tar.zst garbage.tar corrupt.tar; do
  name=f-${input//./-}
  expect_error "import of $input" 1 "" \
    "$DOCKLESS" import "$T/$input" --output "oci:$T/$name:bad"
  check_no_claim "import of $input" "$T/$name" bad
done

# An existing layout with a good tag; failed imports into it must leave it as it was.
check "import the tag good into $T/keep" "$DOCKLESS" import "$ROOTFS" --output "oci:$T/keep:good"
cp -- "$T/keep/index.json" "$T/keep.index.json" 2>/dev/null || true
expect_error "import of truncated.tar into the layout holding good" 1 "" \
  "$DOCKLESS" import "$T/truncated.tar" --output "oci:$T/keep:bad"
check_layout_unchanged "after the truncated tar" "$T/keep" "$T/keep.index.json"
expect_error "import of corrupt.tar over the tag good" 1 "" \
  "$DOCKLESS" import "$T/corrupt.tar" --output "oci:$T/keep:good"
check_layout_unchanged "after the corrupt tar over good" "$T/keep" "$T/keep.index.json"

# Unwritable outputs (root ignores permission bits: use a read-only mount and
# the immutable attribute).
touch "$T/afile"
expect_error "import into oci:FILE/layout (a regular file in the path)" 1 "" \
  "$DOCKLESS" import "$ROOTFS" --output "oci:$T/afile/layout:bad"
check_no_claim "import into a path under a file" "$T/afile/layout" bad

mkdir -p "$T/ro"
if mount --bind "$T/ro" "$T/ro" && at_exit umount -l "$T/ro" && mount -o remount,ro,bind "$T/ro"; then
  expect_error "import into a fresh layout on a read-only mount" 1 "" \
    "$DOCKLESS" import "$ROOTFS" --output "oci:$T/ro/layout:bad"
  check_no_claim "import into a read-only mount" "$T/ro/layout" bad
  umount -l "$T/ro"
else
  echo "  skip  read-only mount checks (cannot mount here)"
fi

mkdir -p "$T/rokeep"
cp -a "$T/keep/." "$T/rokeep/"
cp -- "$T/rokeep/index.json" "$T/rokeep.index.json" 2>/dev/null || true
if mount --bind "$T/rokeep" "$T/rokeep" && at_exit umount -l "$T/rokeep" && mount -o remount,ro,bind "$T/rokeep"; then
  expect_error "import into an existing layout mounted read-only" 1 "" \
    "$DOCKLESS" import "$ROOTFS" --output "oci:$T/rokeep:bad" --env CHANGED=1
  check_layout_unchanged "after the read-only layout" "$T/rokeep" "$T/rokeep.index.json"
  umount -l "$T/rokeep"
else
  echo "  skip  read-only layout checks (cannot mount here)"
fi

# index.json cannot be replaced (immutable): the blobs get written, the last
# step fails. The error must say so and the old index must stand.
mkdir -p "$T/imm"
cp -a "$T/keep/." "$T/imm/"
cp -- "$T/imm/index.json" "$T/imm.index.json" 2>/dev/null || true
if chattr +i "$T/imm/index.json" 2>/dev/null; then
  at_exit chattr -i "$T/imm/index.json"
  expect_error "import when index.json cannot be replaced" 1 "" \
    "$DOCKLESS" import "$ROOTFS" --output "oci:$T/imm:bad" --env CHANGED=1
  chattr -i "$T/imm/index.json"
  check_layout_unchanged "after the immutable index.json" "$T/imm" "$T/imm.index.json"
else
  echo "  skip  immutable index.json checks (chattr +i not supported here)"
fi

section "a killed import claims no tag, and the next run completes"
i=0
for delay in 0.1 0.3 0.6 0.9; do
  i=$((i + 1))
  layout=$T/killed$i
  "$DOCKLESS" import "$ROOTFS" --output "oci:$layout:t" >/dev/null 2>&1 &
  pid=$!
  sleep "$delay"
  kill -KILL "$pid" 2>/dev/null || true
  rc=0
  wait "$pid" 2>/dev/null || rc=$?
  if ((rc == 137)); then how="killed after ${delay}s"; else how="finished (exit $rc) before the kill at ${delay}s"; fi
  if grep -qxF t <<<"$(layout_tags "$layout")"; then
    # It got far enough to claim the tag: then the image must be complete.
    check "import $how: the tag it claims is a complete image (skopeo inspect)" skopeo inspect "oci:$layout:t"
    check "import $how: oci-image-tool validates it" oci-image-tool validate --type image --ref name=t "$layout"
  else
    pass "import $how: no index.json claims the tag"
  fi
  check_blobs_intact "import $how: every blob left is intact" "$layout"
  check "import $how: the same import run again succeeds" \
    "$DOCKLESS" import "$ROOTFS" --output "oci:$layout:t"
  check "import $how: the rerun's image validates" oci-image-tool validate --type image --ref name=t "$layout"
done
