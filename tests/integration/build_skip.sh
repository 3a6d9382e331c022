#!/usr/bin/env bash
# dockless build --skip on the hermetic test project (NeMo RL's
# SKIP_VLLM_BUILD / SKIP_SGLANG_BUILD): a full build, then variants that skip
# vllm, vllm+sglang, a venv by name plus the cache extra. Each variant: the
# skipped venvs are gone, the packages only they used are gone from the
# shipped uv cache while shared ones stay, the remaining venvs still work,
# no uv run (derived from the full build), and every layer is one the full
# image already has, so pushing the variant uploads no layer. --skip of an
# unknown name is a usage error (exit 2).
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname -- "${BASH_SOURCE[0]}")/registry_lib.sh"
source "$(dirname -- "${BASH_SOURCE[0]}")/build_lib.sh"

build_setup
H=$REGISTRY_HOST
CACHE=$T/cache
BASE_N=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["rootfs"]["diff_ids"]))' "$T/base.config.json")

# bs NAME DESC ARGS...: builds $PROJ into oci:$T/NAME:app (+ ARGS), report $T/NAME.json.
bs() {
  local name=$1 desc=$2
  shift 2
  check_build "$desc" "$T/b-$name" "$PROJ" --set "image.base=$BASE_REF" \
    --output "oci:$T/$name:app" --report "$T/$name.json" --cache-dir "$CACHE" "$@"
  report_layers "$T/$name.json" | sed 's/^/    /'
}

# check_subset DESC VARIANT: every layer of the variant's manifest is a layer of the full one.
check_subset() {
  local extra
  extra=$(comm -23 <(manifest_layers "$T/$2" app | sort -u) <(manifest_layers "$T/full" app | sort -u))
  if [[ -z $extra && -n $(manifest_layers "$T/$2" app) ]]; then
    pass "$1 ($(manifest_layers "$T/$2" app | wc -l) layers, all in the full image)"
  else
    failed "$1" "layers of $2 that the full image lacks:" "$extra" \
      "(by name: $(report_get "$T/$2.json" '" | ".join(l["name"] + " " + l["digest"][7:19] for l in d["layers"])'))"
  fi
}

# push_report NAME MARK: what the registry received since MARK, as $T/NAME.push.json; prints a summary.
push_report() {
  local name=$1 mark=$2
  uploaded_blobs_since "$mark" >"$T/$name.uploads"
  python3 - "$T/$name" "$T/$name.uploads" "$T/$name.json" <<'PY'
import json, sys
layout, uploads, report = sys.argv[1:4]
blob = lambda d: json.load(open(layout + "/blobs/sha256/" + d.split(":")[1]))
idx = json.load(open(layout + "/index.json"))
man = blob(idx["manifests"][0]["digest"])
size = {man["config"]["digest"]: man["config"]["size"]}
what = {man["config"]["digest"]: "config"}
names = {l["digest"]: l["name"] for l in json.load(open(report)).get("layers", [])}
for l in man["layers"]:
    size[l["digest"]] = l["size"]
    what[l["digest"]] = names.get(l["digest"], "base layer")
rows = [l.split() for l in open(uploads) if l.strip()]
up = [{"digest": d, "action": a, "size": size.get(d), "what": what.get(d, "?")} for a, d in rows]
out = {"uploaded": up,
       "bytes_transferred": sum(u["size"] or 0 for u in up if u["action"] == "upload"),
       "image_bytes": sum(size.values()),
       "layers_uploaded": [u["what"] for u in up if u["what"] not in ("config",)]}
json.dump(out, open(layout + ".push.json", "w"), indent=1)
print("  push: %d blob(s) uploaded, %d bytes of %d; %s" % (
    len([u for u in up if u["action"] == "upload"]), out["bytes_transferred"], out["image_bytes"],
    ", ".join("%s %s (%s B)" % (u["action"], u["what"], u["size"]) for u in up) or "nothing"))
PY
}

