#!/usr/bin/env python3
"""Write tests/pk/cases.json, the regimen cases for the PK reference and benchmark.

Derived rate constants (route absorption rates, the Herd 2007 micro constants and the
near-degenerate absorption rate) are computed with mpmath at 50 digits and written as
decimals with 17 significant digits, so every reader parses the same decimal text into
the same double. Re-running this script reproduces cases.json byte for byte.

    python3 tests/pk/make_cases.py
"""

import json
from decimal import Decimal, localcontext
from pathlib import Path

from mpmath import mp

HERE = Path(__file__).resolve().parent
mp.dps = 50


class Lit(str):
    """A number written to JSON exactly as this text."""


def dec17(x):
    """A 17-significant-digit fixed-point decimal for the real number x."""
    with localcontext() as ctx:
        ctx.prec = 17
        d = +Decimal(mp.nstr(x, 45, strip_zeros=False, min_fixed=-mp.inf, max_fixed=mp.inf))
    return Lit(format(d, "f"))


LN2 = mp.log(2)
# Route defaults (bioavailability F, absorption rate ka per minute).
ROUTES = {
    "sc": (0.93, LN2 / 10),
    "im": (0.93, LN2 / 5),
    "in": (0.45, mp.mpf("2.93") / 60),
    "po": (0.17, LN2 / 59),
}

THRESHOLDS = [100.0, 250.0]

# Domino model at 70 kg (V1 = 0.063 L/kg).
DOMINO = {
    "v1_l": Lit("4.41"),
    "k10": Lit("0.4381"),
    "k12": Lit("0.5921"),
    "k21": Lit("0.2470"),
    "k13": Lit("0.5900"),
    "k31": Lit("0.0146"),
}
DOMINO_KE0 = Lit("0.652")

# Herd 2007 at 70 kg: V1 38.7 L, V2 102 L, CL 90 L/h, Q 215 L/h (2 compartments).
HERD_V1 = mp.mpf("38.7")
HERD = {
    "v1_l": Lit("38.7"),
    "k10": dec17(mp.mpf(90) / 60 / HERD_V1),
    "k12": dec17(mp.mpf(215) / 60 / HERD_V1),
    "k21": dec17(mp.mpf(215) / 60 / mp.mpf(102)),
}


def depot(route, at_min, dose_mg, f=None, ka=None):
    f0, ka0 = ROUTES[route]
    return {
        "kind": "bolus",
        "route": route,
        "at_min": float(at_min),
        "dose_mg": float(dose_mg),
        "f": float(f0 if f is None else f),
        "ka_per_min": dec17(ka0) if ka is None else ka,
    }


def iv_bolus(at_min, dose_mg):
    return {"kind": "bolus", "route": "iv", "at_min": float(at_min), "dose_mg": float(dose_mg)}


def infusion(start_min, duration_min, dose_mg):
    return {
        "kind": "infusion",
        "start_min": float(start_min),
        "duration_min": float(duration_min),
        "dose_mg": float(dose_mg),
    }


def grid(start, stop, step):
    return [float(t) for t in range(start, stop + 1, step)]


def case(name, description, micro, ke0, events, times, weight_kg=70.0):
    return {
        "name": name,
        "description": description,
        "weight_kg": weight_kg,
        "micro": micro,
        "ke0_per_min": ke0,
        "events": events,
        "times_min": times,
        "thresholds_ng_per_ml": THRESHOLDS,
    }


def near_degenerate_ka():
    """The fast hybrid rate (alpha) of the Herd model, from the doubles the JSON denotes."""
    k10, k12, k21 = (mp.mpf(float(HERD[k])) for k in ("k10", "k12", "k21"))
    s = k10 + k12 + k21
    alpha = (s + mp.sqrt(s * s - 4 * k10 * k21)) / 2
    ka = dec17(alpha)
    rel = abs(mp.mpf(float(ka)) - alpha) / alpha
    return ka, alpha, rel


