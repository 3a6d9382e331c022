#!/usr/bin/env bash
# examples/kubernetes: what the Job runs, as closely as possible without a
# cluster. The builder image is built by dockless from
# examples/kubernetes/dockless.toml (the debootstrap fixture + dockless + uv +
# git, staged by stage-context.sh), pushed to a TLS registry with basic auth;
# each "pod" is a podman container of that image with the Job's args, env,
# security settings and volumes, all read from job.yaml (parsed with
# python3-yaml; only the registry/git refs are substituted through the Job's
# env, as a user would): fresh emptyDirs for /cache and /tmp, the registry's
# dockerconfigjson and CA mounted like the Secret and the ConfigMap.
#
# For each variant (userns: uid 1000, no capabilities, no-new-privileges,
# seccomp unconfined; chroot: root with the six listed capabilities):
#   pod 1  empty cache, empty registry cache: builds, pushes the image and the
#          cache; the image runs and imports the main venv's packages.
#   pod 2  another empty cache dir: every layer comes from the registry cache
#          ("remote"), no uv run, nothing asked of the package index, no layer
#          uploaded, the same manifest digest as pod 1.
#   pod 3  after a one-file commit: only the source layer misses; the
#          registry gained exactly that layer + the image config + manifest
#          (+ the cache's new config + manifest).
#   pod 4  after a uv.lock change: uv runs, seeded from the registry cache,
#          and downloads only the one new wheel.
# Nothing leaves 127.0.0.1 (registry, git over HTTP, package index).
#
# Needs root, podman with runc, python3-yaml, the debootstrap fixture.
# DOCKLESS_K8S_VARIANTS="userns" (or "chroot") runs one variant only.
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname -- "${BASH_SOURCE[0]}")/registry_lib.sh"
source "$(dirname -- "${BASH_SOURCE[0]}")/build_lib.sh"

K8S_DIR=$SOURCE_ROOT/examples/kubernetes
JOB_YAML=$K8S_DIR/job.yaml
VARIANTS=(${DOCKLESS_K8S_VARIANTS:-userns chroot})

[[ $(id -u) -eq 0 ]] || fail "must run as root (podman with runc)"
require "python3 can read YAML (Debian package python3-yaml)" python3 -c 'import yaml'
require "dockless build has --cache-from and --cache-to" \
  bash -c '"$1" build --help | grep -q -- "--cache-from" && "$1" build --help | grep -q -- "--cache-to"' _ "$DOCKLESS"

# ---------------------------------------------------------------- job.yaml -> podman

# job.py validate JOB_YAML: the Jobs are well-formed Kubernetes objects (only
# fields the API has, in the places it has them) and say what the README says.
# job.py podman JOB_YAML NAME POD_DIR [--env K=V]... [--file VOLNAME/KEY=HOSTFILE]...
#   [--image-host FROM=TO]: writes POD_DIR/argv (NUL-separated podman run
#   options, the image, and the Job's args with $(VAR) expanded the way the
#   kubelet does) and POD_DIR/report.path (the host path of --report FILE).
cat >"$T/job.py" <<'PY'
import json, os, re, shutil, sys
import yaml

def die(msg):
    print("job.py: " + msg, file=sys.stderr)
    sys.exit(1)

def jobs(path):
    return [d for d in yaml.safe_load_all(open(path)) if d]

# ---- validate: field names of the Kubernetes API (v1.32) for the objects used
K = lambda s: set(s.split())
ALLOWED = {
    "job": K("apiVersion kind metadata spec status"),
    "meta": K("name namespace labels annotations generateName ownerReferences finalizers"),
    "jobspec": K("activeDeadlineSeconds backoffLimit backoffLimitPerIndex completionMode completions managedBy "
                 "manualSelector maxFailedIndexes parallelism podFailurePolicy podReplacementPolicy selector "
                 "successPolicy suspend template ttlSecondsAfterFinished"),
    "template": K("metadata spec"),
    "podspec": K("activeDeadlineSeconds affinity automountServiceAccountToken containers dnsConfig dnsPolicy "
                 "enableServiceLinks ephemeralContainers hostAliases hostIPC hostNetwork hostPID hostUsers hostname "
                 "imagePullSecrets initContainers nodeName nodeSelector os overhead preemptionPolicy priority "
                 "priorityClassName readinessGates resourceClaims resources restartPolicy runtimeClassName "
                 "schedulerName schedulingGates securityContext serviceAccount serviceAccountName setHostnameAsFQDN "
                 "shareProcessNamespace subdomain terminationGracePeriodSeconds tolerations "
                 "topologySpreadConstraints volumes"),
    "podsc": K("appArmorProfile fsGroup fsGroupChangePolicy runAsGroup runAsNonRoot runAsUser seLinuxChangePolicy "
               "seLinuxOptions seccompProfile supplementalGroups supplementalGroupsPolicy sysctls windowsOptions"),
    "container": K("args command env envFrom image imagePullPolicy lifecycle livenessProbe name ports readinessProbe "
                   "resizePolicy resources restartPolicy securityContext startupProbe stdin stdinOnce "
                   "terminationMessagePath terminationMessagePolicy tty volumeDevices volumeMounts workingDir"),
    "csc": K("allowPrivilegeEscalation appArmorProfile capabilities privileged procMount readOnlyRootFilesystem "
             "runAsGroup runAsNonRoot runAsUser seLinuxOptions seccompProfile windowsOptions"),
    "caps": K("add drop"),
    "profile": K("type localhostProfile"),
    "env": K("name value valueFrom"),
    "resources": K("limits requests claims"),
    "mount": K("name mountPath readOnly recursiveReadOnly subPath subPathExpr mountPropagation"),
    "volume": K("name emptyDir secret configMap"),
    "emptyDir": K("medium sizeLimit"),
    "secret": K("secretName items defaultMode optional"),
    "configMap": K("name items defaultMode optional"),
    "item": K("key path mode"),
}
CAPS = K("AUDIT_CONTROL AUDIT_READ AUDIT_WRITE BLOCK_SUSPEND BPF CHECKPOINT_RESTORE CHOWN DAC_OVERRIDE "
         "DAC_READ_SEARCH FOWNER FSETID IPC_LOCK IPC_OWNER KILL LEASE LINUX_IMMUTABLE MAC_ADMIN MAC_OVERRIDE MKNOD "
         "NET_ADMIN NET_BIND_SERVICE NET_BROADCAST NET_RAW PERFMON SETFCAP SETGID SETPCAP SETUID SYSLOG SYS_ADMIN "
         "SYS_BOOT SYS_CHROOT SYS_MODULE SYS_NICE SYS_PACCT SYS_PTRACE SYS_RAWIO SYS_RESOURCE SYS_TIME "
         "SYS_TTY_CONFIG WAKE_ALARM")
