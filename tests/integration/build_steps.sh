#!/usr/bin/env bash
# dockless build with [[step]]s on the debootstrap base (no uv, no venvs):
# apt-get install from a flat repository on 127.0.0.1 with an apt cache mount
# (the .deb stays in dockless's cache, not in the image), a useradd with a
# home dir, a removed base file (whiteout) and a replaced base dir (opaque), a
# hard link pair, a custom script from a --context (left out with --arg
# SETUP=), a secret read in a step (in no blob, report or log), labels from
# args. podman and umoci agree on the result. Rebuilds: nothing changed ->
# no step runs; a step edit reruns it and the later steps only; a source edit
# runs no step. The same spec in chroot mode. Bad input: one clear error, no
# half-made work dir, no layer recorded for a failed step.
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
source "$INTEG_DIR/build_steps_lib.sh"

steps_fixtures
steps_shared_checks

# ---------------------------------------------------------------- chroot
section "the same spec in chroot mode (root)"
sed -i '/^echo edited > \/etc\/edited$/d' "$PROJ/dockless.toml"
check_build "dockless build --isolation chroot" "$T/bc" "$PROJ" --isolation chroot --output "oci:$T/outc:latest" \
  --report "$T/rc.json" --cache-dir "$T/cache-chroot" --arg COMMIT=abc123 --context "custom=$T/ctx" --secret "id=tok,src=$T/secret.txt"
check_eq "chroot: 4 step runs (\"$LAST\")" 4 "$STEP_RUNS"
podman_run "oci:$T/outc:latest" bash -c "$PROBE" >"$T/pc.txt" 2>"$T/pc.err" ||
  failed "podman run oci:$T/outc:latest" "$(tail -n 10 "$T/pc.err")"
check_probe "podman (chroot build)" "$T/pc.txt"
check_no_work "after the chroot build" "$T/cache-chroot"
check_eq "chroot: the secret's value is in no blob, report or output" "" \
  "$(find_bytes "$SECRET_VALUE" "$T/outc" "$T/rc.json" "$T/bc.out" "$T/bc.err" "$T/cache-chroot")"

# ---------------------------------------------------------------- bad input
section "bad input: one clear error, nothing half-made"
BAD=$T/bad
BC=$T/cache-bad
mkdir -p "$BAD"
echo 'print("bad")' >"$BAD/app.py"
printf 'not-the-token' >"$T/wrong.txt"
# Steps "first" and "check token" (the secret step above: echoes a line, exit 3).
sed -n '1,/^\[\[step\]\]$/p' "$PROJ/dockless.toml" | sed '$d' >"$BAD/dockless.toml"
cat >>"$BAD/dockless.toml" <<EOF
[[step]]
name = "first"
run = "echo first > /opt/first"

$(sed -n '/^name = "secret"$/,$p' "$PROJ/dockless.toml" | sed 's/^name = "secret"$/[[step]]\nname = "check token"/')
EOF
BARGS=(--cache-dir "$BC" --context "custom=$T/ctx")

check_fails "a step that fails (exit 3)" "$T/e-step" 1 'check token' 'exit code 3' -- \
  "$BAD" --output "oci:$T/o-bad:latest" "${BARGS[@]}" --secret "id=tok,src=$T/wrong.txt"
check_contains "the failed step's output line is in the error output" "$(cat "$T/e-step.err")" "the token does not match"
check_no_work "after the failed step" "$BC"
check "after the failed step: no output written" test ! -e "$T/o-bad/index.json"
check_build "the fixed rerun (the right secret)" "$T/e-fixed" "$BAD" --output "oci:$T/o-bad:latest" "${BARGS[@]}" --secret "id=tok,src=$T/secret.txt"
check_eq "the fixed rerun runs the failed step again (and only it: \"$LAST\")" 1 "$STEP_RUNS"

sed 's/{ type = "secret", id = "tok" }/{ type = "nfs", target = "\/mnt\/x" }/' "$BAD/dockless.toml" >"$T/bad-mount.toml"
check_fails "an unknown mount type" "$T/e-mount" 1 'nfs' 'type' -- \
  "$BAD" -f "$T/bad-mount.toml" --output "oci:$T/o-mount:latest" "${BARGS[@]}" --secret "id=tok,src=$T/secret.txt"
check_no_work "after the unknown mount type" "$BC"

check_fails "a missing --context" "$T/e-ctx" 1 'custom' 'context' -- \
  "$PROJ" --output "oci:$T/o-ctx:latest" --cache-dir "$BC" --secret "id=tok,src=$T/secret.txt"
check_no_work "after the missing --context" "$BC"
check "after the missing --context: no output written" test ! -e "$T/o-ctx/index.json"

check_fails "a --secret file that does not exist" "$T/e-secret" 1 "$T/no-such-secret" -- \
  "$BAD" --output "oci:$T/o-secret:latest" "${BARGS[@]}" --secret "id=tok,src=$T/no-such-secret"
check_no_work "after the missing --secret file" "$BC"

check_fails "a malformed --secret (usage)" "$T/e-usage" 2 'secret' -- \
  "$BAD" --output "oci:$T/o-usage:latest" "${BARGS[@]}" --secret "tok"

check_build "an --arg nothing uses" "$T/e-arg" "$BAD" --output "oci:$T/o-arg:latest" "${BARGS[@]}" \
  --secret "id=tok,src=$T/secret.txt" --arg NOBODY_USES=1
check_contains "an --arg nothing uses: a warning on stderr naming it" "$(grep -i warning "$T/e-arg.err" || true)" NOBODY_USES
check_eq "the failed builds' output has no trace of the secret" "" \
  "$(find_bytes "$SECRET_VALUE" "$T"/e-*.out "$T"/e-*.err)"
