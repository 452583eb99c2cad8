"""Interoperability test: HL7 v2 ORU^R01 built by an independent HL7 library reaches Ketacare.

Messages are built and validated with hl7apy (strict validation against the HL7 v2.6
structures), sent over MLLP with python-hl7's MLLPClient, the ACKs are read back with both
libraries, and what was stored is read from Ketacare's HTTP JSON API (standard library only).

One demo clinic (``ketacare demo --no-monitors``) is started for the whole module, on free
ports and a temporary data directory, and stopped with SIGTERM at the end (a clean exit is part
of the test).

Run it with ``python3 tests/interop/test_mllp_interop.py`` (or pytest). It needs the debug
binary: ``KETACARE_BIN`` names it, else ``$CARGO_TARGET_DIR/debug/ketacare``, else
``target/debug/ketacare`` in the repository (build it with ``cargo build -p ketacare``).
"""

from __future__ import annotations

import http.cookiejar
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import hl7
import hl7.client
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.core import Message
from hl7apy.parser import parse_message

REPO = Path(__file__).resolve().parent.parent.parent

SB, EB, CR = b"\x0b", b"\x1c", b"\x0d"

# The demo's treatment room (crates/ketacare-demo): three chairs in phase `monitoring`.
DEV1, DEV2, DEV3 = "00A0B1C2D3E4F501", "00A0B1C2D3E4F502", "00A0B1C2D3E4F503"
CHAIR1, CHAIR2, CHAIR3 = "ROOM1^CHAIR1", "ROOM1^CHAIR2", "ROOM1^CHAIR3"
LOGIN = {"username": "nurse", "password": "demo-clinic-2026"}

# ISO/IEEE 11073 MDC observation ids and units as IHE PCD-01 monitors send them.
SYS = "150021^MDC_PRESS_BLD_NONINV_SYS^MDC"
DIA = "150022^MDC_PRESS_BLD_NONINV_DIA^MDC"
HR = "147842^MDC_ECG_HEART_RATE^MDC"
SPO2 = "150456^MDC_PULS_OXIM_SAT_O2^MDC"
RR = "151562^MDC_RESP_RATE^MDC"
MMHG = "266016^MDC_DIM_MMHG^MDC"
BPM = "264864^MDC_DIM_BEAT_PER_MIN^MDC"
PCT = "262688^MDC_DIM_PERCENT^MDC"
RPM = "264928^MDC_DIM_RESP_PER_MIN^MDC"
PCD01_PROFILE = "IHE_PCD_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.1.1^ISO"
MONITORING_OF_PATIENT = "182777000^monitoring of patient^SCT"

LOINC = {"systolic": "8480-6", "diastolic": "8462-4", "heart_rate": "8867-4", "spo2": "59408-5", "respiratory_rate": "9279-1"}
UNIT = {"systolic": "mm[Hg]", "diastolic": "mm[Hg]", "heart_rate": "/min", "spo2": "%", "respiratory_rate": "/min"}

NO_SESSION = "no active treatment session is bound to this monitor or location"


# ---------------------------------------------------------------------------------------------
# Times: every message gets its own instants (a resent reading with the same vital and time is
# stored once, so distinct cases must never share one). They start one second after the demo is
# ready and advance by a second per call: a few tens of seconds ahead at most, well inside the
# five minutes of clock skew the intake tolerates.


class Clock:
    def __init__(self) -> None:
        start = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=1)
        self._ticks = (start + timedelta(seconds=n) for n in itertools.count())

    def next(self) -> datetime:
        return next(self._ticks)


def dtm(at: datetime, offset_minutes: int = 0) -> str:
    """HL7 DTM `YYYYMMDDHHMMSS+ZZZZ` of a UTC instant, written in the given UTC offset."""
    local = at.astimezone(timezone(timedelta(minutes=offset_minutes)))
    sign = "-" if offset_minutes < 0 else "+"
    hours, minutes = divmod(abs(offset_minutes), 60)
    return local.strftime("%Y%m%d%H%M%S") + f"{sign}{hours:02d}{minutes:02d}"


_control_ids = itertools.count(1)


def control_id(tag: str) -> str:
    return f"IOP{os.getpid()}-{next(_control_ids)}-{tag}"


# ---------------------------------------------------------------------------------------------
# Building messages with hl7apy