# capabilities the "baseline" Pod Security Standard lets a pod add
BASELINE_CAPS = K("AUDIT_WRITE CHOWN DAC_OVERRIDE FOWNER FSETID KILL MKNOD NET_BIND_SERVICE SETFCAP SETGID "
                  "SETPCAP SETUID SYS_CHROOT")
QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")

def keys(obj, kind, where, errors):
    if not isinstance(obj, dict):
        errors.append("%s: expected a mapping" % where)
        return {}
    for k in obj:
        if k not in ALLOWED[kind]:
            errors.append("%s: unknown field %r" % (where, k))
    return obj

def profile(p, where, errors):
    keys(p, "profile", where, errors)
    if p.get("type") not in ("RuntimeDefault", "Unconfined", "Localhost"):
        errors.append("%s.type: %r is not RuntimeDefault, Unconfined or Localhost" % (where, p.get("type")))

def validate(path):
    errors = []
    docs = jobs(path)
    names = []
    for d in docs:
        n = (d.get("metadata") or {}).get("name", "?")
        names.append(n)
        w = "Job " + n
        keys(d, "job", w, errors)
        if d.get("apiVersion") != "batch/v1" or d.get("kind") != "Job":
            errors.append("%s: not apiVersion batch/v1, kind Job" % w)
        keys(d.get("metadata") or {}, "meta", w + ".metadata", errors)
        spec = keys(d.get("spec") or {}, "jobspec", w + ".spec", errors)
        tpl = keys(spec.get("template") or {}, "template", w + ".spec.template", errors)
        keys(tpl.get("metadata") or {}, "meta", w + ".spec.template.metadata", errors)
        ps = keys(tpl.get("spec") or {}, "podspec", w + ".pod", errors)
        if ps.get("restartPolicy") not in ("Never", "OnFailure"):
            errors.append("%s.pod.restartPolicy must be Never or OnFailure for a Job" % w)
        psc = keys(ps.get("securityContext") or {}, "podsc", w + ".pod.securityContext", errors)
        for p in ("seccompProfile", "appArmorProfile"):
            if p in psc:
                profile(psc[p], w + ".pod.securityContext." + p, errors)
        vols = {}
        for i, v in enumerate(ps.get("volumes") or []):
            keys(v, "volume", "%s.pod.volumes[%d]" % (w, i), errors)
            kinds = [k for k in v if k != "name"]
            if len(kinds) != 1:
                errors.append("%s.pod.volumes[%d]: exactly one volume source" % (w, i))
                continue
            keys(v[kinds[0]] or {}, kinds[0], "%s.pod.volumes[%d].%s" % (w, i, kinds[0]), errors)
            for j, it in enumerate((v[kinds[0]] or {}).get("items") or []):
                keys(it, "item", "%s.pod.volumes[%d].items[%d]" % (w, i, j), errors)
            vols[v.get("name")] = v
        cs = ps.get("containers") or []
        if len(cs) != 1:
            errors.append("%s: expected one container" % w)
        for c in cs:
            cw = "%s.containers[%s]" % (w, c.get("name"))
            keys(c, "container", cw, errors)
            for e in c.get("env") or []:
                keys(e, "env", cw + ".env", errors)
            res = keys(c.get("resources") or {}, "resources", cw + ".resources", errors)
            for part in ("requests", "limits"):
                for rk, rv in (res.get(part) or {}).items():
                    if rk not in ("cpu", "memory", "ephemeral-storage") or not QUANTITY.match(str(rv)):
                        errors.append("%s.resources.%s.%s: %r" % (cw, part, rk, rv))
            csc = keys(c.get("securityContext") or {}, "csc", cw + ".securityContext", errors)
            for p in ("seccompProfile", "appArmorProfile"):
                if p in csc:
                    profile(csc[p], cw + ".securityContext." + p, errors)
            caps = keys(csc.get("capabilities") or {}, "caps", cw + ".securityContext.capabilities", errors)
            for cap in (caps.get("add") or []) + [x for x in caps.get("drop") or [] if x != "ALL"]:
                if cap not in CAPS:
                    errors.append("%s: unknown capability %r (no CAP_ prefix in Kubernetes)" % (cw, cap))
            if csc.get("privileged"):
                errors.append("%s: privileged (the point of the example is not to be)" % cw)
            if csc.get("allowPrivilegeEscalation") is not False:
                errors.append("%s: allowPrivilegeEscalation must be false" % cw)
            if caps.get("drop") != ["ALL"]:
                errors.append("%s: capabilities.drop must be [ALL]" % cw)
            bad = [x for x in caps.get("add") or [] if x not in BASELINE_CAPS]
            if bad:
                errors.append("%s: adds capabilities beyond the baseline Pod Security Standard: %r" % (cw, bad))
            for m in c.get("volumeMounts") or []:
                keys(m, "mount", cw + ".volumeMounts", errors)
                if m.get("name") not in vols:
                    errors.append("%s: volumeMount %r names no volume" % (cw, m.get("name")))
            a = c.get("args") or []
            def val(flag):
                return [a[i + 1] for i, x in enumerate(a[:-1]) if x == flag]
            if a[:1] != ["build"]:
                errors.append("%s: args must start with 'build'" % cw)
            for flag in ("--git", "--git-ref", "--tag", "--cache-from", "--cache-to", "--cache-dir", "--authfile",
                         "--ca-cert", "--isolation", "--report"):
                if len(val(flag)) != 1:
                    errors.append("%s: args need one %s VALUE" % (cw, flag))
            if "--push" not in a:
                errors.append("%s: args need --push" % cw)
            if val("--cache-from") != val("--cache-to"):
                errors.append("%s: --cache-from and --cache-to must be the same ref" % cw)
            if val("--cache-from") == val("--tag"):
                errors.append("%s: the cache ref must not be the image's tag" % cw)
    for want in ("app-build-userns", "app-build-chroot"):
        if want not in names:
            errors.append("no Job named %s" % want)
    # The two Jobs run the same build: args equal but the --isolation value.
    by = {(d.get("metadata") or {}).get("name"): d for d in docs}
    if "app-build-userns" in by and "app-build-chroot" in by:
        def norm(d):
            c = d["spec"]["template"]["spec"]["containers"][0]
            a = list(c.get("args") or [])
            if "--isolation" in a:
                a[a.index("--isolation") + 1] = "<isolation>"
            return a, c.get("env"), c.get("volumeMounts"), d["spec"]["template"]["spec"].get("volumes")
        u, ch = norm(by["app-build-userns"]), norm(by["app-build-chroot"])
        for i, what in enumerate(("args (but --isolation)", "env", "volumeMounts", "volumes")):
            if u[i] != ch[i]:
                errors.append("the two Jobs differ in %s" % what)
    if errors:
        die("\n".join(errors))
    print("%d Jobs: %s" % (len(docs), ", ".join(names)))

