#!/usr/bin/env python3
"""entraform versus the seed's Azure CLI sequence, on the same emulator (docs/BENCHMARKS.md).

Sections (all by default; pick with --only):
  compare  per latency (--latencies, default 0,50,150): ONE `entraform emulator --tls` each;
           alternating runs (--runs, default 5) of
             fresh    checklist §1 steps 1-8 as written, one `az` process per command, step 8
                      piped into the vault push   vs  `entraform apply`
             noop     the checklist's `az ad app show` check  vs  `entraform plan`
             rotate   `az ad app credential reset --append` | vault push  vs  `entraform rotate`
           with fresh service names per run (every fresh run is a create).
  scale    `drift --all` and `secrets --all` over 10, 50, 200 generated manifests (--scale) at
           --scale-latency ms (default 50), --scale-runs each.
  process  cold start (`--version`), `plan` on a no-op (hyperfine), peak RSS (/usr/bin/time -v).
  safety   the seed's incidents with the real az (stderr glued to the secret; credential reset
           without --append) next to entraform apply/rotate/secrets.

Counts come from the emulator's request log (GET /_emulator/requests, cleared with DELETE between
runs): Graph requests (/v1.0/...), login requests (token, discovery, ARM metadata), and sequential
round trips = clusters of requests whose [start, start+duration] intervals overlap.

Python 3 standard library only. Needs azure-cli in .venv-az (`python3 -m venv .venv-az &&
.venv-az/bin/pip install azure-cli`; --az to point elsewhere) and a built entraform
(ENTRAFORM_BIN or --bin; default target/release/entraform, else target/debug/entraform).
Prints markdown tables on stdout; --json FILE keeps the raw measurements. Not part of CI.

Secrets: the az pipeline and entraform's `command` vault both hand the secret to bench/file-vault
on stdin. This script prints no secret: the safety section reads vault entries only to report
their length and shape. The emulator's throw-away operator secret goes to `az login` in argv,
the only way az takes a client secret.
"""

