#!/usr/bin/env bash
# Validates the Kubernetes manifests under deploy/:
#   1. every kustomization.yaml: the files it lists (resources, generator
#      files, patches) exist, every YAML file under deploy/ is used by one,
#      and the DaemonSet agrees with the config it mounts (config path, env
#      vars the config expands, HTTP port, writable positions/wal paths);
#   2. every manifest file, against the Kubernetes OpenAPI schemas, with
#      kubernetes-validate --strict (unknown fields are errors, and so is a
#      kind or apiVersion with no schema);
#   3. if kustomize (or kubectl) is installed: each kustomization, rendered,
#      the same way (the generated ConfigMap, the overlay's patches);
#   4. if the tailtrace binary is built: the Promtail configs under deploy/,
#      with `tailtrace -check-syntax`.
# Not Kubernetes objects, so not schema-checked: kustomization.yaml files,
# files a configMapGenerator/secretGenerator reads (deploy/base/promtail.yaml),
# and the reference config deploy/promtail-helm/promtail.yaml.
#
# Needs python3 with pip. Installs the PyPI package kubernetes-validate (its
# dependencies include PyYAML, used below) if it is missing.
# Env: K8S_VERSIONS (default "1.37.0 1.30.0": the newest schemas
# kubernetes-validate 1.37 ships, and an older release still run by managed
# clusters), TAILTRACE_BIN (default target/release/tailtrace).
set -euo pipefail
cd "$(dirname "$0")/.."

K8S_VERSIONS=${K8S_VERSIONS:-"1.37.0 1.30.0"}
KV_PIN="kubernetes-validate==1.37.0"
TAILTRACE_BIN=${TAILTRACE_BIN:-target/release/tailtrace}
say() { echo "validate-manifests: $*"; }
die() { echo "validate-manifests: FAIL: $*" >&2; exit 1; }

if ! command -v python3 >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing python3 and python3-pip (apt)"
    apt-get update -qq && apt-get install -y -qq python3 python3-pip >/dev/null
  else
    die "python3 is required (Debian: apt-get install python3 python3-pip)"
  fi
fi

# --- kubernetes-validate ----------------------------------------------------
if ! python3 -c 'import kubernetes_validate, yaml' >/dev/null 2>&1; then
  if ! python3 -m pip --version >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      say "installing python3-pip (apt)"
      apt-get update -qq && apt-get install -y -qq python3-pip >/dev/null
    else
      die "pip is missing: install python3-pip, then: python3 -m pip install $KV_PIN"
    fi
  fi
  say "installing $KV_PIN (PyPI)"
  log=$(mktemp)
  if ! python3 -m pip install --quiet --disable-pip-version-check "$KV_PIN" >"$log" 2>&1; then
    # Debian's own python3 refuses pip installs (PEP 668) unless told.
    if grep -q externally-managed-environment "$log"; then
      python3 -m pip install --quiet --disable-pip-version-check --break-system-packages "$KV_PIN" >"$log" 2>&1 \
        || { cat "$log" >&2; rm -f "$log"; die "pip install $KV_PIN failed"; }
    else
      cat "$log" >&2; rm -f "$log"; die "pip install $KV_PIN failed"
    fi
  fi
  rm -f "$log"
fi
kv_version=$(python3 -m kubernetes_validate --version)
for v in $K8S_VERSIONS; do
  python3 - "$v" <<'EOF' || die "kubernetes-validate $kv_version has no schemas for Kubernetes $v (python3 -m pip install $KV_PIN)"
import sys
from kubernetes_validate import utils
want = utils.major_minor(sys.argv[1].lstrip("v"))
sys.exit(0 if want in {utils.major_minor(v) for v in utils.all_versions()} else 1)
EOF
done
say "kubernetes-validate $kv_version, Kubernetes $K8S_VERSIONS, --strict"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# --- 1. kustomizations, file references, DaemonSet <-> config ---------------
say "checking kustomization.yaml references and the DaemonSet against its config"
TAILTRACE_BIN="$TAILTRACE_BIN" python3 - "$work" <<'EOF'
import os, re, subprocess, sys
import yaml