@dataclass
class Obx:
    observation_id: str
    value: str
    unit: str = ""
    at: str = ""  # OBX-14, empty for none
    equipment: str | None = None  # OBX-18, None for none
    status: str = "F"
    value_type: str = "NM"


def oru(
    cid: str,
    observations: list[Obx],
    *,
    msh3: str = f"MONITOR^{DEV1}^EUI-64",
    location: str | None = CHAIR1,
    message_time: str,
    version: str = "2.6",
    processing_id: str = "P",
    validation: int = VALIDATION_LEVEL.STRICT,
) -> str:
    """An ORU^R01 in the IHE PCD-01 shape, built (and by default strictly validated) by hl7apy."""
    m = Message("ORU_R01", version=version, validation_level=validation)
    if msh3:
        m.msh.msh_3 = msh3
    m.msh.msh_4 = "INTEROP"
    m.msh.msh_5 = "KETACARE"
    m.msh.msh_6 = "CLINIC"
    m.msh.msh_7 = message_time
    # The message structure (MSH-9.3) and the profile (MSH-21) exist from v2.4 and v2.5 on.
    m.msh.msh_9 = "ORU^R01" if version in ("2.3", "2.3.1") else "ORU^R01^ORU_R01"
    m.msh.msh_10 = cid
    m.msh.msh_11 = processing_id
    m.msh.msh_15 = "AL"
    m.msh.msh_16 = "NE"
    if version not in ("2.3", "2.3.1", "2.4"):
        m.msh.msh_21 = PCD01_PROFILE
    result = m.add_group("ORU_R01_RESPONSE" if version == "2.3" else "ORU_R01_PATIENT_RESULT")
    patient = result.add_group("ORU_R01_PATIENT")
    patient.pid.pid_3 = "MRN-IOP-1^^^INTEROP^MR"
    patient.pid.pid_5 = "SYNTHETIC^PATIENT"
    if location is not None:
        visit = patient.add_group("ORU_R01_VISIT")
        visit.pv1.pv1_2 = "O"
        visit.pv1.pv1_3 = location
    order = result.add_group("ORU_R01_ORDER_OBSERVATION")
    order.obr.obr_1 = "1"
    order.obr.obr_3 = f"{cid}^{msh3}" if msh3 else cid
    order.obr.obr_4 = MONITORING_OF_PATIENT
    order.obr.obr_7 = message_time
    if version == "2.3":
        order.obr.obr_27 = "1"  # quantity/timing: required by the v2.3 OBR
    for i, o in enumerate(observations, start=1):
        obx = order.add_group("ORU_R01_OBSERVATION").obx
        obx.obx_1 = str(i)
        if o.value_type:
            obx.obx_2 = o.value_type
        obx.obx_3 = o.observation_id
        obx.obx_4 = f"1.0.1.{i}"
        if o.value:
            obx.obx_5 = o.value
        if o.unit:
            obx.obx_6 = o.unit
        obx.obx_11 = o.status
        if o.at:
            obx.obx_14 = o.at
        if o.equipment:
            obx.obx_18 = o.equipment
    if validation == VALIDATION_LEVEL.STRICT:
        assert m.validate(), "hl7apy does not consider the message valid"
        # And the wire form parses back into a valid message.
        assert parse_message(m.to_er7(), validation_level=VALIDATION_LEVEL.STRICT).validate()
    return m.to_er7()


def adt_a01(cid: str, message_time: str) -> str:
    m = Message("ADT_A01", version="2.6", validation_level=VALIDATION_LEVEL.STRICT)
    m.msh.msh_3 = f"MONITOR^{DEV1}^EUI-64"
    m.msh.msh_5 = "KETACARE"
    m.msh.msh_7 = message_time
    m.msh.msh_9 = "ADT^A01^ADT_A01"
    m.msh.msh_10 = cid
    m.msh.msh_11 = "P"
    m.evn.evn_2 = message_time
    m.pid.pid_3 = "MRN-IOP-1^^^INTEROP^MR"
    m.pid.pid_5 = "SYNTHETIC^PATIENT"
    m.pv1.pv1_2 = "O"
    m.pv1.pv1_3 = CHAIR1
    assert m.validate()
    return m.to_er7()


# ---------------------------------------------------------------------------------------------
# MLLP client (python-hl7) and ACKs