import argparse
import concurrent.futures
import datetime
import json
import os
import platform
import re
import resource
import shlex
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VAULT_SCRIPT = ROOT / "bench" / "file-vault"
FRAME_SEED = ROOT / "tests" / "fixtures" / "frame.seed.json"
DOMAIN = "axelabs.ai"
HOST = "axe.axelabs.ai"
GRAPH_APP = "00000003-0000-0000-c000-000000000000"
USER_READ = "e1fe6dd8-ba31-4d61-89e7-88639da4683d"


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def clean_env():
    """The parent's environment without anything that could point a tool elsewhere."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AZURE_", "ENTRAFORM_", "REQUESTS_CA", "MSAL_", "IDENTITY_"))
        and k not in ("SSL_CERT_FILE", "SSL_CERT_DIR", "HTTPS_PROXY", "https_proxy")
    }


# ---------------------------------------------------------------------------------------------
# The emulator


class Emulator:
    def __init__(self, binary, work, latency, name):
        self.dir = work / name
        self.dir.mkdir(parents=True)
        self.ca = self.dir / "ca.pem"
        self.latency = latency
        exports = self.dir / "exports"
        self.proc = subprocess.Popen(
            [binary, "emulator", "--tls", "--verified-domain", DOMAIN,
             "--latency-ms", str(latency), "--seed", str(FRAME_SEED),
             "--ca-cert-out", str(self.ca)],
            stdout=open(exports, "w"), stderr=open(self.dir / "emulator.log", "w"),
            env=clean_env(),
        )
        deadline = time.time() + 30
        while "ENTRAFORM_CA_CERT" not in (exports.read_text() if exports.exists() else ""):
            if self.proc.poll() is not None or time.time() > deadline:
                raise SystemExit("the emulator did not start:\n" + (self.dir / "emulator.log").read_text())
            time.sleep(0.05)
        self.exports = {}
        for line in exports.read_text().splitlines():
            parts = shlex.split(line)
            if len(parts) == 2 and parts[0] == "export" and "=" in parts[1]:
                k, v = parts[1].split("=", 1)
                self.exports[k] = v
        self.graph = self.exports["ENTRAFORM_GRAPH_URL"]
        self.authority = self.exports["AZURE_AUTHORITY_HOST"]
        self.control = self.graph[: -len("/v1.0")] + "/_emulator"
        # The controls need this token (Authorization: Bearer); the tools under test do not.
        self.control_token = self.exports.pop("ENTRAFORM_EMULATOR_CONTROL_TOKEN")
        self.ssl = ssl.create_default_context(cafile=str(self.ca))

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.control + path, data=data, method=method,
                                     headers={"Content-Type": "application/json",
                                              "Authorization": "Bearer " + self.control_token})
        with urllib.request.urlopen(req, context=self.ssl, timeout=30) as r:
            raw = r.read()
        return json.loads(raw) if raw.strip() else None

    def clear(self):
        self.call("DELETE", "/requests")

    def requests(self):
        return self.call("GET", "/requests")

    def set_latency(self, ms):
        self.call("POST", "/faults", {"latencyMs": ms})
        self.latency = ms

    def entraform_env(self):
        env = clean_env()
        env.update(self.exports)
        return env

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# ---------------------------------------------------------------------------------------------
# Counting


def clusters(records):
    """Sequential round trips: requests whose server-side intervals overlap count once."""
    n, end = 0, float("-inf")
    for s, e in sorted((r["startMs"], r["startMs"] + r["durationMs"]) for r in records):
        if s < end:
            end = max(end, e)
        else:
            n, end = n + 1, e
    return n


def depth(records):
    """Critical-path depth: the longest chain of requests each starting after the previous one
    ended. Unlike the overlap clusters, a bounded-concurrency pipeline (8 in flight, the next
    one starting as one finishes) counts one per wave here, so wall time ≈ depth × latency."""
    iv = sorted((r["startMs"], r["startMs"] + r["durationMs"]) for r in records)
    best = []
    for i, (s, _) in enumerate(iv):
        best.append(1 + max((best[j] for j in range(i) if iv[j][1] <= s), default=0))
    return max(best, default=0)


def is_write(r):
    return r["method"] not in ("GET", "HEAD")


def count(records):
    graph = [r for r in records if r["path"] == "/v1.0" or r["path"].startswith("/v1.0/")]
    login = [r for r in records if r not in graph]
    t0 = min((r["startMs"] for r in records), default=0.0)
    writes = 0
    for r in graph:
        if r.get("batch"):
            writes += sum(1 for i in r.get("inner", []) if is_write(i))
        elif is_write(r):
            writes += 1
    return {
        "graph_requests": len(graph),
        "graph_round_trips": clusters(graph),
        "graph_depth": depth(graph),
        "batched": sum(len(r.get("inner", [])) for r in graph if r.get("batch")),
        "writes": writes,
        "login_requests": len(login),
        "all_round_trips": clusters(records),
        "statuses": sorted({r["status"] for r in records}),
        # method, path, status, start (ms from the first request), duration ms, $batch size
        "trace": [[r["method"], r["path"][:80], r["status"], round(r["startMs"] - t0, 1),
                   round(r["durationMs"], 1), len(r.get("inner", []))]
                  for r in sorted(records, key=lambda r: r["startMs"])],
    }


# ---------------------------------------------------------------------------------------------
# Running tools


class Failed(Exception):
    pass


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run(argv, env, cwd, ok=(0,)):
    t0 = time.perf_counter()
    p = subprocess.run(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    dt = time.perf_counter() - t0
    if p.returncode not in ok:
        shown = " ".join(shlex.quote(str(a)) for a in argv[:8])
        raise Failed(f"`{shown} ...` exited {p.returncode}:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
    return dt, p


class Az:
    """The operator's Azure CLI, logged in once per emulator; every run gets a copy of that
    logged-in config dir (AZURE_CONFIG_DIR), so each run starts from the same token cache."""

    def __init__(self, az, emu, work):
        self.az = az
        self.emu = emu
        self.work = work
        self.template = work / "azcfg-template"
        env = self.env(self.template)
        run([az, "config", "set", "core.instance_discovery=false"], env, work)
        run([az, "cloud", "register", "-n", "EntraformEmulator",
             "--endpoint-resource-manager", emu.authority + "/"], env, work)
        run([az, "cloud", "set", "-n", "EntraformEmulator"], env, work)
        # The emulator's throw-away operator; `az login` takes a client secret only in argv.
        run([az, "login", "--service-principal", "-u", emu.exports["AZURE_CLIENT_ID"],
             "-p", emu.exports["AZURE_CLIENT_SECRET"], "--tenant", emu.exports["AZURE_TENANT_ID"],
             "--allow-no-subscriptions"], env, work)
        self.cfg = None

    def env(self, cfg):
        env = clean_env()
        env.update({
            "AZURE_CONFIG_DIR": str(cfg),
            "AZURE_CORE_COLLECT_TELEMETRY": "false",
            "AZURE_CORE_NO_COLOR": "true",
            "AZURE_CORE_SURVEY_MESSAGE": "false",
            "REQUESTS_CA_BUNDLE": str(self.emu.ca),
        })
        return env

    def fresh_config(self, tag):
        self.cfg = self.work / f"azcfg-{tag}"
        shutil.copytree(self.template, self.cfg)

    def __call__(self, *args):
        dt, p = run([self.az, *args], self.env(self.cfg), self.work)
        return dt, p.stdout

    def vault_push(self, app_id, vault_dir, path, append):
        # Checklist step 8 as written: `az ad app credential reset ... --query password -o tsv
        # 2>/dev/null | axe secret push PATH -`, with bench/file-vault as the push.
        script = ('set -o pipefail; "$0" ad app credential reset --id "$1" --years 2 $5 '
                  '--query password -o tsv 2>/dev/null | "$2" "$3" push "$4" -')
        argv = ["bash", "-c", script, self.az, app_id, str(VAULT_SCRIPT), str(vault_dir), path,
                "--append" if append else ""]
        dt, _ = run(argv, self.env(self.cfg), self.work)
        return dt


def az_fresh(az, svc, display):
    """Checklist §1 steps 1-8, one az process per command. Returns (wall, per-step, app ids)."""
    g = az.emu.graph
    steps = []
    t0 = time.perf_counter()
    dt, out = az("ad", "app", "create", "--display-name", display, "--sign-in-audience", "AzureADMyOrg")
    steps.append(dt)
    app = json.loads(out)  # the operator reads APP_ID and OBJECT_ID off this output
    app_id, obj = app["appId"], app["id"]
    steps.append(az("ad", "sp", "create", "--id", app_id)[0])
    steps.append(az("ad", "app", "update", "--id", app_id, "--identifier-uris",
                    f"https://{HOST}/{svc}/mcp")[0])
    scope = {"id": str(uuid.uuid4()), "value": "mcp.access", "type": "User",
             "isEnabled": True, "adminConsentDisplayName": f"Access {display}",
             "userConsentDisplayName": f"Access {display}"}
    bodies = [
        {"api": {"requestedAccessTokenVersion": 2}},
        {"api": {"oauth2PermissionScopes": [scope]}},
        {"web": {"redirectUris": ["https://claude.ai/api/mcp/auth_callback",
                                  "https://claude.com/api/mcp/auth_callback"]}},
        {"requiredResourceAccess": [{"resourceAppId": GRAPH_APP,
                                     "resourceAccess": [{"id": USER_READ, "type": "Scope"}]}]},
        {"web": {"implicitGrantSettings": {"enableIdTokenIssuance": True}}},
    ]
    for body in bodies:
        steps.append(az("rest", "--method", "PATCH", "--uri", f"{g}/applications/{obj}",
                        "--body", json.dumps(body))[0])
    steps.append(az.vault_push(app_id, az.vault, f"{svc}/axe/mcp-client-secret", append=False))
    return time.perf_counter() - t0, steps, app_id


def az_noop(az, app_id):
    t0 = time.perf_counter()
    az("ad", "app", "show", "--id", app_id, "--query",
       "{accessTokenAcceptedVersion:api.requestedAccessTokenVersion, "
       "identifierUris:identifierUris, signInAudience:signInAudience}", "-o", "json")
    return time.perf_counter() - t0


def az_rotate(az, app_id, svc):
    t0 = time.perf_counter()
    az.vault_push(app_id, az.vault, f"{svc}/axe/mcp-client-secret", append=True)
    return time.perf_counter() - t0


class Entraform:
    """A manifests directory (defaults + frame + one manifest per run) whose vault is
    bench/file-vault through the `command` backend."""

    def __init__(self, binary, emu, work, vault_dir):
        self.bin = binary
        self.emu = emu
        self.dir = work
        self.dir.mkdir(parents=True, exist_ok=True)
        write_defaults(self.dir / "defaults.yaml", vault_dir)
        shutil.copy(ROOT / "manifests" / "frame.yaml", self.dir / "frame.yaml")
        self.port = 4001

    def manifest(self, svc):
        path = self.dir / f"{svc}.yaml"
        path.write_text(f"service: {svc}\ncustomer: axe\nproxy_port: {self.port}\nreference: frame\n")
        self.port += 10
        return path.name

    def __call__(self, *args, ok=(0,)):
        return run([self.bin, "--yes", *args], self.emu.entraform_env(), self.dir, ok=ok)


def write_defaults(path, vault_dir):
    text = (ROOT / "manifests" / "defaults.yaml").read_text()
    push = [str(VAULT_SCRIPT), str(vault_dir), "push", "{path}", "-"]
    get = [str(VAULT_SCRIPT), str(vault_dir), "get", "{path}"]
    block = ("vault:\n  backend: command\n"
             f"  push: {json.dumps(push)}\n  get: {json.dumps(get)}\n")
    new, n = re.subn(r"(?m)^vault:\n(?:[ ].*\n)+", block, text)
    if n != 1:
        raise SystemExit("cannot find the vault block in manifests/defaults.yaml")
    path.write_text(new)


def has_command(binary, name):
    return subprocess.run([binary, name, "--help"], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode == 0


# ---------------------------------------------------------------------------------------------
# Sections


def measure(emu, fn):
    """Run fn between a cleared and a read request log; add the client processes' CPU time
    (user+sys, children only: the emulator is not waited for, so it is not counted) and the load
    average (other work on the machine inflates wall times, mostly of the CPU-heavy side)."""
    emu.clear()
    cpu0 = children_cpu()
    result = fn()
    c = count(emu.requests())
    c["cpu_s"] = children_cpu() - cpu0
    c["load1"] = os.getloadavg()[0]
    return result, c


def section_compare(opts, work):
    results = []
    rotate_ok = has_command(opts.bin, "rotate")
    for latency in opts.latencies:
        log(f"== compare at {latency} ms")
        emu = Emulator(opts.bin, work, latency, f"emu-compare-{latency}")
        try:
            base = work / f"compare-{latency}"
            base.mkdir()
            vault_dir = base / "vault"
            az = Az(opts.az, emu, base)
            az.vault = vault_dir
            ef = Entraform(opts.bin, emu, base / "manifests", vault_dir)
            for i in range(opts.runs):
                order = ["az", "entraform"] if i % 2 == 0 else ["entraform", "az"]
                for tool in order:
                    if tool == "az":
                        svc = f"az-l{latency}-r{i}"
                        display = f"Az L{latency} R{i} MCP"
                        az.fresh_config(f"{latency}-{i}")
                        (wall, steps, app_id), c = measure(emu, lambda: az_fresh(az, svc, display))
                        results.append(row(latency, i, "fresh", "az", wall, c, processes=len(steps),
                                           steps=steps))
                        wall, c = measure(emu, lambda: az_noop(az, app_id))
                        results.append(row(latency, i, "noop", "az", wall, c, processes=1))
                        wall, c = measure(emu, lambda: az_rotate(az, app_id, svc))
                        results.append(row(latency, i, "rotate", "az", wall, c, processes=1))
                    else:
                        svc = f"ef-l{latency}-r{i}"
                        m = ef.manifest(svc)
                        (wall, _), c = measure(emu, lambda: ef("apply", m, "--out", f"out/{svc}"))
                        results.append(row(latency, i, "fresh", "entraform", wall, c, processes=1))
                        (wall, _), c = measure(emu, lambda: ef("plan", m))
                        results.append(row(latency, i, "noop", "entraform", wall, c, processes=1))
                        if rotate_ok:
                            (wall, _), c = measure(emu, lambda: ef("rotate", m))
                            results.append(row(latency, i, "rotate", "entraform", wall, c,
                                               processes=1))
                    log(f"   run {i} {tool}: " + ", ".join(
                        f"{r['scenario']} {r['wall_s']:.2f}s" for r in results[-3:]
                        if r["tool"] == tool and r["run"] == i))
        finally:
            emu.close()
    return {"rows": results, "rotate_available": rotate_ok}


def row(latency, run_no, scenario, tool, wall, counts, **extra):
    return {"latency_ms": latency, "run": run_no, "scenario": scenario, "tool": tool,
            "wall_s": wall, **counts, **extra}


def section_scale(opts, work):
    have = {c: has_command(opts.bin, c) for c in ("drift", "secrets")}
    if not any(have.values()):
        return {"available": have, "rows": []}
    emu = Emulator(opts.bin, work, 0, "emu-scale")
    rows = []
    try:
        top = max(opts.scale)
        base = work / "scale"
        vault_dir = base / "vault"
        ef = Entraform(opts.bin, emu, base / "all", vault_dir)
        names = [ef.manifest(f"s{k:03d}") for k in range(1, top + 1)]
        log(f"== scale: creating {top} services at 0 ms (entraform apply, 2 at a time)")
        t0 = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda m: ef("apply", m, "--out", f"out/{m[:-5]}"), names))
        log(f"   created in {time.perf_counter() - t0:.1f} s")
        emu.set_latency(opts.scale_latency)
        for n in opts.scale:
            d = base / f"n{n}"
            d.mkdir()
            for f in ["defaults.yaml", "frame.yaml", *names[:n]]:
                shutil.copy(ef.dir / f, d / f)
            for cmd in ("drift", "secrets"):
                if not have[cmd]:
                    continue
                for rep in range(opts.scale_runs):
                    (wall, p), c = measure(emu, lambda: run(
                        [opts.bin, cmd, "--all", str(d)], emu.entraform_env(), base, ok=(0, 3)))
                    rows.append({"command": f"{cmd} --all", "manifests": n + 1, "services": n,
                                 "run": rep, "wall_s": wall, "exit": p.returncode,
                                 "latency_ms": opts.scale_latency, **c})
                    log(f"   {cmd} --all n={n}: {wall:.2f}s {c['graph_requests']} req "
                        f"{c['graph_round_trips']} RT exit {p.returncode}")
    finally:
        emu.close()
    return {"available": have, "rows": rows}


ENTRA_SHAPE = re.compile(r"^[A-Za-z0-9~._-]{40}$")


def vault_shape(vault_dir, path):
    """Length of what the vault holds and whether it looks like an Entra client secret
    (the value is read here to measure it, never printed or kept)."""
    f = vault_dir / path
    if not f.exists():
        return {"length": 0, "entra_shape": False}
    value = f.read_text()
    return {"length": len(value), "entra_shape": bool(ENTRA_SHAPE.match(value))}


def section_safety(opts, work):
    """The seed's incidents, reproduced with the real az next to what entraform does."""
    emu = Emulator(opts.bin, work, 0, "emu-safety")
    try:
        base = work / "safety"
        base.mkdir()
        vault = base / "vault"
        az = Az(opts.az, emu, base)
        az.vault = vault
        az.fresh_config("safety")
        _, out = az("ad", "app", "create", "--display-name", "Safety MCP", "--query", "appId", "-o", "tsv")
        app_id = out.strip()
        env = az.env(az.cfg)

        def reset(path, stderr, append):
            script = ('set -o pipefail; "$0" ad app credential reset --id "$1" --years 2 $5 '
                      f'--query password -o tsv {stderr} | "$2" "$3" push "$4" -')
            run(["bash", "-c", script, opts.az, app_id, str(VAULT_SCRIPT), str(vault), path,
                 "--append" if append else ""], env, base)
            return vault_shape(vault, path)

        def passwords():
            return int(az("ad", "app", "credential", "list", "--id", app_id, "--query", "length(@)",
                          "-o", "tsv")[1].strip())

        res = {}
        res["az_stderr_merged"] = reset("merged/axe/mcp-client-secret", "2>&1", True)
        res["az_stderr_dropped"] = reset("dropped/axe/mcp-client-secret", "2>/dev/null", True)
        before = passwords()
        reset("noappend/axe/mcp-client-secret", "2>/dev/null", False)
        res["az_reset_without_append"] = {"passwords_before": before, "passwords_after": passwords()}

        ef = Entraform(opts.bin, emu, base / "manifests", vault)
        m = ef.manifest("safe")
        ef("apply", m, "--out", "out/safe")
        res["entraform_apply"] = vault_shape(vault, "safe/axe/mcp-client-secret")
        _, p = ef("--output", "json", "secrets", m, ok=(0, 3))
        before = len(json.loads(p.stdout)["services"][0]["credentials"]) if p.stdout.strip() else None
        ef("rotate", m)
        _, p = ef("--output", "json", "secrets", m, ok=(0, 3))
        after = len(json.loads(p.stdout)["services"][0]["credentials"]) if p.stdout.strip() else None
        res["entraform_rotate"] = {"passwords_before": before, "passwords_after": after,
                                   **vault_shape(vault, "safe/axe/mcp-client-secret")}
        # The seed's corrupted value, as a vault would hold it: does entraform notice?
        shutil.copy(vault / "merged/axe/mcp-client-secret", vault / "safe/axe/mcp-client-secret")
        _, p = ef("secrets", m, ok=(0, 1, 3))
        first = (p.stderr.strip().splitlines() or [""])[0]
        first = first.replace(str(work), "$WORK").replace(str(ROOT) + "/", "")
        res["entraform_secrets_on_corrupt_vault"] = {"exit": p.returncode, "error": first}
    finally:
        emu.close()
    return res


