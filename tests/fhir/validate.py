#!/usr/bin/env python3
"""Independent validation of Ketacare's FHIR R4 API.

Starts a demo clinic (``ketacare demo --no-monitors``) on free ports and a temporary data
directory, reads through the FHIR API what a client would (the CapabilityStatement, the
patients, ``$everything`` of several patients, every searchable type per patient, a read of
one resource of each type, the Questionnaires, the audit trail as AuditEvents, an
OperationOutcome, and the Bulk Data ``$export`` as NDJSON, identified and de-identified), and
validates every resource with tools that share no code with Ketacare:

* ``fhir.resources`` 5.1.1, the FHIR R4 (4.0.1) models: element names, cardinality, required
  elements, data types; plus the R4 regular expressions of every primitive (``date``,
  ``dateTime``, ``instant``, ``id``, ``code``, ...), one value per choice element (``value[x]``)
  and no empty elements (ele-1), all read from the same models;
* ``fhirpathpy`` with the R4 model, for the invariants and profile rules the models skip: the
  R4 vital-signs profiles (category, LOINC code in the value set, UCUM quantities, subject and
  effective time, the blood-pressure panel's 8480-6 and 8462-4 components), obs-6, obs-7,
  con-3, the required status value sets, and the search Bundle's rules;
* reference integrity: every ``Type/id`` reference of a ``$everything`` Bundle or of an export
  resolves within it.

It fails with the list of invalid resources (type/id: problem). Run it with::

    python3 -m pip install -r tests/fhir/requirements.txt   # in a virtual environment
    cargo build -p ketacare
    python3 tests/fhir/validate.py

The binary is ``$KETACARE_BIN`` when set, else ``$CARGO_TARGET_DIR/debug/ketacare``, else
``target/debug/ketacare``.
"""

from __future__ import annotations

import http.cookiejar
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import fhir.resources
from fhir.resources.fhirabstractbase import FHIRAbstractBase, FHIRValidationError
from fhir.resources.fhirelementfactory import FHIRElementFactory
from fhirpathpy import evaluate
from fhirpathpy.models import models

REPO = Path(__file__).resolve().parent.parent.parent
PASSWORD = "demo-clinic-2026"
R4 = models["r4"]

# Patients of the demo clinic read one by one (the bulk export reads all of them): early
# patients with long rating-scale histories, the referrals of the screening workflow, and
# the patients on the treatment room's chairs (sessions with readings and doses).
SAMPLE_MRNS = ["KC-000001", "KC-000002", "KC-000003", "KC-000010", "KC-000065", "KC-000066", "KC-000067", "KC-000068", "KC-000069"]

# --------------------------------------------------------------------------------------------
# R4 primitive types (https://hl7.org/fhir/R4/datatypes.html)

_YEAR = r"([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)"
_TZ = r"(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))"
_TIME = r"([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?"
PRIMITIVE = {
    "date": rf"{_YEAR}(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1]))?)?",
    "dateTime": rf"{_YEAR}(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1])(T{_TIME}{_TZ})?)?)?",
    "instant": rf"{_YEAR}-(0[1-9]|1[0-2])-(0[1-9]|[1-2][0-9]|3[0-1])T{_TIME}{_TZ}",
    "time": _TIME,
    "id": r"[A-Za-z0-9\-\.]{1,64}",
    "code": r"[^\s]+(\s[^\s]+)*",
    "uri": r"\S*",
    "url": r"\S*",
    "canonical": r"\S*",
    "oid": r"urn:oid:[0-2](\.(0|[1-9][0-9]*))+",
    "string": r"[ \r\n\t\S]+",
    "markdown": r"[ \r\n\t\S]+",
}
PRIMITIVE_RE = {k: re.compile(rf"^{v}$") for k, v in PRIMITIVE.items()}

VITAL_SIGNS = {  # LOINC code -> UCUM units accepted (FHIR R4 vital-signs profiles)
    "85353-1": None, "9279-1": {"/min"}, "8867-4": {"/min"}, "2708-6": {"%"}, "59408-5": {"%"},
    "8310-5": {"Cel", "[degF]"}, "8302-2": {"cm", "[in_i]"}, "9843-4": {"cm", "[in_i]"},
    "29463-7": {"kg", "g", "[lb_av]"}, "39156-5": {"kg/m2"}, "85354-9": None,
    "8480-6": {"mm[Hg]"}, "8462-4": {"mm[Hg]"},
}