work = sys.argv[1]
errors = []
def fail(path, msg):
    errors.append(f"{path}: {msg}")

def load_docs(path):
    try:
        with open(path) as f:
            return [d for d in yaml.safe_load_all(f) if d is not None]
    except (OSError, yaml.YAMLError) as e:
        fail(path, f"cannot read YAML: {e}")
        return []

yaml_files = sorted(
    os.path.join(d, f)
    for d, _, fs in os.walk("deploy") for f in fs
    if f.endswith((".yaml", ".yml"))
)
KUST_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
kusts = [p for p in yaml_files if os.path.basename(p) in KUST_NAMES]
# The reference copy of the Promtail chart's config: not deployed.
reference = {p for p in yaml_files if p.startswith("deploy/promtail-helm/")}

manifests, data_files, patch_files = set(), set(), set()
generated = {}  # ConfigMap name -> {key: path}, per kustomization dir
remote = re.compile(r"^(https?://|git@|github\.com/|ssh://)")

for k in kusts:
    kdir = os.path.dirname(k)
    docs = load_docs(k)
    if len(docs) != 1 or not isinstance(docs[0], dict):
        fail(k, "expected one YAML mapping")
        continue
    kd = docs[0]
    rel = lambda p: os.path.normpath(os.path.join(kdir, p))
    for field in ("resources", "components"):
        for r in kd.get(field) or []:
            if remote.match(r):
                continue
            p = rel(r)
            if os.path.isdir(p):
                if not any(os.path.isfile(os.path.join(p, n)) for n in KUST_NAMES):
                    fail(k, f"{field}: {r}: directory has no kustomization.yaml")
            elif os.path.isfile(p):
                manifests.add(p)
            else:
                fail(k, f"{field}: {r}: no such file or directory ({p})")
    gen = generated.setdefault(kdir, {})
    for field, kind in (("configMapGenerator", "ConfigMap"), ("secretGenerator", "Secret")):
        for g in kd.get(field) or []:
            name = g.get("name")
            if not name:
                fail(k, f"{field}: an entry has no name")
            keys = gen.setdefault(name, {}) if kind == "ConfigMap" else {}
            size = 0
            for spec in g.get("files") or []:
                key, _, src = spec.rpartition("=")
                key = key or os.path.basename(src)
                p = rel(src)
                if not os.path.isfile(p):
                    fail(k, f"{field} {name}: file {src} does not exist ({p})")
                    continue
                if not re.fullmatch(r"[-._a-zA-Z0-9]+", key):
                    fail(k, f"{field} {name}: {key!r} is not a valid {kind} key")
                data_files.add(p)
                keys[key] = p
                size += os.path.getsize(p)
            for src in (g.get("envs") or []) + ([g["env"]] if g.get("env") else []):
                p = rel(src)
                if not os.path.isfile(p):
                    fail(k, f"{field} {name}: env file {src} does not exist ({p})")
                data_files.add(p)
            if size > 1024 * 1024:
                fail(k, f"{field} {name}: {size} bytes, over the 1 MiB {kind} limit")
    for pt in kd.get("patches") or []:
        if "path" in pt:
            p = rel(pt["path"])
            if not os.path.isfile(p):
                fail(k, f"patches: {pt['path']} does not exist ({p})")
            patch_files.add(p)
        elif "patch" in pt:
            try:
                list(yaml.safe_load_all(pt["patch"]))
            except yaml.YAMLError as e:
                fail(k, f"patches: inline patch is not valid YAML: {e}")
        else:
            fail(k, "patches: an entry has neither path nor patch")
    for old in ("patchesStrategicMerge", "patchesJson6902", "bases", "vars"):
        if old in kd:
            fail(k, f"{old} is deprecated in kustomize v5; use resources/patches/replacements")