class Client(hl7.client.MLLPClient):
    """python-hl7's MLLPClient with a timeout, reading the whole ACK frame (the base class does
    a single recv, which may return part of a frame) and writing the whole request."""

    def __init__(self, port: int, timeout: float = 10.0) -> None:
        super().__init__("127.0.0.1", port)
        self.socket.settimeout(timeout)
        self._pending = b""

    def send(self, data: bytes) -> bytes:
        self.socket.sendall(data)
        return self.read_frame()

    def read_frame(self) -> bytes:
        while EB + CR not in self._pending:
            chunk = self.socket.recv(4096)
            if not chunk:
                raise ConnectionError(f"connection closed before a whole ACK; got {self._pending!r}")
            self._pending += chunk
        end = self._pending.index(EB + CR) + 2
        frame, self._pending = self._pending[:end], self._pending[end:]
        return frame

    def ack(self, message: str | bytes, strict: bool = True) -> "Ack":
        return Ack.parse(self.send_message(message), strict)


@dataclass
class Ack:
    code: str  # MSA-1
    control_id: str  # MSA-2
    text: str  # MSA-3
    msh: hl7.Segment
    raw: str

    @classmethod
    def parse(cls, frame: bytes, strict: bool = True) -> "Ack":
        assert frame.startswith(SB) and frame.endswith(EB + CR), f"not an MLLP frame: {frame!r}"
        raw = frame[1:-2].decode("utf-8")
        # python-hl7 reads it...
        msg = hl7.parse(raw)
        msa = msg.segment("MSA")
        field = lambda seg, n: str(seg[n]) if len(seg) > n else ""  # noqa: E731
        ack = cls(code=field(msa, 1), control_id=field(msa, 2), text=msg.unescape(field(msa, 3)), msh=msg.segment("MSH"), raw=raw)
        # ...and hl7apy agrees and finds it a valid v2.6 ACK (MSA-2 is required there, so an
        # ACK that cannot echo a control id is only parsed, not validated).
        strict = strict and bool(ack.control_id)
        if ack.field(12) == "2.3":
            # hl7apy 1.3.5 names a message by the structure in MSH-9, which v2.3 does not have:
            # python-hl7's reading above is the check for v2.3 (see test_11).
            assert ack.field(9) == "ACK^R01", ack.field(9)
            return ack
        level = VALIDATION_LEVEL.STRICT if strict else VALIDATION_LEVEL.TOLERANT
        parsed = parse_message(raw, validation_level=level)
        assert parsed.name == "ACK", parsed.name
        if strict:
            assert parsed.validate(), f"hl7apy finds the ACK invalid: {raw!r}"
        assert parsed.msa.msa_1.value == ack.code
        assert parsed.msa.msa_2.value == ack.control_id
        return ack

    def field(self, n: int) -> str:
        """MSH-n of the ACK (python-hl7 counts MSH-1, the field separator, as msh[1])."""
        return str(self.msh[n])