# ---- podman
def expand(s, env):
    # The kubelet's $(VAR) expansion: defined names are replaced, $$ is a
    # literal $, anything else stays as it is.
    def sub(m):
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))
    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)", sub, s)

def podman(path, name, pod_dir, env_over, files, image_hosts):
    docs = {(d.get("metadata") or {}).get("name"): d for d in jobs(path)}
    if name not in docs:
        die("no Job %s in %s" % (name, path))
    ps = docs[name]["spec"]["template"]["spec"]
    (c,) = ps["containers"]
    psc, csc = ps.get("securityContext") or {}, c.get("securityContext") or {}
    eff = dict(psc)
    eff.update({k: v for k, v in csc.items() if k in psc or k in ("runAsUser", "runAsGroup", "runAsNonRoot",
                                                                   "seccompProfile", "appArmorProfile")})
    opts = []
    uid, gid, fs_group = eff.get("runAsUser"), eff.get("runAsGroup"), psc.get("fsGroup")
    if eff.get("runAsNonRoot") and uid in (None, 0):
        die("runAsNonRoot with uid %r: the kubelet would refuse to start it" % uid)
    if uid is not None:
        opts += ["--user", "%d:%d" % (uid, gid if gid is not None else uid)]
    if fs_group is not None and fs_group != gid:
        opts += ["--group-add", str(fs_group)]
    sec = (eff.get("seccompProfile") or {}).get("type", "RuntimeDefault")
    if sec == "Unconfined":
        opts += ["--security-opt", "seccomp=unconfined"]
    elif sec != "RuntimeDefault":
        die("seccompProfile %s: not emulated" % sec)
    aa = (eff.get("appArmorProfile") or {}).get("type", "RuntimeDefault")
    if aa == "Unconfined":
        opts += ["--security-opt", "apparmor=unconfined"]
    elif aa != "RuntimeDefault":
        die("appArmorProfile %s: not emulated" % aa)
    if csc.get("allowPrivilegeEscalation") is False:
        opts += ["--security-opt", "no-new-privileges"]
    if csc.get("privileged"):
        die("privileged: not emulated (and not wanted)")
    if csc.get("procMount", "Default") != "Default" or ps.get("hostUsers") is False:
        die("procMount/hostUsers: not emulated")
    caps = csc.get("capabilities") or {}
    for x in caps.get("drop") or []:
        opts += ["--cap-drop", x]
    for x in caps.get("add") or []:
        opts += ["--cap-add", x]
    if csc.get("readOnlyRootFilesystem"):
        opts += ["--read-only", "--read-only-tmpfs=false"]

    env = {}
    names = [e["name"] for e in c.get("env") or []]
    for k in env_over:
        if k not in names:
            die("--env %s: the Job has no env %s (it has %s)" % (k, k, names))
    for e in c.get("env") or []:
        if "valueFrom" in e:
            die("env %s: valueFrom not emulated" % e["name"])
        env[e["name"]] = expand(str(env_over.get(e["name"], e.get("value", ""))), env)
    for k, v in env.items():
        opts += ["--env", "%s=%s" % (k, v)]

    vols = {v["name"]: v for v in ps.get("volumes") or []}
    mounts = {}
    for m in c.get("volumeMounts") or []:
        if m.get("subPath") or m.get("subPathExpr"):
            die("subPath: not emulated")
        v = vols[m["name"]]
        host = os.path.join(pod_dir, "vol-" + m["name"])
        ro = bool(m.get("readOnly"))
        if "emptyDir" in v:
            os.makedirs(host)
            # kubelet: 0777, and with fsGroup the group and setgid bit
            if fs_group is not None:
                os.chown(host, 0, fs_group)
                os.chmod(host, 0o2777)
            else:
                os.chmod(host, 0o777)
        elif "secret" in v or "configMap" in v:
            src = v.get("secret") or v.get("configMap")
            obj = src.get("secretName") or src.get("name")
            os.makedirs(host)
            items = src.get("items") or [{"key": k.split("/", 1)[1], "path": k.split("/", 1)[1]}
                                         for k in files if k.startswith(obj + "/")]
            for it in items:
                key = obj + "/" + it["key"]
                if key not in files:
                    die("volume %s needs %s: pass --file %s=HOSTFILE" % (m["name"], key, key))
                dst = os.path.join(host, it["path"])
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                shutil.copyfile(files[key], dst)
                os.chmod(dst, it.get("mode", src.get("defaultMode", 0o644)))
                if fs_group is not None:
                    os.chown(dst, 0, fs_group)
            ro = True  # the kubelet mounts secrets and config maps read-only
        else:
            die("volume %s: kind not emulated" % m["name"])
        mounts[m["mountPath"]] = host
        opts += ["--volume", "%s:%s%s" % (host, m["mountPath"], ":ro" if ro else "")]

    image = c["image"]
    for frm, to in image_hosts:
        if image.startswith(frm + "/"):
            image = to + image[len(frm):]
    if c.get("command"):
        opts += ["--entrypoint", json.dumps([expand(x, env) for x in c["command"]])]
    args = [expand(str(x), env) for x in c.get("args") or []]
    for x in args + list(env.values()) + [image]:
        if ".example" in x:
            die("%r still names an example host: substitute it (--env / --image-host)" % x)
    with open(os.path.join(pod_dir, "argv"), "wb") as f:
        for x in opts + [image] + args:
            f.write(x.encode() + b"\0")
    rep = args[args.index("--report") + 1] if "--report" in args else ""
    host_rep = ""
    for mp, h in mounts.items():
        if rep.startswith(mp.rstrip("/") + "/"):
            host_rep = h + rep[len(mp.rstrip("/")):]
    with open(os.path.join(pod_dir, "report.path"), "w") as f:
        f.write(host_rep)
    res = c.get("resources") or {}
    print("pod %s: user %s, seccomp %s, apparmor %s, caps -%s +%s, read-only root %s; Job resources %s (not enforced here)"
          % (name, uid, sec, aa, caps.get("drop"), caps.get("add") or [], bool(csc.get("readOnlyRootFilesystem")),
             json.dumps(res, sort_keys=True)))