# Required bindings of the status-like codes (R4 value sets).
REQUIRED_CODES = {
    ("Observation", "status"): {"registered", "preliminary", "final", "amended", "corrected", "cancelled", "entered-in-error", "unknown"},
    ("QuestionnaireResponse", "status"): {"in-progress", "completed", "amended", "entered-in-error", "stopped"},
    ("MedicationRequest", "status"): {"active", "on-hold", "cancelled", "completed", "entered-in-error", "stopped", "draft", "unknown"},
    ("MedicationRequest", "intent"): {"proposal", "plan", "order", "original-order", "reflex-order", "filler-order", "instance-order", "option"},
    ("MedicationAdministration", "status"): {"in-progress", "not-done", "on-hold", "completed", "entered-in-error", "stopped", "unknown"},
    ("MedicationStatement", "status"): {"active", "completed", "entered-in-error", "intended", "stopped", "on-hold", "unknown", "not-taken"},
    ("Encounter", "status"): {"planned", "arrived", "triaged", "in-progress", "onleave", "finished", "cancelled", "entered-in-error", "unknown"},
    ("AdverseEvent", "actuality"): {"actual", "potential"},
    ("CarePlan", "status"): {"draft", "active", "on-hold", "revoked", "completed", "entered-in-error", "unknown"},
    ("CarePlan", "intent"): {"proposal", "plan", "order", "option"},
    ("AuditEvent", "action"): {"C", "R", "U", "D", "E"},
    ("AuditEvent", "outcome"): {"0", "4", "8", "12"},
    ("Questionnaire", "status"): {"draft", "active", "retired", "unknown"},
    ("Patient", "gender"): {"male", "female", "other", "unknown"},
    ("Bundle", "type"): {"document", "message", "transaction", "transaction-response", "batch", "batch-response", "history", "searchset", "collection"},
}

CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"


def fp(resource: dict, expression: str) -> list:
    return evaluate(resource, expression, {}, R4)


def holds(resource: dict, expression: str) -> bool:
    return fp(resource, expression) == [True]


# --------------------------------------------------------------------------------------------
# Validation


class Capture(logging.Handler):
    """fhir.resources logs (instead of raising) values it cannot parse, such as a bad date."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


CAPTURE = Capture()
logging.getLogger("fhir.resources").addHandler(CAPTURE)
logging.getLogger("fhir.resources").propagate = False


def walk_model(obj: FHIRAbstractBase, data: dict, path: str, problems: list[str]) -> None:
    """Primitive formats and one value per choice element, from the R4 models' definitions."""
    groups: Counter = Counter()
    for name, js, typ, type_name, is_list, of_many, _required in obj.elementProperties():
        if js not in data:
            continue
        raw = data[js]
        if of_many:
            groups[of_many] += 1
        values = raw if isinstance(raw, list) else [raw]
        here = f"{path}.{js}"
        rx = PRIMITIVE_RE.get(type_name)
        if rx is not None:
            for v in values:
                if not isinstance(v, str) or not rx.match(v):
                    problems.append(f"{here}: {v!r} is not a valid FHIR {type_name}")
        elif type_name in ("positiveInt", "unsignedInt", "integer"):
            for v in values:
                if isinstance(v, bool) or not isinstance(v, int) or (type_name == "positiveInt" and v < 1) or (type_name == "unsignedInt" and v < 0):
                    problems.append(f"{here}: {v!r} is not a FHIR {type_name}")
        elif type_name == "decimal":
            for v in values:
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    problems.append(f"{here}: {v!r} is not a FHIR decimal (a JSON number)")
        sub = getattr(obj, name, None)
        if isinstance(typ, type) and issubclass(typ, FHIRAbstractBase) and sub is not None:
            subs = sub if isinstance(sub, list) else [sub]
            for i, (s, d) in enumerate(zip(subs, values)):
                if isinstance(d, dict):
                    walk_model(s, d, f"{here}[{i}]" if is_list else here, problems)
    for group, n in groups.items():
        if n > 1:
            problems.append(f"{path}: {n} values for the choice element {group}[x]; one only")