# ---------------------------------------------------------------------------------------------
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
        self.dir = Path(tempfile.mkdtemp(prefix="ketacare-interop-"))
        self.http_port, self.mllp_port = free_port(), free_port()
        while self.mllp_port == self.http_port:
            self.mllp_port = free_port()
        self.stdout_path, self.stderr_path = self.dir / "stdout.log", self.dir / "stderr.log"
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                [str(binary), "demo", "--port", str(self.http_port), "--data-dir", str(self.dir / "data"),
                 "--mllp-port", str(self.mllp_port), "--no-monitors"],
                stdout=out, stderr=err, stdin=subprocess.DEVNULL, cwd=self.dir,
                env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "info")},
            )
        self.base = f"http://127.0.0.1:{self.http_port}"
        try:
            self._wait_ready()
            jar = http.cookiejar.CookieJar()
            self.http = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
            self.post_json("/api/login", LOGIN)
        except BaseException:
            self.stop(check=False)
            raise

    def _wait_ready(self, timeout: float = 60.0) -> None:
        ready = f"Open http://127.0.0.1:{self.http_port} and log in as one of:"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready in self.stdout_path.read_text(errors="replace"):
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"ketacare demo exited with {self.proc.returncode}:\n{self.logs()}")
            time.sleep(0.05)
        raise RuntimeError(f"ketacare demo not ready after {timeout} s:\n{self.logs()}")

    def logs(self, tail: int = 40) -> str:
        out = self.stdout_path.read_text(errors="replace")
        err = self.stderr_path.read_text(errors="replace").splitlines()[-tail:]
        return f"--- stdout\n{out}\n--- stderr (last {tail} lines)\n" + "\n".join(err)

    def post_json(self, path: str, body: dict) -> dict:
        req = urllib.request.Request(self.base + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
        with self.http.open(req, timeout=10) as r:
            return json.load(r)

    def get_json(self, path: str) -> dict:
        with self.http.open(self.base + path, timeout=10) as r:
            return json.load(r)

    def board_chair(self, chair: str) -> dict:
        chairs = [c for c in self.get_json("/api/board")["chairs"] if c["chair"] == chair]
        assert len(chairs) == 1, f"the board shows {len(chairs)} sessions on {chair}"
        return chairs[0]

    def session_id(self, chair: str) -> str:
        return self.board_chair(chair)["session_id"]

    def readings(self, chair: str) -> list[dict]:
        return self.get_json(f"/api/sessions/{self.session_id(chair)}")["readings"]

    def stop(self, check: bool = True) -> None:
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
                    if check:
                        raise AssertionError(f"ketacare demo did not stop within 15 s of SIGTERM:\n{self.logs()}")
            if check and self.proc.returncode != 0:
                raise AssertionError(f"ketacare demo exited with {self.proc.returncode} on SIGTERM:\n{self.logs()}")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def at_of(reading: dict) -> datetime:
    return datetime.fromisoformat(reading["observed_at"])


def hl7_readings(readings: list[dict], instants: set[datetime]) -> list[dict]:
    return [r for r in readings if r["source"] == "hl7" and at_of(r) in instants]


# ---------------------------------------------------------------------------------------------
# The cases


class MllpInterop(unittest.TestCase):
    demo: Demo
    clock: Clock

    @classmethod
    def setUpClass(cls) -> None:
        cls.started = time.monotonic()
        cls.demo = Demo()
        cls.clock = Clock()

    @classmethod
    def tearDownClass(cls) -> None:
        # Raises (an error of the module) when the demo does not exit cleanly on SIGTERM.
        cls.demo.stop()

    def client(self) -> Client:
        c = Client(self.demo.mllp_port)
        self.addCleanup(c.close)
        return c

    def assert_ack(self, ack: Ack, code: str, cid: str, text: str | None = None) -> None:
        msg = f"ACK {ack.raw!r}"
        self.assertEqual(ack.code, code, msg)
        self.assertEqual(ack.control_id, cid, msg)
        if text is not None:
            self.assertIn(text, ack.text, msg)
        # ACK^R01^ACK from v2.3.1 on; v2.3 has no third component (see test_11).
        self.assertEqual(ack.field(9).split("^")[:2], ["ACK", "R01"], msg)
        self.assertEqual(ack.field(11), "P", msg)
        if code != "AA":
            self.assertIn("\rERR|", ack.raw, msg)

    def good(self, tag: str, location: str = CHAIR1, device: str = DEV1) -> tuple[str, str, datetime]:
        """A small valid message (one heart rate) and its control id and observation time."""
        at = self.clock.next()
        cid = control_id(tag)
        msg = oru(cid, [Obx(HR, "70", BPM, dtm(at), f"{device}^EUI-64")], msh3=f"MONITOR^{device}^EUI-64", location=location, message_time=dtm(at))
        return msg, cid, at

    def assert_good_accepted(self, client: Client, tag: str) -> None:
        msg, cid, at = self.good(tag)
        self.assert_ack(client.ack(msg), "AA", cid, "stored 1")
        self.assertEqual(len(hl7_readings(self.demo.readings(CHAIR1), {at})), 1)

    # 1 ------------------------------------------------------------------------------------------
    def test_01_pcd01_message_is_acknowledged_and_stored_exactly(self) -> None:
        bp_at, vitals_at = self.clock.next(), self.clock.next()
        cid = control_id("pcd01")
        eq = f"{DEV1}^EUI-64"
        # Per-value OBX-14 in three different UTC offsets; MSH-7 and OBR-7 are other instants.
        msg = oru(cid, [
            Obx(SYS, "128", MMHG, dtm(bp_at, +120), eq),
            Obx(DIA, "82", MMHG, dtm(bp_at, +120), eq),
            Obx(HR, "72", BPM, dtm(vitals_at, -300), eq),
            Obx(SPO2, "98", PCT, dtm(vitals_at, 0), eq),
        ], message_time=dtm(vitals_at + timedelta(seconds=30)))
        self.assertIn(f"MSH|^~\\&|MONITOR^{DEV1}^EUI-64|", msg)
        self.assertIn(PCD01_PROFILE, msg)

        ack = self.client().ack(msg)
        self.assert_ack(ack, "AA", cid, "stored 4")
        self.assertEqual(ack.text, "stored 4")
        # Sender and receiver swapped, version echoed.
        self.assertEqual(ack.field(9), "ACK^R01^ACK")
        self.assertEqual(ack.field(10), f"ACK{cid}")
        self.assertEqual(ack.field(3), "KETACARE")
        self.assertEqual(ack.field(5), f"MONITOR^{DEV1}^EUI-64")
        self.assertEqual(ack.field(12), "2.6")

        got = hl7_readings(self.demo.readings(CHAIR1), {bp_at, vitals_at})
        want = [("systolic", "128", bp_at), ("diastolic", "82", bp_at), ("heart_rate", "72", vitals_at), ("spo2", "98", vitals_at)]
        self.assertEqual(
            sorted((r["vital"], r["loinc"], r["value"], r["unit"], at_of(r), r["source"], r["device_id"]) for r in got),
            sorted((v, LOINC[v], value, UNIT[v], at, "hl7", DEV1) for v, value, at in want),
        )

    # 2 ------------------------------------------------------------------------------------------
    def test_02_resent_message_is_acknowledged_and_stored_once(self) -> None:
        at = self.clock.next()
        cid = control_id("resend")
        eq = f"{DEV1}^EUI-64"
        msg = oru(cid, [Obx(SYS, "124", MMHG, dtm(at), eq), Obx(DIA, "80", MMHG, dtm(at), eq), Obx(HR, "68", BPM, dtm(at), eq)], message_time=dtm(at))
        self.assert_ack(self.client().ack(msg), "AA", cid)
        # The ACK was "lost": the monitor sends the very same message again, on a new connection.
        self.assert_ack(self.client().ack(msg), "AA", cid)
        got = hl7_readings(self.demo.readings(CHAIR1), {at})
        self.assertEqual(sorted((r["vital"], r["value"]) for r in got), [("diastolic", "80"), ("heart_rate", "68"), ("systolic", "124")])

    # 3 ------------------------------------------------------------------------------------------
    def test_03_threshold_crossing_systolic_raises_the_alarm_on_the_board(self) -> None:
        before = {a["rule"] for a in self.demo.board_chair(CHAIR3)["alarms"]}
        self.assertNotIn("sbp_above", before)
        at = self.clock.next()
        cid = control_id("sbp186")
        eq = f"{DEV3}^EUI-64"
        msg = oru(cid, [Obx(SYS, "186", MMHG, dtm(at), eq), Obx(DIA, "96", MMHG, dtm(at), eq)],
                  msh3=f"MONITOR^{DEV3}^EUI-64", location=CHAIR3, message_time=dtm(at))
        self.assert_ack(self.client().ack(msg), "AA", cid, "stored 2")
        chair = self.demo.board_chair(CHAIR3)
        alarms = {a["rule"]: a for a in chair["alarms"]}
        self.assertIn("sbp_above", alarms, chair["alarms"])
        self.assertEqual(alarms["sbp_above"]["level"], "critical")
        # 186 is also a rise of 68 over the chair's pre-dose baseline of 118.
        self.assertIn("sbp_rise", alarms, chair["alarms"])
        self.assertIn({"vital": "systolic", "value": "186"}, [{"vital": r["vital"], "value": r["value"]} for r in chair["latest"]])
        # The other chairs are untouched.
        for other in (CHAIR1, CHAIR2):
            self.assertNotIn("sbp_above", {a["rule"] for a in self.demo.board_chair(other)["alarms"]})

    # 4 ------------------------------------------------------------------------------------------
    def test_04_values_that_are_not_readings_are_acknowledged_but_never_stored(self) -> None:
        at = self.clock.next()
        cid = control_id("noreadings")
        eq = f"{DEV1}^EUI-64"
        msg = oru(cid, [
            Obx(SYS, "-100", MMHG, dtm(at), eq),  # "no value" marker
            Obx(HR, "", BPM, dtm(at), eq, status="X"),  # empty, status X
            Obx(RR, "18", RPM, dtm(at), eq, status="X"),  # a value, but status X
            Obx(SPO2, "150", PCT, dtm(at), eq),  # implausible
            Obx("393216^NIBP_SYS^EHC", "120", MMHG, dtm(at), eq),  # private code
            Obx(DIA, "79", MMHG, dtm(at), eq),  # the one reading
        ], message_time=dtm(at))
        ack = self.client().ack(msg)
        self.assert_ack(ack, "AA", cid)
        self.assertEqual(ack.text, "stored 1; 5 values were not readings (no value or implausible)")
        got = hl7_readings(self.demo.readings(CHAIR1), {at})
        self.assertEqual([(r["vital"], r["value"]) for r in got], [("diastolic", "79")])
        # None of the refused values reached the board either.
        latest = {r["vital"]: r["value"] for r in self.demo.board_chair(CHAIR1)["latest"]}
        self.assertNotIn(latest.get("spo2"), {"150"})
        self.assertNotIn(latest.get("systolic"), {"-100", "120"})

    # 5 ------------------------------------------------------------------------------------------
    def test_05a_a_sender_without_device_identity_is_bound_by_location(self) -> None:
        at = self.clock.next()
        cid = control_id("location")
        # No MSH-3, no OBX-18: PV1-3 is all that names the chair.
        msg = oru(cid, [Obx(SYS, "134", MMHG, dtm(at)), Obx(DIA, "86", MMHG, dtm(at)), Obx(HR, "77", BPM, dtm(at))],
                  msh3="", location=CHAIR2, message_time=dtm(at))
        self.assertTrue(msg.startswith("MSH|^~\\&||INTEROP|"), msg)
        self.assertNotIn(DEV2, msg)
        self.assert_ack(self.client().ack(msg), "AA", cid, "stored 3")
        got = hl7_readings(self.demo.readings(CHAIR2), {at})
        self.assertEqual(sorted((r["vital"], r["value"], r["device_id"]) for r in got),
                         [("diastolic", "86", None), ("heart_rate", "77", None), ("systolic", "134", None)])
        for other in (CHAIR1, CHAIR3):
            self.assertEqual(hl7_readings(self.demo.readings(other), {at}), [])

    def test_05b_another_monitor_naming_a_bound_chair_is_refused(self) -> None:
        """An unknown device (MSH-3 `GW^FFFFFFFFFFFFFFFF^EUI-64`, no OBX-18) names chair 2,
        whose session is bound to monitor ...502: it is not that patient's monitor (moved, or
        misconfigured), so it is refused with AE and nothing is stored anywhere."""
        at = self.clock.next()
        cid = control_id("unknown-device")
        msg = oru(cid, [Obx(SYS, "136", MMHG, dtm(at)), Obx(DIA, "87", MMHG, dtm(at)), Obx(HR, "78", BPM, dtm(at))],
                  msh3="GW^FFFFFFFFFFFFFFFF^EUI-64", location=CHAIR2, message_time=dtm(at))
        ack = self.client().ack(msg)
        self.assert_ack(ack, "AE", cid, "not the one bound")
        for chair in (CHAIR1, CHAIR2, CHAIR3):
            self.assertEqual(hl7_readings(self.demo.readings(chair), {at}), [])

    def test_05c_device_ids_match_whatever_their_case(self) -> None:
        """EUI-64 is hexadecimal: a monitor that sends its id in lower case is the same monitor."""
        at = self.clock.next()
        cid = control_id("lower-case")
        msg = oru(cid, [Obx(HR, "79", BPM, dtm(at), f"{DEV1.lower()}^EUI-64")], msh3=f"MONITOR^{DEV1.lower()}^EUI-64",
                  location=CHAIR1, message_time=dtm(at))
        self.assert_ack(self.client().ack(msg), "AA", cid, "stored 1")
        self.assertEqual([r["value"] for r in hl7_readings(self.demo.readings(CHAIR1), {at})], ["79"])

    # 6 ------------------------------------------------------------------------------------------
    def test_06_unknown_device_and_location_is_an_application_error(self) -> None:
        at = self.clock.next()
        cid = control_id("nobody")
        msg = oru(cid, [Obx(SYS, "121", MMHG, dtm(at), "FFFFFFFFFFFFFFFE^EUI-64")],
                  msh3="GW^FFFFFFFFFFFFFFFE^EUI-64", location="ROOM9^CHAIR9", message_time=dtm(at))
        ack = self.client().ack(msg)
        self.assert_ack(ack, "AE", cid, NO_SESSION)
        for chair in (CHAIR1, CHAIR2, CHAIR3):
            self.assertEqual(hl7_readings(self.demo.readings(chair), {at}), [])

    # 7 ------------------------------------------------------------------------------------------
    def test_07_bad_messages_are_answered_and_the_connection_goes_on(self) -> None:
        c = self.client()

        cid = control_id("adt")
        self.assert_ack(c.ack(adt_a01(cid, dtm(self.clock.next()))), "AR", cid, "ADT")
        self.assert_good_accepted(c, "after-adt")

        ack = Ack.parse(c.send(SB + b"\x00\xffthis is not HL7 at all \xfe" + EB + CR))
        self.assert_ack(ack, "AR", "")
        self.assert_good_accepted(c, "after-garbage")

        at = self.clock.next()
        cid = control_id("noobx")
        self.assert_ack(c.ack(oru(cid, [], message_time=dtm(at))), "AE", cid)
        self.assert_good_accepted(c, "after-no-obx")

        at = self.clock.next()
        cid = control_id("badobx14")
        msg = oru(cid, [Obx(SYS, "122", MMHG, "20261345250000+0000", f"{DEV1}^EUI-64")], message_time=dtm(at),
                  validation=VALIDATION_LEVEL.TOLERANT)
        self.assertIn("|20261345250000+0000|", msg)
        self.assert_ack(c.ack(msg), "AE", cid, "OBX-14")
        self.assert_good_accepted(c, "after-bad-obx14")

        # The header checks: processing id T, an unsupported version, no MSH-10.
        at = self.clock.next()
        cid = control_id("training")
        msg = oru(cid, [Obx(SYS, "122", MMHG, dtm(at))], processing_id="T", message_time=dtm(at))
        self.assert_ack(c.ack(msg), "AR", cid)
        cid = control_id("v22")
        msg = oru(cid, [Obx(SYS, "122", MMHG, dtm(at))], message_time=dtm(at)).replace("|P|2.6|", "|P|2.2|", 1)
        self.assert_ack(c.ack(msg), "AR", cid)
        cid = control_id("nocid")
        msg = oru(cid, [Obx(SYS, "122", MMHG, dtm(at))], message_time=dtm(at)).replace(f"|{cid}|P|", "||P|", 1)
        self.assert_ack(c.ack(msg), "AR", "")
        # Bytes outside any frame are dropped, and the frame after them is read.
        c.socket.sendall(b"noise between frames\r\n")
        self.assert_good_accepted(c, "after-noise")
        self.assertEqual(hl7_readings(self.demo.readings(CHAIR1), {at}), [])

        # Two frames in one write: two ACKs, in order.
        (m1, cid1, at1), (m2, cid2, at2) = self.good("pipelined-1"), self.good("pipelined-2")
        c.socket.sendall(SB + m1.encode() + EB + CR + SB + m2.encode() + EB + CR)
        self.assert_ack(Ack.parse(c.read_frame()), "AA", cid1, "stored 1")
        self.assert_ack(Ack.parse(c.read_frame()), "AA", cid2, "stored 1")
        self.assertEqual(len(hl7_readings(self.demo.readings(CHAIR1), {at1, at2})), 2)

    # 8 ------------------------------------------------------------------------------------------
    def test_08_a_client_leaving_mid_message_does_not_stop_the_listener(self) -> None:
        msg, _, at = self.good("half")
        data = SB + msg.encode()
        with socket.create_connection(("127.0.0.1", self.demo.mllp_port), timeout=5) as s:
            s.sendall(data[: len(data) // 2])
        # And one that resets the connection mid-message.
        with socket.create_connection(("127.0.0.1", self.demo.mllp_port), timeout=5) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            s.sendall(data[: len(data) // 3])
        time.sleep(0.2)
        self.assertEqual(hl7_readings(self.demo.readings(CHAIR1), {at}), [], "half a message was stored")
        self.assert_good_accepted(self.client(), "after-half")

    # 9 ------------------------------------------------------------------------------------------
    def test_09_vendor_variant_codes_are_mapped_by_number(self) -> None:
        at = self.clock.next()
        cid = control_id("variant")
        eq = f"{DEV3}^EUI-64"
        msg = oru(cid, [
            Obx("150017^MDC_PRESS_BLD_NONINV_SYS^MDC", "131", MMHG, dtm(at), eq),
            Obx("150018^MDC_PRESS_BLD_DIA^MDC", "83", MMHG, dtm(at), eq),
            Obx("149530^MDC_PULS_OXIM_PULS_RATE^MDC", "81", BPM, dtm(at), eq),
            Obx("151578^MDC_TTHOR_RESP_RATE^MDC", "15", RPM, dtm(at), eq),
        ], msh3=f"MONITOR^{DEV3}^EUI-64", location=CHAIR3, message_time=dtm(at))
        self.assert_ack(self.client().ack(msg), "AA", cid, "stored 4")
        got = hl7_readings(self.demo.readings(CHAIR3), {at})
        self.assertEqual(
            sorted((r["vital"], r["loinc"], r["value"], r["device_id"]) for r in got),
            [("diastolic", LOINC["diastolic"], "83", DEV3), ("heart_rate", LOINC["heart_rate"], "81", DEV3),
             ("respiratory_rate", LOINC["respiratory_rate"], "15", DEV3), ("systolic", LOINC["systolic"], "131", DEV3)],
        )

    # 10 -----------------------------------------------------------------------------------------
    def test_10_every_supported_version_gets_a_valid_ack_of_its_version(self) -> None:
        c = self.client()
        for version in ("2.3", "2.3.1", "2.4", "2.5", "2.5.1"):
            with self.subTest(version=version):
                # hl7apy validates each ACK strictly against the structures of its MSH-12, except
                # v2.3's: hl7apy 1.3.5 looks up a message structure `ACK_R01` that its v2.3 tables
                # do not have (v2.3 names no structure in MSH-9); test_11 checks that ACK field by
                # field instead.
                strict = version != "2.3"
                at = self.clock.next()
                cid = control_id(f"v{version}")
                # OBX-18 (equipment instance) exists from v2.4 on; before that MSH-3 names the device.
                equipment = None if version in ("2.3", "2.3.1") else f"{DEV2}^EUI-64"
                msg = oru(cid, [Obx(HR, "71", BPM, dtm(at), equipment)], msh3=f"MONITOR^{DEV2}^EUI-64", location=CHAIR2,
                          message_time=dtm(at), version=version)
                ack = c.ack(msg, strict)
                self.assert_ack(ack, "AA", cid, "stored 1")
                self.assertEqual(ack.field(12), version)
                self.assertEqual([r["value"] for r in hl7_readings(self.demo.readings(CHAIR2), {at})], ["71"])

                cid = control_id(f"v{version}-nobody")
                msg = oru(cid, [Obx(HR, "71", BPM, dtm(at))], msh3="GW^FFFFFFFFFFFFFFFD^EUI-64",
                          location="ROOM9^CHAIR9", message_time=dtm(at), version=version)
                ack = c.ack(msg, strict)
                self.assert_ack(ack, "AE", cid, NO_SESSION)
                self.assertEqual(ack.field(12), version)

    # 11 -----------------------------------------------------------------------------------------
    def test_11_a_v23_ack_has_the_two_part_msh9_of_v23(self) -> None:
        """In HL7 v2.3 MSH-9 (CM_MSG) has two components, message type and trigger event; the
        third (message structure) came with v2.3.1. The ACK to a v2.3 message carries `ACK^R01`
        (python-hl7 reads it; hl7apy 1.3.5 cannot name a v2.3 message without a structure in
        MSH-9, so it is not used for v2.3)."""
        at = self.clock.next()
        cid = control_id("v2.3-strict")
        msg = oru(cid, [Obx(HR, "72", BPM, dtm(at))], msh3=f"MONITOR^{DEV2}^EUI-64", location=CHAIR2, message_time=dtm(at), version="2.3")
        ack = self.client().ack(msg, strict=False)
        self.assertEqual((ack.code, ack.control_id), ("AA", cid))
        self.assertEqual(ack.field(9), "ACK^R01", f"ACK {ack.raw!r}")
        self.assertEqual(ack.field(12), "2.3")

if __name__ == "__main__":
    unittest.main(verbosity=2)