section "full build"
M=$(registry_log_mark)
bs full "full build, pushed to $H/app:full" --tag "$H/app:full" --push
((CHECK_OK)) || fail "the full build failed; nothing else can be judged"
FULL=$DIGEST
push_report full "$M"
check_eq "full: fixture packages in the layers under $IMAGE_CACHE" \
  "$(sorted_words "${EXTRA_PACKAGES[@]}")" \
  "$(layout_layer_paths "$T/full" app | grep -Eo "$IMAGE_CACHE/archive-v0/[^/]+/[A-Za-z0-9_]+-[^/]+\.dist-info$" | sed -E 's#.*/([A-Za-z0-9_]+)-[^/]+\.dist-info$#\1#' | sort -u | tr '\n' ' ' | sed 's/ $//')"

# ------------------------------------------------------------------ --skip vllm
section "--skip vllm, derived from the full build"
M=$(registry_log_mark)
bs novllm "--skip vllm, pushed to $H/app:novllm" --skip vllm --tag "$H/app:novllm" --push
check_digests_differ "--skip vllm: a different image" "$FULL" "$DIGEST"
check_eq "--skip vllm: the report lists the skipped venv" '["app.workers.VllmWorker"]' "$(report_get "$T/novllm.json" 'd["skipped"]')"
check_eq "--skip vllm: uv_runs is 0 (derived from the full build)" "0" "$(report_get "$T/novllm.json" 'd["uv_runs"]')"
check_subset "--skip vllm: every layer is a layer of the full image" novllm
push_report novllm "$M"
check_eq "--skip vllm: the push uploaded no layer (all are in the registry already)" "[]" \
  "$(report_get "$T/novllm.push.json" 'd["layers_uploaded"]')"
check_digests_equal "--skip vllm: the registry has it at $H/app:novllm" "$(layout_manifest_digest "$T/novllm" app)" "$(remote_digest "$H/app:novllm")"
if image_meta "$T/m-novllm" "oci:$T/novllm:app"; then
  check_layer_order "--skip vllm: layer order and history" "$T/m-novllm" app.workers.VllmWorker
else
  failed "skopeo inspect oci:$T/novllm:app" "$(cat "$T/m-novllm.skopeo.err")"
fi
INCHECK_SYNC_FAIL="vllm:only_vllm" incheck novllm "oci:$T/novllm:app" app.workers.VllmWorker
check_eq "--skip vllm: fixture packages in the shipped cache (no only_vllm, vllm_dep; shared_vs stays)" \
  "$(sorted_words "${EXTRA_PACKAGES[base]}" "${EXTRA_PACKAGES[dev]}" "${EXTRA_PACKAGES[sglang]}" "${EXTRA_PACKAGES[mcore]}" "${EXTRA_PACKAGES[extra_cache]}")" \
  "$(cache_packages "$T/novllm.cache")"
check_eq "--skip vllm: no cache entry names only_vllm (any bucket)" "" "$(cache_mentions "$T/novllm.cache" only_vllm)"
check_eq "--skip vllm: no cache entry names vllm_dep (any bucket)" "" "$(cache_mentions "$T/novllm.cache" vllm_dep)"
check "--skip vllm: shared_vs (sglang uses it) is in the cache" grep -Eq 'shared_vs-1\.0\.0\.dist-info$' "$T/novllm.cache"

# ------------------------------------------------------------------ --skip vllm --skip sglang
section "--skip vllm --skip sglang"
M=$(registry_log_mark)
bs noinf "--skip vllm --skip sglang, pushed to $H/app:noinf" --skip vllm --skip sglang --tag "$H/app:noinf" --push
check_eq "--skip vllm --skip sglang: the report lists both" '["app.workers.SglangWorker", "app.workers.VllmWorker"]' \
  "$(report_get "$T/noinf.json" 'sorted(d["skipped"])')"