mode = sys.argv[1]
if mode == "validate":
    validate(sys.argv[2])
elif mode == "podman":
    path, name, pod_dir = sys.argv[2:5]
    env_over, files, image_hosts = {}, {}, []
    rest = sys.argv[5:]
    while rest:
        flag, value = rest[0], rest[1]
        rest = rest[2:]
        k, _, v = value.partition("=")
        if flag == "--env":
            env_over[k] = v
        elif flag == "--file":
            files[k] = v
        elif flag == "--image-host":
            image_hosts.append((k, v))
        else:
            die("unknown option " + flag)
    podman(path, name, pod_dir, env_over, files, image_hosts)
else:
    die("unknown mode " + mode)
PY

section "job.yaml"
check "job.yaml: two well-formed Jobs (API fields, security settings, args)" python3 "$T/job.py" validate "$JOB_YAML"
python3 "$T/job.py" validate "$JOB_YAML" 2>&1 | sed 's/^/  /' || true

# ---------------------------------------------------------------- fixtures

section "fixtures: TLS registry with basic auth, base image, package index, git over HTTP"
start_registry tls-basic reg
CREDS=$REGISTRY_USER:$REGISTRY_PASS
REG_OPTS=(--authfile "$REGISTRY_AUTH_JSON" --ca-cert "$REGISTRY_CA")
SKOPEO_OPTS=(--creds "$CREDS" --cert-dir "$REGISTRY_CERT_DIR")
ROOTFS=$(fixture_rootfs) || fail "the debootstrap fixture is not available"
require "dockless import $ROOTFS -> oci:$T/base:py" \
  "$DOCKLESS" import "$ROOTFS" --output "oci:$T/base:py" --cmd '["python3"]'