def max_rss_kb(argv, env, cwd, ok=(0,)):
    _, p = run(["/usr/bin/time", "-v", *argv], env, cwd, ok=ok)
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr)
    return int(m.group(1))


def hyperfine(name, argv, env, cwd, work, runs):
    out = work / f"hyperfine-{name}.json"
    cmd = ["hyperfine", "-N", "--warmup", "3", "--runs", str(runs), "--export-json", str(out),
           "--style", "none", shlex.join(str(a) for a in argv)]
    run(cmd, env, cwd)
    r = json.loads(out.read_text())["results"][0]
    return {"median_s": r["median"], "mean_s": r["mean"], "stddev_s": r["stddev"],
            "min_s": r["min"], "max_s": r["max"], "runs": len(r["times"])}


def section_process(opts, work):
    if not shutil.which("hyperfine"):
        raise SystemExit("hyperfine not found (apt-get install -y hyperfine)")
    emu = Emulator(opts.bin, work, 0, "emu-process")
    try:
        base = work / "process"
        ef = Entraform(opts.bin, emu, base / "manifests", base / "vault")
        m = ef.manifest("proc")
        ef("apply", m, "--out", "out/proc")
        env = emu.entraform_env()
        res = {"latency_ms": 0}
        res["version"] = hyperfine("version", [opts.bin, "--version"], env, ef.dir, work, 50)
        res["plan_noop"] = hyperfine("plan", [opts.bin, "plan", m], env, ef.dir, work, 30)
        if opts.az:
            res["az_version"] = hyperfine("az-version", [opts.az, "version", "-o", "json"],
                                          clean_env() | {"AZURE_CONFIG_DIR": str(base / "azcfg"),
                                                         "AZURE_CORE_COLLECT_TELEMETRY": "false"},
                                          base, work, 10)
        rss = {}
        for key, argv, ok in [
            ("version", [opts.bin, "--version"], (0,)),
            ("plan_noop", [opts.bin, "plan", m], (0,)),
            ("apply_fresh", None, (0,)),
        ]:
            vals = []
            for k in range(5):
                if key == "apply_fresh":
                    mk = ef.manifest(f"rss{k}")
                    argv = [opts.bin, "--yes", "apply", mk, "--out", f"out/rss{k}"]
                vals.append(max_rss_kb(argv, env, ef.dir, ok))
            rss[key] = statistics.median(vals)
        if has_command(opts.bin, "drift") and opts.scale_dir:
            vals = [max_rss_kb([opts.bin, "drift", "--all", str(opts.scale_dir)], env, base, (0, 3))
                    for _ in range(3)]
            rss["drift_all"] = statistics.median(vals)
        res["peak_rss_kb"] = rss
    finally:
        emu.close()
    return res