def build():
    week = 10080
    weekly_doses = [k * week for k in range(13)]
    weekly_end = 12 * week + 1440
    weekly_times = sorted(
        set(grid(0, weekly_end, 60)) | {float(t) for t in weekly_doses} | {float(t + 30) for t in weekly_doses}
    )
    ka_nd, alpha, rel = near_degenerate_ka()
    cases = [
        case(
            "domino_iv_infusion",
            "Domino model, 70 kg: 0.5 mg/kg (35 mg) IV infusion over 40 min.",
            DOMINO, DOMINO_KE0, [infusion(0, 40, 35)], grid(0, 360, 1),
        ),
        case(
            "domino_iv_bolus",
            "Domino model, 70 kg: 0.15 mg/kg (10.5 mg) IV bolus at 0; adds non-integer times 0.25, 0.5, 2.5.",
            DOMINO, DOMINO_KE0, [iv_bolus(0, 10.5)], sorted(grid(0, 360, 1) + [0.25, 0.5, 2.5]),
        ),
        case(
            "domino_sc",
            "Domino model, 70 kg: 1 mg/kg (70 mg) subcutaneous at 0 (F 0.93, ka ln2/10 per min).",
            DOMINO, DOMINO_KE0, [depot("sc", 0, 70)], grid(0, 360, 1),
        ),
        case(
            "domino_im",
            "Domino model, 70 kg: 35 mg intramuscular at 0 (F 0.93, ka ln2/5 per min).",
            DOMINO, DOMINO_KE0, [depot("im", 0, 35)], grid(0, 360, 1),
        ),
        case(
            "domino_in",
            "Domino model, 70 kg: 50 mg intranasal at 0 (F 0.45, ka 2.93/60 per min).",
            DOMINO, DOMINO_KE0, [depot("in", 0, 50)], grid(0, 360, 1),
        ),
        case(
            "domino_po",
            "Domino model, 70 kg: 70 mg oral at 0 (F 0.17, ka ln2/59 per min).",
            DOMINO, DOMINO_KE0, [depot("po", 0, 70)], grid(0, 480, 2),
        ),
        case(
            "domino_mixed",
            "Domino model, 70 kg: IV bolus 10 mg at 0, IV infusion 25 mg over 40 min from 0, "
            "SC 35 mg at 180, IM 20 mg at 200, oral 50 mg at 240 (route default F and ka).",
            DOMINO, DOMINO_KE0,
            [iv_bolus(0, 10), infusion(0, 40, 25), depot("sc", 180, 35), depot("im", 200, 20), depot("po", 240, 50)],
            grid(0, 600, 1),
        ),
        case(
            "herd_iv_infusion",
            "Herd 2007 two-compartment model at 70 kg (V1 38.7 L, V2 102 L, CL 90 L/h, Q 215 L/h): "
            "35 mg IV infusion over 40 min; ke0 0.652 per min.",
            HERD, DOMINO_KE0, [infusion(0, 40, 35)], grid(0, 360, 1),
        ),
        case(
            "one_cpt_degenerate",
            "One compartment, V1 10 L, k10 = ke0 = ka = 0.1 per min (triple root): 100 mg depot (F 1) at 0. "
            "Exact solution Cp = D/V1 * k t exp(-k t), Ce = D/V1 * k^2 t^2/2 exp(-k t).",
            {"v1_l": Lit("10.0"), "k10": Lit("0.1")}, Lit("0.1"),
            [depot("sc", 0, 100, f=1.0, ka=Lit("0.1"))], grid(0, 240, 1),
        ),
        case(
            "two_cpt_near_degenerate",
            "Herd 2007 two-compartment model at 70 kg with a 35 mg depot (F 0.93) whose ka is the fast "
            "hybrid rate alpha rounded to 17 digits (relative difference from alpha of the parsed double: "
            f"{mp.nstr(rel, 3)}).",
            HERD, DOMINO_KE0, [depot("im", 0, 35, ka=ka_nd)], grid(0, 240, 1),
        ),
        case(
            "weekly_long",
            "Domino model, 70 kg: 70 mg SC (F 0.93, ka ln2/10) at 0 and then every week (10080 min), "
            "13 doses at weeks 0 to 12; times every 60 min to 12 weeks + 1 day, plus each dose time + 30 min.",
            DOMINO, DOMINO_KE0, [depot("sc", t, 70) for t in weekly_doses], weekly_times,
        ),
    ]
    return {"cases": cases}, (ka_nd, alpha, rel)


def dump(value, indent=0, inline=False):
    """JSON text: objects indented, arrays of scalars on one line, Lit written verbatim."""
    pad = "  " * indent
    if isinstance(value, Lit):
        return str(value)
    if isinstance(value, (str, bool)) or value is None:
        return json.dumps(value)
    if isinstance(value, (int, float)):
        return repr(float(value))
    if isinstance(value, list):
        if all(not isinstance(v, (dict, list)) for v in value):
            return "[" + ", ".join(dump(v) for v in value) + "]"
        if inline:
            return "[" + ", ".join(dump(v, inline=True) for v in value) + "]"
        inner = ",\n".join("  " * (indent + 1) + dump(v, indent + 1, inline=True) for v in value)
        return "[\n" + inner + "\n" + pad + "]"
    if isinstance(value, dict):
        if inline:
            return "{" + ", ".join(f"{json.dumps(k)}: {dump(v, inline=True)}" for k, v in value.items()) + "}"
        inner = ",\n".join(
            "  " * (indent + 1) + f"{json.dumps(k)}: {dump(v, indent + 1)}" for k, v in value.items()
        )
        return "{\n" + inner + "\n" + pad + "}"
    raise TypeError(type(value))


def main():
    doc, (ka_nd, alpha, rel) = build()
    text = "{\n  \"cases\": [\n" + ",\n".join(
        "    " + dump(c, 2) for c in doc["cases"]
    ) + "\n  ]\n}\n"
    json.loads(text)  # must parse
    (HERE / "cases.json").write_text(text)
    print(f"wrote {HERE / 'cases.json'}: {len(doc['cases'])} cases")
    print(f"near-degenerate ka {ka_nd} (alpha {mp.nstr(alpha, 25)}, relative difference {mp.nstr(rel, 3)})")


if __name__ == "__main__":
    main()