BASE_REF=$REGISTRY_HOST/base/debian-py:12
require "dockless push the base to $BASE_REF (auth + CA)" \
  "$DOCKLESS" push "oci:$T/base:py" "$BASE_REF" "${REG_OPTS[@]}" --cache-dir "$T/import-cache" -q
start_index

# The git server: the bare repositories under $T/git over plain ("dumb")
# HTTP, as files: the pods' git fetches them with git-remote-http, as it
# would an https:// URL.
mkdir -p "$T/git"
timeout --foreground 3600 python3 "$FIXTURES/index_server.py" "$T/git" --port 0 \
  --port-file "$T/git.port" --log "$T/git.log" >"$T/git.out" 2>"$T/git.err" &
at_exit kill "$!"
for ((i = 0; i < 100; i++)); do [[ -s $T/git.port ]] && break; sleep 0.1; done
[[ -s $T/git.port ]] || fail "the git HTTP server did not start" "$(cat "$T/git.err")"
GIT_HTTP=http://127.0.0.1:$(tr -d '\n' <"$T/git.port")
echo "git: $GIT_HTTP"
export GIT_AUTHOR_NAME=tester GIT_AUTHOR_EMAIL=tester@example.invalid
export GIT_COMMITTER_NAME=tester GIT_COMMITTER_EMAIL=tester@example.invalid
export GIT_CONFIG_GLOBAL=$T/gitconfig GIT_CONFIG_NOSYSTEM=1
: >"$GIT_CONFIG_GLOBAL"

# ---------------------------------------------------------------- the builder image