for p in yaml_files:
    if p in kusts or p in reference or p in manifests or p in data_files or p in patch_files:
        continue
    fail(p, "not used by any kustomization.yaml (list it in resources, or delete it)")

# Every manifest document must be a Kubernetes object.
objects = {}  # path -> docs
for p in sorted(manifests):
    docs = load_docs(p)
    objects[p] = docs
    for i, d in enumerate(docs):
        if not isinstance(d, dict) or not d.get("apiVersion") or not d.get("kind") \
                or not (d.get("metadata") or {}).get("name"):
            fail(p, f"document {i + 1} has no apiVersion, kind or metadata.name")

# Workloads that mount a generated config: check them against that config.
ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:?[-=][^}]*)?\}")
configs_to_check = {}  # config path -> env for -check-syntax

def under(path, mount):
    return path == mount or path.startswith(mount.rstrip("/") + "/")

def check_container(where, c, pod, cms):
    vol_cm = {v["name"]: v["configMap"]["name"] for v in pod.get("volumes", []) if "configMap" in v}
    mounts = c.get("volumeMounts", [])
    args = c.get("args", []) + c.get("command", [])
    # Literal values; downward-API ones get a stand-in.
    env = {e["name"]: e.get("value", "stand-in") for e in c.get("env", [])}
    named = {pt.get("name"): pt.get("containerPort") for pt in c.get("ports", [])}
    ports = set(named.values())
    for a in args:
        m = re.fullmatch(r"--?config\.file=(.+)", a)
        if not m:
            continue
        cfg_path = m.group(1)
        mount = next((vm for vm in mounts if under(cfg_path, vm["mountPath"])), None)
        cm = vol_cm.get(mount["name"]) if mount else None
        if cm not in cms:
            fail(where, f"{a}: not inside a volume of a generated ConfigMap ({', '.join(cms)})")
            continue
        key = os.path.relpath(cfg_path, mount["mountPath"])
        src = cms[cm].get(key)
        if src is None:
            fail(where, f"{a}: ConfigMap {cm} has no key {key!r} (keys: {', '.join(cms[cm])})")
            continue
        # ${VAR} in comments does not matter (it expands to nothing).
        text = re.sub(r"(^|\s)#.*", r"\1", open(src).read())
        refs = ENV_REF.findall(text)
        if refs and not any(re.fullmatch(r"--?config\.expand-env(=true)?", x) for x in args):
            fail(where, f"{src} uses ${{{refs[0][0]}}} but -config.expand-env=true is not set")
        for var, default in refs:
            if not default and var not in env:
                fail(where, f"{src} uses ${{{var}}}, which the container does not set in env")
        cfg = yaml.safe_load(ENV_REF.sub(lambda m: env.get(m.group(1), "x"), text)) or {}
        port = (cfg.get("server") or {}).get("http_listen_port", 9080)
        if port not in ports:
            fail(where, f"{src}: server.http_listen_port {port} is not a containerPort ({sorted(ports, key=str)})")
        else:
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                pp = ((c.get(probe) or {}).get("httpGet") or {}).get("port")
                if pp is not None and named.get(pp, pp) != port:
                    fail(where, f"{probe}: port {pp} is not the agent's port {port}")
        writable = [vm["mountPath"] for vm in mounts if not vm.get("readOnly")]
        wal = cfg.get("wal") or {}
        for what, path in (("positions.filename", (cfg.get("positions") or {}).get("filename", "/var/log/positions.yaml")),
                           ("wal.dir", wal.get("dir") if wal.get("enabled") else None)):
            if path and not any(under(path, w) for w in writable):
                fail(where, f"{src}: {what} {path} is not on a writable volume ({', '.join(writable)})")
        configs_to_check[src] = env