def no_empty(v, path: str, problems: list[str]) -> None:
    """ele-1 and the JSON rules: no empty objects, arrays or strings, no nulls."""
    if v is None:
        problems.append(f"{path}: null")
    elif isinstance(v, dict):
        if not v:
            problems.append(f"{path}: empty object")
        for k, x in v.items():
            no_empty(x, f"{path}.{k}", problems)
    elif isinstance(v, list):
        if not v:
            problems.append(f"{path}: empty array")
        for i, x in enumerate(v):
            no_empty(x, f"{path}[{i}]", problems)
    elif isinstance(v, str) and not v.strip():
        problems.append(f"{path}: empty string")


def codes(concept) -> set[tuple[str, str]]:
    if not isinstance(concept, dict):
        return set()
    return {(c.get("system", ""), c.get("code", "")) for c in concept.get("coding", [])}


def profile_rules(r: dict, problems: list[str]) -> None:
    """R4 invariants and profile rules, in FHIRPath."""
    t = r.get("resourceType")
    for (rt, element), allowed in REQUIRED_CODES.items():
        if rt == t and element in r and r[element] not in allowed:
            problems.append(f"{element}: {r[element]!r} is not in the required value set")
    if t == "Observation":
        if not holds(r, "dataAbsentReason.empty() or value.empty()"):
            problems.append("obs-6: dataAbsentReason with a value")
        own = codes(r.get("code"))
        for i, c in enumerate(r.get("component", [])):
            if codes(c.get("code")) & own:
                problems.append(f"obs-7: component[{i}] has the code of the observation")
            if "valueQuantity" in c and c.get("dataAbsentReason"):
                problems.append(f"obs-6: component[{i}] has a value and a dataAbsentReason")
        if holds(r, "category.coding.where(system='http://terminology.hl7.org/CodeSystem/observation-category' and code='vital-signs').exists()"):
            vital_signs(r, problems)
    if t == "Condition":
        if holds(r, "category.coding.where(code='problem-list-item').exists()") and not holds(
            r, "clinicalStatus.exists() or verificationStatus.coding.where(code='entered-in-error').exists()"
        ):
            problems.append("con-3: a problem-list item needs clinicalStatus")
        if not holds(r, "verificationStatus.coding.where(code='entered-in-error').empty() or clinicalStatus.empty()"):
            problems.append("con-5: clinicalStatus with entered-in-error")
        if not codes(r.get("clinicalStatus")) <= {(CLINICAL, c) for c in ("active", "recurrence", "relapse", "inactive", "remission", "resolved")}:
            problems.append("clinicalStatus: not in the required value set")
        if not codes(r.get("verificationStatus")) <= {(VERIFICATION, c) for c in ("unconfirmed", "provisional", "differential", "confirmed", "refuted", "entered-in-error")}:
            problems.append("verificationStatus: not in the required value set")
    if t == "QuestionnaireResponse":
        if not holds(r, "item.all(linkId.exists())"):
            problems.append("every item needs its linkId")
        if not holds(r, "questionnaire.exists() and authored.exists() and subject.exists()"):
            problems.append("questionnaire, authored and subject are expected")
    if t == "Questionnaire":
        links = fp(r, "item.linkId")
        if len(links) != len(set(links)):
            problems.append("que-2: linkIds must be unique")
        if not holds(r, "item.all(type = 'display' or answerOption.empty() or type = 'choice' or type = 'integer')"):
            problems.append("que-5: answerOption on an item of a type without options")
    if t == "MedicationAdministration" and not holds(r, "effective.exists()"):
        problems.append("effective[x] is required")
    if t == "CarePlan":
        for c in r.get("contained", []):
            if f'"#{c.get("id")}"' not in json.dumps(r):
                problems.append(f"dom-3: contained {c.get('id')} is not referenced")
    if t == "AuditEvent" and not holds(r, "agent.exists() and source.observer.exists()"):
        problems.append("agent and source.observer are required")
    if t == "Provenance" and not holds(r, "target.exists() and agent.all(who.exists())"):
        problems.append("target and agent.who are required")
    if t != "Bundle" and t != "OperationOutcome" and t != "CapabilityStatement" and not r.get("id"):
        problems.append("a served resource has an id")