section "the builder image (dockless build -f examples/kubernetes/dockless.toml), pushed like a cluster would pull it"
# Where the Jobs pull it from (one image for both), on the test registry.
BUILDER_REF=$(python3 -c '
import sys, yaml
imgs = {d["spec"]["template"]["spec"]["containers"][0]["image"] for d in yaml.safe_load_all(open(sys.argv[1])) if d}
assert len(imgs) == 1, imgs
print(imgs.pop().replace("registry.example:5000/", sys.argv[2] + "/", 1))' "$JOB_YAML" "$REGISTRY_HOST") ||
  fail "job.yaml: the two Jobs do not run one builder image"
BUILDER_VERSION=$(bash "$K8S_DIR/stage-context.sh" "$T/builder-ctx" --dockless "$DOCKLESS" 2>"$T/stage.err") ||
  fail "stage-context.sh failed" "$(cat "$T/stage.err")"
echo "  staged $(find "$T/builder-ctx/lib" -type f | wc -l) libraries, dockless $BUILDER_VERSION, in $T/builder-ctx"
BUILDER_ARGS=(-f "$K8S_DIR/dockless.toml" --set "image.base=oci:$T/base:py" --context "builder=$T/builder-ctx"
  --arg "VERSION=$BUILDER_VERSION")
t0=$SECONDS
BUILDER_DIGEST=$("$DOCKLESS" build "${BUILDER_ARGS[@]}" --cache-dir "$T/builder-cache" --output "oci:$T/builder:test" \
  --tag "$BUILDER_REF" --push "${REG_OPTS[@]}" 2>"$T/builder.err") || true
check_digests_equal "dockless build -f examples/kubernetes/dockless.toml --tag $BUILDER_REF --push ($((SECONDS - t0))s: $(tail -n 1 "$T/builder.err")): the registry has the digest it printed" \
  "$BUILDER_DIGEST" "$(remote_digest "$BUILDER_REF" "${SKOPEO_OPTS[@]}")"
((CHECK_OK)) || fail "no builder image; nothing else can run" "$(tail -n 20 "$T/builder.err")"
check_digests_equal "the builder image again, with an empty cache dir: the same image digest (reproducible)" \
  "$BUILDER_DIGEST" \
  "$("$DOCKLESS" build "${BUILDER_ARGS[@]}" --cache-dir "$T/builder-cache2" --output "oci:$T/builder2:test" 2>"$T/builder2.err")"
# A library the base lacks and the context misses: the build fails, naming it.
cp -a "$T/builder-ctx" "$T/builder-ctx-bad" && rm -f "$T/builder-ctx-bad/lib/libisal.so.2"
rc=0
"$DOCKLESS" build "${BUILDER_ARGS[@]/#builder=*/builder=$T/builder-ctx-bad}" --cache-dir "$T/builder-cache" \
  --output "oci:$T/builder-bad:test" >"$T/builder-bad.out" 2>"$T/builder-bad.err" || rc=$?
check_ne "the builder image without libisal in the context: the build fails" 0 "$rc"
check_contains "the builder image without libisal in the context: the error line names it" \
  "$(tail -n 1 "$T/builder-bad.err")" "libisal.so.2 => not found"
printf '%s\n' "$BUILDER_REF" >>"$T/.podman-images"
require "podman pull $BUILDER_REF" podman pull -q "${SKOPEO_OPTS[@]}" "$BUILDER_REF"
skopeo inspect --config "oci:$T/builder:test" >"$T/builder.config.json"
check_python "builder image: entrypoint dockless, user 1000, HOME" "$T/builder.config.json" '
c = d["config"]
assert c.get("Entrypoint") == ["/usr/local/bin/dockless"], c.get("Entrypoint")
assert c.get("User") == "1000:1000", c.get("User")
assert "HOME=/home/dockless" in c.get("Env", []), c.get("Env")'
check_eq "builder image: dockless --version as user 1000 (the version its label names)" \
  "dockless $(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["config"]["Labels"]["org.opencontainers.image.version"])' "$T/builder.config.json")" \
  "$(podman --runtime runc run --rm --network none "$BUILDER_REF" --version 2>"$T/builder-version.err")"
check_eq "builder image: HOME is writable by user 1000" "ok" \
  "$(podman --runtime runc run --rm --network none --entrypoint sh "$BUILDER_REF" -c 'touch "$HOME/x" && echo ok' 2>&1)"
check_contains "builder image: git and its http helper load" \
  "$(podman --runtime runc run --rm --network none --entrypoint sh "$BUILDER_REF" -c 'git --version; /usr/lib/git-core/git-remote-http 2>&1 | head -n 1' 2>&1)" \
  "git version"
check_contains "builder image: uv (shipped by dockless build) runs as user 1000" \
  "$(podman --runtime runc run --rm --network none --entrypoint uv "$BUILDER_REF" --version 2>&1)" "uv $(uv --version | cut -d' ' -f2)"

# ---------------------------------------------------------------- pods

# pod LABEL VARIANT: one run of the Job app-build-VARIANT, with fresh
# emptyDirs. Sets POD_RC, POD_DIGEST (its stdout), POD_REPORT (the report's
# host path), and leaves $T/pods/LABEL.{out,err}.
pod() {
  local label=$1 v=$2 dir=$T/pods/$1 argv=()
  mkdir -p "$dir"
  if ! python3 "$T/job.py" podman "$JOB_YAML" "app-build-$v" "$dir" \
    --env "GIT_URL=$GIT_URL" --env "GIT_REF=main" --env "IMAGE=$IMAGE" --env "CACHE_REF=$CACHE_REF" \
    --file "registry-auth/.dockerconfigjson=$REGISTRY_AUTH_JSON" --file "registry-ca/ca.crt=$REGISTRY_CA" \
    --image-host "registry.example:5000=$REGISTRY_HOST" >"$dir.job" 2>&1; then
    POD_RC=99 POD_DIGEST="" POD_REPORT=""
    failed "$label: job.yaml -> podman" "$(cat "$dir.job")"
    return 0
  fi
  sed 's/^/  /' "$dir.job"
  mapfile -d '' argv <"$dir/argv"
  POD_REPORT=$(cat "$dir/report.path")
  local t0=$SECONDS
  POD_RC=0
  podman --runtime runc run --rm --network host --pull never "${argv[@]}" >"$T/pods/$label.out" 2>"$T/pods/$label.err" || POD_RC=$?
  POD_DIGEST=$(tr -d '\n' <"$T/pods/$label.out")
  if ((POD_RC == 0)) && [[ $POD_DIGEST =~ ^sha256:[0-9a-f]{64}$ ]]; then
    pass "$label: the pod's dockless build exits 0 and prints the digest ($((SECONDS - t0))s)"
  else
    failed "$label: the pod's dockless build exits 0 and prints the digest" "podman run $(_quote "${argv[@]}")" \
      "exit status $POD_RC, stdout $(_show "$(head -c 300 "$T/pods/$label.out")")" "stderr (tail):" "$(tail -n 25 "$T/pods/$label.err")"
  fi
  if [[ -s $POD_REPORT ]]; then
    report_layers "$POD_REPORT" | sed 's/^/    /'
    echo "    uv_runs: $(report_get "$POD_REPORT" 'd["uv_runs"]')"
  fi
}

# report_check DESC PYCODE: check_python on the last pod's report.
report_check() {
  if [[ -s $POD_REPORT ]]; then
    check_python "$1" "$POD_REPORT" "$2"
  else
    failed "$1" "the pod wrote no report (${POD_REPORT:-no --report in job.yaml})"
  fi
}

# registry_repo_blobs REPO: what the registry holds for REPO: its blob links
# (layers and configs) and its manifest revisions. (The blob store itself is
# shared by every repository, so the other variant's identical source layer
# would hide this one's there.)
registry_repo_blobs() {
  local r=$REGISTRY_STORAGE/docker/registry/v2/repositories/$1
  find "$r/_layers/sha256" "$r/_manifests/revisions/sha256" -mindepth 1 -maxdepth 1 -type d -printf 'sha256:%f\n' 2>/dev/null | sort -u
}
# The raw manifest of REF (skopeo, with the registry's credentials and CA).
raw_manifest() { skopeo inspect --raw "${SKOPEO_OPTS[@]}" "docker://$1"; }
# in_image REF CMD...: runs CMD in the pushed image REF (pulled with podman).
in_image() {
  local ref=$1
  shift
  printf '%s\n' "$ref" >>"$T/.podman-images"
  podman pull -q "${SKOPEO_OPTS[@]}" "$ref" >"$T/podman-pull.out" 2>"$T/podman-pull.err" || { cat "$T/podman-pull.err"; return 1; }
  # By id too: a later pull of the same tag leaves this one untagged.
  cat "$T/podman-pull.out" >>"$T/.podman-images"
  podman --runtime runc run --rm --network none "$ref" "$@"
}
# git_publish WORKTREE BARE: pushes main to the bare repository the HTTP server serves.
git_publish() {
  git -C "$1" push -q "$2" main && git -C "$2" update-server-info
}

run_variant() {
  local v=$1
  local W=$T/work-$v BARE=$T/git/team/app-$v.git
  IMAGE=$REGISTRY_HOST/team/app-$v:main
  CACHE_REF=$REGISTRY_HOST/team/app-$v:buildcache
  GIT_URL=$GIT_HTTP/team/app-$v.git

  section "$v: the project in git ($GIT_URL)"
  make_test_project "$W"
  # The project names its base in dockless.toml, as a real one would.
  python3 - "$W/dockless.toml" "$BASE_REF" <<'EOF'
import sys
p, base = sys.argv[1:]
s = open(p).read()
assert "\n[image]\n" in s
open(p, "w").write(s.replace("\n[image]\n", '\n[image]\nbase = "%s"\n' % base, 1))
EOF
  require "$v: git init, commit, bare repository" bash -c '
    set -e
    git -C "$1" init -q -b main
    git -C "$1" add -A
    git -C "$1" commit -q -m "the project"
    mkdir -p "$(dirname "$2")"
    git init -q --bare "$2"' _ "$W" "$BARE"
  require "$v: publish main" git_publish "$W" "$BARE"
  local C1
  C1=$(git -C "$W" rev-parse HEAD)

  # ---- pod 1
  section "$v pod 1: empty cache dir, no registry cache yet"
  local before_cache
  before_cache=$(raw_manifest "$CACHE_REF" 2>/dev/null || true)
  check_eq "$v pod 1: the cache ref does not exist yet" "" "$before_cache"
  pod "$v-pod1" "$v"
  local D1=$POD_DIGEST
  ((POD_RC == 0)) || { failed "$v: pod 1 failed; the other pods cannot mean anything"; return 0; }
  report_check "$v pod 1: every layer built here (cache miss), uv ran" '
assert d["uv_runs"] > 0, d["uv_runs"]
bad = [(l["name"], l["cache"]) for l in d["layers"] if l["cache"] != "miss"]
assert not bad, bad'
  check_eq "$v pod 1: the report names the commit" "$C1" "$(report_get "$POD_REPORT" 'd.get("git_commit")')"
  check_digests_equal "$v pod 1: $IMAGE in the registry is the digest pod 1 printed" "$D1" \
    "$(remote_digest "$IMAGE" "${SKOPEO_OPTS[@]}")"
  raw_manifest "$CACHE_REF" >"$T/$v-cache1.json" 2>"$T/$v-cache1.err" || true
  check_python "$v pod 1: $CACHE_REF is a dockless build cache holding every layer pod 1 built" "$T/$v-cache1.json" '
import os
assert d["config"]["mediaType"] == "application/vnd.dockless.build-cache.v1+json", d["config"]
rep = json.load(open(os.environ["POD_REPORT"]))
built = {l["digest"] for l in rep["layers"]}
have = {l["digest"] for l in d["layers"]}
assert built <= have, "layers not in the cache: %r" % sorted(built - have)'
  check_eq "$v pod 1: the image runs; python is the main venv's and imports its packages" \
    "/opt/app_venv common_a dev_tool" \
    "$(in_image "$IMAGE" python -c 'import sys, common_a, dev_tool; print(sys.prefix, common_a.VALUE, dev_tool.VALUE)' 2>&1)"
  raw_manifest "$IMAGE" >"$T/$v-m1.json"

  # ---- pod 2
  section "$v pod 2: another empty cache dir (another node): everything from the registry"
  local RM IM blobs_before
  RM=$(registry_log_mark)
  IM=$(index_mark)
  pod "$v-pod2" "$v"
  check_digests_equal "$v pod 2: the same manifest digest as pod 1" "$D1" "$POD_DIGEST"
  report_check "$v pod 2: no uv run" 'assert d["uv_runs"] == 0, d["uv_runs"]'
  report_check "$v pod 2: every layer is a cache hit from the registry (\"remote\")" '
bad = [(l["name"], l["cache"]) for l in d["layers"] if l["cache"] != "remote"]
assert d["layers"] and not bad, bad'
  check_eq "$v pod 2: nothing asked of the package index" "" "$(tail -n "+$((IM + 1))" "$INDEX_LOG")"
  local cfg2
  cfg2=$(raw_manifest "$CACHE_REF" | python3 -c 'import json, sys; print(json.load(sys.stdin)["config"]["digest"])' 2>/dev/null || true)
  check_eq "$v pod 2: no blob uploaded to the registry (but the cache index, if it changed)" "" \
    "$(uploaded_blobs_since "$RM" | awk '$1 == "upload" {print $2}' | grep -vxF -- "${cfg2:-none}" || true)"
  echo "  pod 2 fetched $(registry_log_since "$RM" | grep -cE '"GET /v2/[^ ]*/blobs/sha256:' || true) blobs from the registry"

  # ---- pod 3
  section "$v pod 3: one source file changes (a new commit)"
  printf '\n# edited by kubernetes_job.sh\n' >>"$W/src/app/workers.py"
  git -C "$W" commit -q -am "edit workers.py"
  require "$v: publish the edit" git_publish "$W" "$BARE"
  blobs_before=$(registry_repo_blobs "team/app-$v")
  RM=$(registry_log_mark)
  pod "$v-pod3" "$v"
  local D3=$POD_DIGEST
  check_digests_differ "$v pod 3: a new manifest digest" "$D1" "$D3"
  report_check "$v pod 3: exactly one layer missed, the source; every other came from the registry" '
missed = [l["name"] for l in d["layers"] if l["cache"] == "miss"]
assert len(missed) == 1 and missed[0].startswith("source"), "missed: %r" % missed
other = [(l["name"], l["cache"]) for l in d["layers"] if l["cache"] not in ("miss", "remote")]
assert not other, other'
  report_check "$v pod 3: no uv run" 'assert d["uv_runs"] == 0, d["uv_runs"]'
  raw_manifest "$IMAGE" >"$T/$v-m3.json"
  M1=$T/$v-m1.json check_python "$v pod 3: its layer list is pod 1's with only the last (source) layer replaced" "$T/$v-m3.json" '
import os
a = [l["digest"] for l in json.load(open(os.environ["M1"]))["layers"]]
b = [l["digest"] for l in d["layers"]]
assert len(a) == len(b), (len(a), len(b))
diff = [i for i in range(len(a)) if a[i] != b[i]]
assert diff == [len(b) - 1], "layers that differ: %r of %d" % (diff, len(b))'
  # What the registry gained: the source layer, the image's config and
  # manifest, and the cache artifact's new index (config) and manifest.
  local src cfg3 cache3 cachecfg3 gained
  src=$(report_get "$POD_REPORT" '[l["digest"] for l in d["layers"] if l["cache"] == "miss"][0]')
  cfg3=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["config"]["digest"])' "$T/$v-m3.json")
  raw_manifest "$CACHE_REF" >"$T/$v-cache3.json"
  cache3=sha256:$(sha256sum <"$T/$v-cache3.json" | cut -d' ' -f1)
  cachecfg3=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["config"]["digest"])' "$T/$v-cache3.json")
  gained=$(comm -13 <(printf '%s\n' "$blobs_before") <(registry_repo_blobs "team/app-$v"))
  check_eq "$v pod 3: team/app-$v gained only the source layer, config, manifest (+ the cache's index and manifest)" \
    "$(printf '%s\n' "source layer $src" "image config $cfg3" "image manifest $D3" "cache manifest $cache3" "cache index $cachecfg3" | sort -k3)" \
    "$(for x in $gained; do printf '%s\n' "source layer $src" "image config $cfg3" "image manifest $D3" "cache manifest $cache3" "cache index $cachecfg3" | grep -F " $x" || echo "unexpected $x"; done | sort -k3)"
  [[ -n $blobs_before ]] || failed "$v pod 3: the registry's storage for team/app-$v was found" "nothing under $REGISTRY_STORAGE/docker/registry/v2/repositories/team/app-$v"
  check_contains "$v pod 3: the image has the edit" \
    "$(in_image "$IMAGE" tail -n 1 /opt/app/src/app/workers.py 2>&1)" "# edited by kubernetes_job.sh"

  # ---- pod 4
  section "$v pod 4: uv.lock changes (late_add added to the mcore extra)"
  add_late_add_to_mcore "$W"
  git -C "$W" commit -q -am "add late_add to mcore"
  require "$v: publish the lock change" git_publish "$W" "$BARE"
  IM=$(index_mark)
  pod "$v-pod4" "$v"
  report_check "$v pod 4: uv ran (the lock changed)" 'assert d["uv_runs"] > 0, d["uv_runs"]'
  check_eq "$v pod 4: the uv cache was seeded from the registry: the only wheel downloaded is late_add's" \
    "/files/late_add-1.0.0-py3-none-any.whl" \
    "$(index_wheel_paths_since "$IM")"
  check_eq "$v pod 4: the McoreWorker venv imports late_add" "late_add" \
    "$(in_image "$IMAGE" /opt/ray_venvs/app.workers.McoreWorker/bin/python -c 'import late_add; print(late_add.VALUE)' 2>&1)"
}

export POD_REPORT
for v in "${VARIANTS[@]}"; do
  run_variant "$v"
done