# ---------------------------------------------------------------------------------------------
# Report


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def span(xs):
    return f"{min(xs):.2f}–{max(xs):.2f}" if xs else "–"


def ints(xs):
    """One number when every run agreed, else min–max."""
    lo, hi = min(xs), max(xs)
    return str(lo) if lo == hi else f"{lo}–{hi}"


def report_compare(data):
    rows = data["rows"]
    out = []
    titles = {
        "fresh": "Fresh apply: checklist §1 steps 1–8 with az vs `entraform apply`",
        "noop": "No-op re-run: `az ad app show` check vs `entraform plan`",
        "rotate": "Rotation: `az ad app credential reset --append` + vault push vs `entraform rotate`",
    }
    for scenario in ("fresh", "noop", "rotate"):
        out.append(f"### {titles[scenario]}\n")
        out.append("| latency | tool | processes | wall median s (min–max) | CPU median s | "
                   "Graph requests | Graph round trips (depth) | Graph writes | login requests | "
                   "all round trips | az ÷ entraform (wall) |")
        out.append("|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
        for latency in sorted({r["latency_ms"] for r in rows}):
            sel = {t: [r for r in rows if r["latency_ms"] == latency and r["scenario"] == scenario
                       and r["tool"] == t] for t in ("az", "entraform")}
            ratio = ""
            if sel["az"] and sel["entraform"]:
                ratio = f"**{med([r['wall_s'] for r in sel['az']]) / med([r['wall_s'] for r in sel['entraform']]):.1f}×**"
            for t in ("az", "entraform"):
                rs = sel[t]
                if not rs:
                    out.append(f"| {latency} ms | {t} | | pending: command not merged yet "
                               "(`bench/compare.py --only compare`) | | | | | | | |")
                    continue
                walls = [r["wall_s"] for r in rs]
                out.append(
                    f"| {latency} ms | {t} | {ints([r['processes'] for r in rs])} | "
                    f"{med(walls):.2f} ({span(walls)}) | {med([r['cpu_s'] for r in rs]):.2f} | "
                    f"{ints([r['graph_requests'] for r in rs])} | "
                    f"{ints([r['graph_depth'] for r in rs])} | {ints([r['writes'] for r in rs])} | "
                    f"{ints([r['login_requests'] for r in rs])} | {ints([r['all_round_trips'] for r in rs])} | "
                    f"{ratio if t == 'entraform' else ''} |")
        out.append("")
    loads = [r["load1"] for r in rows]
    out.append(f"Load average (1 min) during the runs: median {med(loads):.1f}, max {max(loads):.1f} "
               f"on {os.cpu_count()} cores.\n")
    fresh_az = [r for r in rows if r["scenario"] == "fresh" and r["tool"] == "az"]
    if fresh_az:
        per = [s for r in fresh_az for s in r["steps"]]
        out.append(f"az fresh sequence: {len(per)} process runs, median {med(per):.2f} s per `az` "
                   f"process (min {min(per):.2f}, max {max(per):.2f}).\n")
    return "\n".join(out)


def report_scale(data):
    rows = data["rows"]
    if not rows:
        return "pending: `drift` / `secrets` not merged yet (`bench/compare.py --only scale`)\n"
    out = ["| command | services (+frame) | latency | wall median s (min–max) | CPU median s | "
           "Graph requests | Graph round trips (overlap clusters) | Graph depth (waves) | "
           "batched sub-requests | login requests | exit |",
           "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for cmd in ("drift --all", "secrets --all"):
        if not data["available"].get(cmd.split()[0]):
            out.append(f"| `{cmd}` | | | pending: command not merged yet | | | | | | | |")
            continue
        for n in sorted({r["services"] for r in rows}):
            rs = [r for r in rows if r["command"] == cmd and r["services"] == n]
            if not rs:
                continue
            walls = [r["wall_s"] for r in rs]
            out.append(f"| `{cmd}` | {n} (+1) | {rs[0]['latency_ms']} ms | {med(walls):.2f} ({span(walls)}) | "
                       f"{med([r['cpu_s'] for r in rs]):.2f} | "
                       f"{ints([r['graph_requests'] for r in rs])} | {ints([r['graph_round_trips'] for r in rs])} | "
                       f"{ints([r['graph_depth'] for r in rs])} | {ints([r['batched'] for r in rs])} | {ints([r['login_requests'] for r in rs])} | "
                       f"{ints([r['exit'] for r in rs])} |")
    return "\n".join(out) + "\n"


def report_process(data):
    out = ["| measurement | median | mean ± σ | min–max | runs |", "|---|---:|---:|---|---:|"]
    names = {"version": "`entraform --version` (cold start)",
             "plan_noop": "`entraform plan` on a no-op (emulator, 0 ms)",
             "az_version": "`az version -o json` (for scale)"}
    for k, title in names.items():
        if k in data:
            r = data[k]
            out.append(f"| {title} | {r['median_s'] * 1000:.1f} ms | {r['mean_s'] * 1000:.1f} ± "
                       f"{r['stddev_s'] * 1000:.1f} ms | {r['min_s'] * 1000:.1f}–{r['max_s'] * 1000:.1f} ms | "
                       f"{r['runs']} |")
    out.append("")
    out.append("| peak RSS (`/usr/bin/time -v`, median) | MiB |")
    out.append("|---|---:|")
    titles = {"version": "`--version`", "plan_noop": "`plan` (no-op)",
              "apply_fresh": "`apply` (fresh create, secret, grants, fragments)",
              "drift_all": "`drift --all` (largest scale directory)"}
    for k, v in data["peak_rss_kb"].items():
        out.append(f"| {titles[k]} | {v / 1024:.1f} |")
    return "\n".join(out) + "\n"


def report_safety(d):
    def shape(v):
        return f"{v['length']} characters, Entra shape {'yes' if v['entra_shape'] else 'NO'}"
    out = ["| what | result |", "|---|---|",
           f"| `az ad app credential reset … -o tsv 2>&1 \\| push` (stderr not separated) | vault holds {shape(d['az_stderr_merged'])} |",
           f"| the same with `2>/dev/null` (the checklist's fix) | vault holds {shape(d['az_stderr_dropped'])} |",
           f"| `az ad app credential reset` without `--append` | passwords {d['az_reset_without_append']['passwords_before']} → {d['az_reset_without_append']['passwords_after']} |",
           f"| `entraform apply` (command vault) | vault holds {shape(d['entraform_apply'])} |",
           f"| `entraform rotate` | passwords {d['entraform_rotate']['passwords_before']} → {d['entraform_rotate']['passwords_after']}; vault holds {shape(d['entraform_rotate'])} |",
           f"| `entraform secrets` with the `2>&1` value in the vault | exit {d['entraform_secrets_on_corrupt_vault']['exit']}: “{d['entraform_secrets_on_corrupt_vault']['error']}” |"]
    return "\n".join(out) + "\n"


def machine(opts):
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")),
               platform.processor())
    ver = subprocess.run([opts.bin, "--version"], capture_output=True, text=True).stdout.strip()
    azv = ""
    if opts.az:
        p = subprocess.run([opts.az, "version", "-o", "json"], capture_output=True, text=True,
                           env=clean_env() | {"AZURE_CORE_COLLECT_TELEMETRY": "false"})
        try:
            azv = json.loads(p.stdout)["azure-cli"]
        except (ValueError, KeyError):
            azv = "?"
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    try:
        rel = Path(opts.bin).resolve().relative_to(ROOT)
    except ValueError:
        rel = Path(opts.bin).name
    return {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release(),
            "python": platform.python_version(), "entraform": ver, "binary": str(rel),
            "azure_cli": azv, "commit": commit}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="compare,scale,process,safety")
    ap.add_argument("--latencies", default="0,50,150")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--scale", default="10,50,200")
    ap.add_argument("--scale-latency", type=int, default=50)
    ap.add_argument("--scale-runs", type=int, default=3)
    ap.add_argument("--bin", default=os.environ.get("ENTRAFORM_BIN"))
    ap.add_argument("--az", default=os.environ.get("AZ", str(ROOT / ".venv-az" / "bin" / "az")))
    ap.add_argument("--json", help="write the raw measurements here")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    opts = ap.parse_args()
    if not opts.bin:
        rel = ROOT / "target" / "release" / "entraform"
        opts.bin = str(rel if rel.exists() else ROOT / "target" / "debug" / "entraform")
    if not os.access(opts.bin, os.X_OK):
        raise SystemExit(f"entraform binary not found at {opts.bin} (cargo build, or --bin)")
    sections = opts.only.split(",")
    if {"compare", "safety"} & set(sections) and not os.access(opts.az, os.X_OK):
        raise SystemExit(f"az not found at {opts.az}: python3 -m venv .venv-az && "
                         ".venv-az/bin/pip install azure-cli (or --az)")
    if not os.access(opts.az, os.X_OK):
        opts.az = None
    opts.latencies = [int(x) for x in opts.latencies.split(",")]
    opts.scale = [int(x) for x in opts.scale.split(",")]
    opts.scale_dir = None

    work = Path(tempfile.mkdtemp(prefix="entraform-bench-"))
    data = {"machine": machine(opts)}
    try:
        if "compare" in sections:
            data["compare"] = section_compare(opts, work)
        if "scale" in sections:
            data["scale"] = section_scale(opts, work)
            big = work / "scale" / f"n{max(opts.scale)}"
            opts.scale_dir = big if big.exists() else None
        if "process" in sections:
            data["process"] = section_process(opts, work)
        if "safety" in sections:
            data["safety"] = section_safety(opts, work)
    except Failed as e:
        log(f"FAILED: {e}")
        opts.keep = True
        raise SystemExit(1)
    finally:
        if opts.keep:
            log(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    m = data["machine"]
    print(f"Measured {m['date']} on {m['cores']} cores ({m['cpu']}, Linux {m['kernel']}); "
          f"{m['entraform']} (`{m['binary']}`, commit {m['commit']}), azure-cli {m['azure_cli']}, "
          f"Python {m['python']}.\n")
    if "compare" in data:
        print(report_compare(data["compare"]))
    if "scale" in data:
        print(report_scale(data["scale"]))
    if "process" in data:
        print(report_process(data["process"]))
    if "safety" in data:
        print(report_safety(data["safety"]))
    if opts.json:
        Path(opts.json).write_text(json.dumps(data, indent=1) + "\n")


if __name__ == "__main__":
    main()