def vital_signs(r: dict, problems: list[str]) -> None:
    """The R4 vital-signs profile (and the bp profile for the panel)."""
    for rule, msg in [
        ("subject.exists()", "vs: subject is required"),
        ("effective.exists()", "vs: effective[x] is required"),
        ("code.coding.where(system='http://loinc.org').exists()", "vs: code needs a LOINC coding"),
        ("(component.empty() and hasMember.empty()) implies (dataAbsentReason.exists() or value.exists())", "vs-2: a value, components or members"),
        ("value.ofType(Quantity).all(system = 'http://unitsofmeasure.org' and code.exists() and value.exists())", "vs-3: quantities are UCUM with a code and a value"),
    ]:
        if not holds(r, rule):
            problems.append(msg)
    loinc = {c for s, c in codes(r.get("code")) if s == "http://loinc.org"}
    known = loinc & VITAL_SIGNS.keys()
    if not known:
        problems.append(f"vs: LOINC code {sorted(loinc)} is not in the vital-signs value set")
    for code in known:
        units = VITAL_SIGNS[code]
        q = r.get("valueQuantity")
        if units and q and q.get("code") not in units:
            problems.append(f"vs: {code} in {q.get('code')!r}; the profile takes {sorted(units)}")
    if "2708-6" not in loinc and "59408-5" in loinc:
        problems.append("oxygensat: the R4 profile fixes 2708-6 beside 59408-5")
    if "85354-9" in loinc:
        for comp, name in (("8480-6", "systolic"), ("8462-4", "diastolic")):
            expr = f"component.where(code.coding.where(system='http://loinc.org' and code='{comp}').exists())"
            if not holds(r, f"{expr}.exists()"):
                problems.append(f"bp: the {name} component {comp} is required")
            elif not holds(r, f"{expr}.all(value.exists() implies (value.ofType(Quantity).system = 'http://unitsofmeasure.org' and value.ofType(Quantity).code = 'mm[Hg]'))"):
                problems.append(f"bp: the {name} component is in mm[Hg] (UCUM)")
            elif not holds(r, f"{expr}.all(value.exists() or dataAbsentReason.exists())"):
                problems.append(f"bp: the {name} component has a value or a dataAbsentReason")


def validate(r: dict) -> list[str]:
    """Every problem of one resource."""
    problems: list[str] = []
    t = r.get("resourceType")
    if not isinstance(t, str):
        return ["no resourceType"]
    CAPTURE.messages.clear()
    try:
        model = FHIRElementFactory.instantiate(t, r)
    except FHIRValidationError as e:
        return [f"R4 structure: {m}" for m in str(e).splitlines()[1:] or [str(e)]]
    except Exception as e:  # unknown types raise other errors from the factory
        return [f"R4 structure: {type(e).__name__}: {e}"]
    if type(model).__name__ == "Element":
        return [f"{t} is not an R4 resource type"]
    problems.extend(f"R4 value: {m}" for m in CAPTURE.messages)
    walk_model(model, r, t, problems)
    no_empty(r, t, problems)
    profile_rules(r, problems)
    return problems


REF = re.compile(r"^([A-Z][A-Za-z]+)/([A-Za-z0-9\-\.]{1,64})(/_history/[0-9]+)?$")


def references(v, out: list[str]) -> None:
    if isinstance(v, dict):
        for k, x in v.items():
            if k == "reference" and isinstance(x, str):
                out.append(x)
            else:
                references(x, out)
    elif isinstance(v, list):
        for x in v:
            references(x, out)


# --------------------------------------------------------------------------------------------
# The demo clinic


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ketacare_binary() -> Path:
    if os.environ.get("KETACARE_BIN"):
        return Path(os.environ["KETACARE_BIN"])
    target = Path(os.environ.get("CARGO_TARGET_DIR") or "target")
    if not target.is_absolute():
        target = REPO / target
    return target / "debug" / "ketacare"


