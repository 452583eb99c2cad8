#!/usr/bin/env python3
"""API fuzzing of a demo clinic against its own OpenAPI document, with schemathesis.

Starts ``ketacare demo --no-monitors`` on free ports in a temporary directory, issues API tokens
for a prescriber, the medical director and an administrator (each role reaches different
operations), and runs schemathesis once per role over every documented operation: examples,
coverage (boundary and invalid values), random fuzzing and stateful sequences. Operations under
``/api/patients/{id}`` and ``/fhir/Patient/{id}`` get a real demo patient's id.

What must hold (the checks passed to schemathesis):

- ``not_a_server_error``: no 5xx, whatever is sent;
- ``status_code_conformance``: every status is documented (each operation documents its own
  and a ``default`` error answer with a ``Problem`` body);
- ``content_type_conformance`` and ``response_headers_conformance``;
- ``response_schema_conformance``: every body matches its documented schema.

Not checked: ``positive_data_acceptance`` (the document gives types; the server also checks
clinical rules an MRN format, a dose range, an id that exists, so schema-valid input is often
refused, on purpose) and ``negative_data_rejection`` (the server accepts numbers given as text
where it says so, and clamps paging values).

Environment: ``KETACARE_BIN`` (the binary), ``APIFUZZ_EXAMPLES`` (examples per operation and
phase, default 10), ``APIFUZZ_SEED`` (default 1, so a failure reproduces).
Exit status 0 when every run passes.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

CHECKS = ",".join([
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
])
PASSWORD = "demo-clinic-2026"
ROLES = ["prescriber", "director", "admin"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(base: str, path: str, body: dict | None = None, cookie: str | None = None) -> tuple[dict | list, str | None]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json", "Origin": base}
    if cookie:
        headers["Cookie"] = cookie
    req = urllib.request.Request(base + path, data=data, headers=headers, method="POST" if data else "GET")
    with urllib.request.urlopen(req, timeout=30) as r:
        set_cookie = r.headers.get("Set-Cookie")
        return json.loads(r.read() or b"null"), set_cookie


def tokens(base: str) -> dict[str, str]:
    _, set_cookie = request(base, "/api/login", {"username": "admin", "password": PASSWORD})
    cookie = set_cookie.split(";")[0]
    users, _ = request(base, "/api/admin/users", cookie=cookie)
    out = {}
    for role in ROLES:
        uid = next(u["id"] for u in users if u["username"] == role)
        t, _ = request(base, "/api/admin/tokens", {"user_id": uid, "label": f"API fuzzing as {role}"}, cookie=cookie)
        out[role] = t["secret"]
    return out


def patient_id(base: str, token: str) -> str:
    """A demo patient with a full chart, so the patient operations reach their logic."""
    req = urllib.request.Request(base + "/api/patients?q=KC-000021", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())[0]["id"]


def config(work: Path, pid: str) -> Path:
    """Path parameters that name a real patient, for the operations under /api/patients/{id}
    and /fhir/Patient/{id} (other ids are generated, and mostly answered 404 as documented)."""
    path = work / "schemathesis.toml"
    blocks = []
    for prefix in ["/api/patients/", "/fhir/Patient/"]:
        regex = "^" + prefix + "\\\\{id\\\\}"
        blocks.append(f'[[operations]]\ninclude-path-regex = "{regex}"\nparameters = {{ "path.id" = "{pid}" }}\n')
    path.write_text("\n".join(blocks))
    return path


def main() -> int:
    binary = Path(os.environ.get("KETACARE_BIN", "target/debug/ketacare")).resolve()
    try:
        import schemathesis  # noqa: F401
    except ImportError:
        print("schemathesis is not installed: python3 -m pip install -r tests/apifuzz/requirements.txt", file=sys.stderr)
        return 2
    st = [sys.executable, "-m", "schemathesis.cli"]
    examples = os.environ.get("APIFUZZ_EXAMPLES", "10")
    seed = os.environ.get("APIFUZZ_SEED", "1")
    work = Path(tempfile.mkdtemp(prefix="ketacare-apifuzz-"))
    port, mllp = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    log = open(work / "server.log", "w")
    proc = subprocess.Popen(
        [str(binary), "demo", "--port", str(port), "--data-dir", str(work / "data"), "--mllp-port", str(mllp), "--no-monitors"],
        stdout=subprocess.PIPE, stderr=log, text=True,
    )
    failed = []
    try:
        deadline = time.time() + 180
        while True:
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError(f"ketacare demo exited with {proc.wait()}; see {work / 'server.log'}")
            if line.startswith("Open http://"):
                break
            if time.time() > deadline:
                raise RuntimeError("ketacare demo was not ready within 180 s")
        issued = tokens(base)
        cfg = config(work, patient_id(base, issued["prescriber"]))
        for role, token in issued.items():
            print(f"== API fuzzing as {role}: {examples} examples per operation and phase, seed {seed} ==", flush=True)
            started = time.time()
            r = subprocess.run([
                *st, "--config-file", str(cfg), "run", f"{base}/api/openapi.json", "--url", base,
                "-H", f"Authorization: Bearer {token}",
                "--checks", CHECKS, "--max-examples", examples, "--seed", seed,
                "--workers", "2", "--no-color",
            ], cwd=work)
            print(f"== {role}: exit {r.returncode} in {time.time() - started:.0f} s ==", flush=True)
            if r.returncode != 0:
                failed.append(role)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        if not failed:
            shutil.rmtree(work, ignore_errors=True)
    if failed:
        print(f"API fuzzing FAILED as {', '.join(failed)} (server log: {work / 'server.log'})", file=sys.stderr)
        return 1
    print("API fuzzing: no server error, every status, content type, header and body as documented")
    return 0


if __name__ == "__main__":
    sys.exit(main())