for kdir, cms in generated.items():
    for p, docs in objects.items():
        if os.path.dirname(p) != kdir:
            continue
        for d in docs:
            if not isinstance(d, dict) or d.get("kind") not in ("DaemonSet", "Deployment", "StatefulSet"):
                continue
            try:
                pod = d["spec"]["template"]["spec"]
                for c in pod.get("containers", []):
                    check_container(f"{p}: container {c.get('name')}", c, pod, cms)
            except (KeyError, TypeError, AttributeError):
                pass  # malformed: the schema check names the field

for p in sorted(reference):
    configs_to_check.setdefault(p, {})

# The configs themselves, with the agent's own parser, when it is built.
binary = os.environ["TAILTRACE_BIN"]
if os.access(binary, os.X_OK):
    for src, values in sorted(configs_to_check.items()):
        env = {k: v for k, v in os.environ.items() if k not in values}
        env.update(values)
        r = subprocess.run([binary, f"-config.file={src}", "-config.expand-env=true", "-check-syntax"],
                           env=env, capture_output=True, text=True)
        if r.returncode != 0:
            fail(src, f"{binary} -check-syntax: {(r.stderr or r.stdout).strip()}")
        else:
            print(f"validate-manifests: {src}: tailtrace -check-syntax OK")
else:
    print(f"validate-manifests: {binary} not built: skipped -check-syntax of "
          f"{', '.join(sorted(configs_to_check))} (cargo build --release)")

with open(os.path.join(work, "manifests"), "w") as f:
    f.write("".join(p + "\n" for p in sorted(manifests)))
with open(os.path.join(work, "kustomizations"), "w") as f:
    f.write("".join(os.path.dirname(k) + "\n" for k in kusts))

if errors:
    for e in errors:
        print(f"validate-manifests: FAIL: {e}", file=sys.stderr)
    sys.exit(1)
print(f"validate-manifests: {len(kusts)} kustomizations, {len(manifests)} manifest files, "
      f"{len(data_files)} generator files: references OK")
EOF

# --- 2./3. schemas ----------------------------------------------------------
# kubernetes-validate exits non-zero on an invalid object, but only warns
# (and exits 0) when it has no schema for a kind/apiVersion: a typo there
# would pass, so a WARN line fails too.
validate() { # label files...
  local label=$1; shift
  local out rc=0 v
  for v in $K8S_VERSIONS; do
    out=$(python3 -m kubernetes_validate --strict -k "$v" "$@" 2>&1) || rc=1
    printf '%s\n' "$out" | sed 's/^/  /'
    if printf '%s\n' "$out" | grep -q '^WARN'; then rc=1; fi
  done
  [ "$rc" = 0 ] || die "$label: not valid against the Kubernetes schemas (the ERROR/WARN lines above name the file, object and field)"
}

mapfile -t manifests <"$work/manifests"
[ "${#manifests[@]}" -gt 0 ] || die "no Kubernetes manifests found under deploy/"
say "schema-checking ${#manifests[@]} manifest files"
validate "manifest files" "${manifests[@]}"

kustomize=()
if command -v kustomize >/dev/null 2>&1; then kustomize=(kustomize build)
elif command -v kubectl >/dev/null 2>&1 && kubectl kustomize --help >/dev/null 2>&1; then kustomize=(kubectl kustomize)
fi
if [ "${#kustomize[@]}" -gt 0 ]; then
  while read -r dir; do
    rendered="kustomize-build-of-$(echo "$dir" | tr / _).yaml"
    "${kustomize[@]}" "$dir" >"$work/$rendered" 2>"$work/kustomize.err" \
      || die "$dir: ${kustomize[*]} failed: $(cat "$work/kustomize.err")"
    say "schema-checking $dir as rendered by ${kustomize[*]} ($(grep -c '^kind:' "$work/$rendered") objects)"
    (cd "$work" && validate "$dir (rendered)" "$rendered")
  done <"$work/kustomizations"
else
  say "kustomize/kubectl not installed: skipped rendering the kustomizations (the file checks above ran)"
fi

say "OK"