class Demo:
    def __init__(self) -> None:
        binary = ketacare_binary()
        if not binary.is_file():
            raise RuntimeError(f"{binary} does not exist: run `cargo build -p ketacare` or set KETACARE_BIN")
        self.dir = Path(tempfile.mkdtemp(prefix="ketacare-fhir-"))
        self.http_port, self.mllp_port = free_port(), free_port()
        while self.mllp_port == self.http_port:
            self.mllp_port = free_port()
        self.stdout_path, self.stderr_path = self.dir / "stdout.log", self.dir / "stderr.log"
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                [str(binary), "demo", "--port", str(self.http_port), "--data-dir", str(self.dir / "data"),
                 "--mllp-port", str(self.mllp_port), "--no-monitors"],
                stdout=out, stderr=err, stdin=subprocess.DEVNULL, cwd=self.dir,
                env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
            )
        self.base = f"http://127.0.0.1:{self.http_port}"
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout: float = 120.0) -> None:
        ready = f"Open http://127.0.0.1:{self.http_port} and log in as one of:"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready in self.stdout_path.read_text(errors="replace"):
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"ketacare demo exited with {self.proc.returncode}:\n{self.stderr_path.read_text(errors='replace')[-4000:]}")
            time.sleep(0.05)
        raise RuntimeError(f"ketacare demo not ready after {timeout} s")

    def stop(self) -> None:
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