check_eq "--skip vllm --skip sglang: uv_runs is 0" "0" "$(report_get "$T/noinf.json" 'd["uv_runs"]')"
check_subset "--skip vllm --skip sglang: every layer is a layer of the full image" noinf
push_report noinf "$M"
check_eq "--skip vllm --skip sglang: the push uploaded no layer" "[]" "$(report_get "$T/noinf.push.json" 'd["layers_uploaded"]')"
INCHECK_SYNC_FAIL="vllm:only_vllm sglang:only_sglang" incheck noinf "oci:$T/noinf:app" app.workers.VllmWorker app.workers.SglangWorker
check_eq "--skip vllm --skip sglang: fixture packages in the shipped cache (shared_vs gone too)" \
  "$(sorted_words "${EXTRA_PACKAGES[base]}" "${EXTRA_PACKAGES[dev]}" "${EXTRA_PACKAGES[mcore]}" "${EXTRA_PACKAGES[extra_cache]}")" \
  "$(cache_packages "$T/noinf.cache")"
for p in only_vllm vllm_dep only_sglang shared_vs; do
  check_eq "--skip vllm --skip sglang: no cache entry names $p" "" "$(cache_mentions "$T/noinf.cache" "$p")"
done

# ------------------------------------------------------------------ by venv name, and the cache extra
section "--skip app.workers.McoreWorker --skip extra_cache (a venv by name, a cache extra by name)"
bs nomcore "--skip app.workers.McoreWorker --skip extra_cache" --skip app.workers.McoreWorker --skip extra_cache
check_eq "by name: uv_runs is 0" "0" "$(report_get "$T/nomcore.json" 'd["uv_runs"]')"
check_subset "by name: every layer is a layer of the full image" nomcore
INCHECK_NO_CACHE_EXTRA=1 INCHECK_SYNC_FAIL="mcore:only_mcore extra_cache:cache_only" \
  incheck nomcore "oci:$T/nomcore:app" app.workers.McoreWorker
check_eq "by name: fixture packages in the shipped cache (no only_mcore, no cache_only)" \
  "$(sorted_words "${EXTRA_PACKAGES[base]}" "${EXTRA_PACKAGES[dev]}" "${EXTRA_PACKAGES[vllm]}" "${EXTRA_PACKAGES[sglang]}")" \
  "$(cache_packages "$T/nomcore.cache")"

# ------------------------------------------------------------------ errors
section "--skip of a name nothing has"
check_build_fails "--skip nosuch" "$T/b-nosuch" 2 'nosuch' -- \
  "$PROJ" --set "image.base=$BASE_REF" --skip nosuch --output "oci:$T/nosuch:app" --cache-dir "$CACHE" -q
check "--skip nosuch wrote no output" test ! -e "$T/nosuch/index.json"

# ------------------------------------------------------------------ a skip on a fresh cache
section "--skip vllm on a fresh cache: the skipped venv is never made"
check_build "--skip vllm with a fresh cache dir" "$T/b-fresh" "$PROJ" --set "image.base=$BASE_REF" \
  --skip vllm --output "oci:$T/fresh:app" --report "$T/fresh.json" --cache-dir "$T/fresh-cache"
check_eq "fresh --skip vllm: uv_runs is 4 (3 venvs + the cache extra; not the vllm venv)" "4" "$(report_get "$T/fresh.json" 'd["uv_runs"]')"
check_eq "fresh --skip vllm: no path in the image's layers names only_vllm" "" \
  "$(layout_layer_paths "$T/fresh" app | grep -Ei 'only[-_]vllm' | head -n 5 || true)"
check_eq "fresh --skip vllm: no ray venv of the vllm worker" "" \
  "$(layout_layer_paths "$T/fresh" app | grep -F '/opt/ray_venvs/app.workers.VllmWorker' | head -n 3 || true)"

section "push sizes"
for n in full novllm noinf; do
  echo "  $n: $(report_get "$T/$n.push.json" '"%d bytes uploaded (%s)" % (d["bytes_transferred"], ", ".join(u["what"] for u in d["uploaded"]))')"
done