class Client:
    """One logged-in user (session cookie), standard library only."""

    def __init__(self, base: str, username: str) -> None:
        self.base = base
        self.http = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        body = json.dumps({"username": username, "password": PASSWORD}).encode()
        req = urllib.request.Request(base + "/api/login", data=body, headers={"Content-Type": "application/json"})
        with self.http.open(req, timeout=30) as r:
            assert r.status == 200, f"login {username}"

    def get(self, path: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
        url = path if path.startswith("http") else self.base + path
        req = urllib.request.Request(url, headers=headers or {})
        try:
            with self.http.open(req, timeout=120) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def fhir(self, path: str) -> dict:
        status, headers, body = self.get(path)
        if status != 200:
            raise AssertionError(f"GET {path}: {status} {body[:500]!r}")
        ct = headers.get("Content-Type", headers.get("content-type", ""))
        if not ct.startswith("application/fhir+json"):
            raise AssertionError(f"GET {path}: content type {ct!r}, expected application/fhir+json")
        return json.loads(body)

    def export(self, query: str = "") -> tuple[dict, dict[str, list[dict]]]:
        status, headers, body = self.get("/fhir/$export" + query, {"Prefer": "respond-async", "Accept": "application/fhir+json"})
        assert status == 202, f"$export kick-off: {status} {body[:300]!r}"
        location = headers.get("Content-Location") or headers.get("content-location")
        for _ in range(2400):
            status, _, body = self.get(location)
            if status == 200:
                break
            assert status == 202, f"$export status: {status} {body[:300]!r}"
            time.sleep(0.05)
        else:
            raise AssertionError("the export did not finish in 2 minutes")
        manifest = json.loads(body)
        files = {}
        for out in manifest["output"]:
            status, headers, body = self.get(out["url"])
            assert status == 200, f"{out['url']}: {status}"
            ct = headers.get("Content-Type", headers.get("content-type", ""))
            assert ct == "application/fhir+ndjson", f"{out['url']}: content type {ct!r}"
            lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
            assert len(lines) == out["count"], f"{out['type']}: {len(lines)} lines, manifest says {out['count']}"
            files[out["type"]] = lines
        return manifest, files


# --------------------------------------------------------------------------------------------
# The run


class Report:
    def __init__(self) -> None:
        self.checked = 0
        self.invalid: list[str] = []
        self.types: Counter = Counter()

    def resource(self, where: str, r: dict) -> None:
        self.checked += 1
        self.types[r.get("resourceType", "?")] += 1
        for p in validate(r):
            self.invalid.append(f"{where} {r.get('resourceType')}/{r.get('id', '-')}: {p}")

    def fail(self, where: str, message: str) -> None:
        self.checked += 1
        self.invalid.append(f"{where}: {message}")

    def searchset(self, where: str, b: dict, integrity: bool = False) -> list[dict]:
        # The Bundle itself (its entries' resources are validated one by one below).
        shell = dict(b)
        if b.get("entry"):
            shell["entry"] = [{"fullUrl": e.get("fullUrl"), "search": e.get("search")} for e in b["entry"]]
        self.resource(where, shell)
        if b.get("type") != "searchset":
            self.fail(where, f"Bundle.type is {b.get('type')!r}, expected searchset")
        entries = b.get("entry", [])
        if b.get("total") != len(entries):
            self.fail(where, f"Bundle.total {b.get('total')} but {len(entries)} entries")
        urls = [e.get("fullUrl") for e in entries]
        if len(set(urls)) != len(urls):
            self.fail(where, "bdl-7: fullUrl must be unique")
        resources = []
        for e in entries:
            r = e.get("resource", {})
            if e.get("search", {}).get("mode") != "match":
                self.fail(where, f"{r.get('resourceType')}/{r.get('id')}: search.mode is expected")
            if not str(e.get("fullUrl", "")).endswith(f"/{r.get('resourceType')}/{r.get('id')}"):
                self.fail(where, f"fullUrl {e.get('fullUrl')} does not name {r.get('resourceType')}/{r.get('id')}")
            self.resource(where, r)
            resources.append(r)
        if integrity:
            self.integrity(where, resources)
        return resources

    def integrity(self, where: str, resources: list[dict]) -> None:
        have = {f"{r['resourceType']}/{r['id']}" for r in resources if "id" in r}
        for r in resources:
            refs: list[str] = []
            references(r, refs)
            for ref in refs:
                if ref.startswith("#"):
                    if not any(c.get("id") == ref[1:] for c in r.get("contained", [])):
                        self.fail(where, f"{r['resourceType']}/{r.get('id')}: {ref} names no contained resource")
                    continue
                m = REF.match(ref)
                if not m:
                    self.fail(where, f"{r['resourceType']}/{r.get('id')}: reference {ref!r} is not Type/id")
                elif f"{m.group(1)}/{m.group(2)}" not in have:
                    self.fail(where, f"{r['resourceType']}/{r.get('id')}: reference {ref} does not resolve")


def deidentified(where: str, files: dict[str, list[dict]], report: Report, secrets: list[str]) -> None:
    text = json.dumps(files)
    for s in secrets:
        if s and s in text:
            report.fail(where, f"identifying value {s!r} in the de-identified export")
    for p in files.get("Patient", []):
        for k in ("name", "telecom", "address", "contact", "photo"):
            if k in p:
                report.fail(where, f"Patient/{p['id']}: {k} in the de-identified export")
        if not str(p.get("id", "")).startswith("R-"):
            report.fail(where, f"Patient/{p.get('id')}: the id is not a research id")
        if "birthDate" in p and len(p["birthDate"]) != 4:
            report.fail(where, f"Patient/{p['id']}: birthDate is more than a year")
        if any(i.get("system") != "urn:ketacare:research-id" for i in p.get("identifier", [])):
            report.fail(where, f"Patient/{p['id']}: an identifier other than the research id")


def main() -> int:
    print(f"fhir.resources {fhir.resources.__version__} (FHIR {fhir.resources.__fhir_version__}); ketacare {ketacare_binary()}")
    if fhir.resources.__fhir_version__ != "4.0.1":
        print("tests/fhir/requirements.txt pins the R4 (4.0.1) models; install them", file=sys.stderr)
        return 2
    demo = Demo()
    report = Report()
    started = time.monotonic()
    try:
        nurse = Client(demo.base, "nurse")
        director = Client(demo.base, "director")
        researcher = Client(demo.base, "researcher")

        cap = nurse.fhir("/fhir/metadata")
        report.resource("metadata", cap)
        if cap.get("fhirVersion") != "4.0.1":
            report.fail("metadata", f"fhirVersion {cap.get('fhirVersion')}")
        served = {r["type"]: r for r in cap["rest"][0]["resource"]}

        patients = report.searchset("Patient search", nurse.fhir("/fhir/Patient"))
        by_mrn = {p["identifier"][0]["value"]: p for p in patients}
        board = json.loads(nurse.get("/api/board")[2])["chairs"]
        sample = [by_mrn[m]["id"] for m in SAMPLE_MRNS if m in by_mrn]
        for chair in board:
            session = json.loads(nurse.get(f"/api/sessions/{chair['session_id']}")[2])
            pid = session.get("patient_id") or session.get("session", {}).get("patient_id")
            if pid and pid not in sample:
                sample.append(pid)
        secrets: list[str] = []
        for pid in sample:
            b = nurse.fhir(f"/fhir/Patient/{pid}/$everything")
            resources = report.searchset(f"$everything {pid}", b, integrity=True)
            mine = [r for r in resources if r["resourceType"] == "Patient"]
            if len(mine) != 1 or mine[0]["id"] != pid:
                report.fail(f"$everything {pid}", "the Bundle must hold the patient once")
                continue
            p = mine[0]
            secrets += [pid, p["identifier"][0]["value"], p["name"][0]["family"], p.get("birthDate", "")]
            counts = Counter(r["resourceType"] for r in resources)
            for t, support in served.items():
                names = [sp["name"] for sp in support.get("searchParam", [])]
                if "patient" not in names or t == "AuditEvent":
                    continue
                found = report.searchset(f"{t}?patient={pid}", nurse.fhir(f"/fhir/{t}?patient=Patient/{pid}"))
                if len(found) != counts.get(t, 0):
                    report.fail(f"{t}?patient={pid}", f"{len(found)} found; $everything has {counts.get(t, 0)}")
                if found and any(i["code"] == "read" for i in support["interaction"]):
                    one = nurse.fhir(f"/fhir/{t}/{found[0]['id']}")
                    report.resource(f"read {t}", one)
                    if one != found[0]:
                        report.fail(f"read {t}/{found[0]['id']}", "differs from the search result")
        for q in report.searchset("Questionnaire search", nurse.fhir("/fhir/Questionnaire")):
            report.resource("read Questionnaire", nurse.fhir(f"/fhir/Questionnaire/{q['id']}"))
        report.searchset("AuditEvent search", director.fhir(f"/fhir/AuditEvent?patient={sample[0]}&date=ge2000-01-01"))

        status, _, body = nurse.get(f"/fhir/Observation?patient={sample[0]}&date=yesterday")
        oo = json.loads(body)
        report.resource("OperationOutcome", oo)
        if status != 400 or oo.get("issue", [{}])[0].get("expression") != ["date"]:
            report.fail("OperationOutcome", f"a bad date gives 400 naming date; got {status} {oo}")

        manifest, files = nurse.export()
        everything = [r for lines in files.values() for r in lines]
        for r in everything:
            report.resource("export", r)
        report.integrity("export", everything)
        exported = {p["id"] for p in files.get("Patient", [])}
        if exported != {p["id"] for p in patients}:
            report.fail("export", f"{len(exported)} patients exported, {len(patients)} current")
        _, files = researcher.export()
        everything = [r for lines in files.values() for r in lines]
        for r in everything:
            report.resource("research export", r)
        report.integrity("research export", everything)
        deidentified("research export", files, report, secrets)
        if manifest.get("requiresAccessToken") is not True or not manifest.get("transactionTime"):
            report.fail("export manifest", "requiresAccessToken and transactionTime are required")
    finally:
        demo.stop()

    seconds = time.monotonic() - started
    print(f"Validated {report.checked} resources and checks in {seconds:.0f} s: " + ", ".join(f"{t} {n}" for t, n in sorted(report.types.items())))
    if report.invalid:
        print(f"\n{len(report.invalid)} problems:", file=sys.stderr)
        for line in report.invalid:
            print(f"  {line}", file=sys.stderr)
    failed = len({line.split(":")[0] for line in report.invalid})
    print(f"{report.checked - failed} passed, {failed} failed")
    return 1 if report.invalid else 0


if __name__ == "__main__":
    sys.exit(main())
