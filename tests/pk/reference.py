#!/usr/bin/env python3
"""Reference concentrations for the ketamine PK cases in tests/pk/cases.json.

Method: the linear mammillary model (1-3 compartments, one first-order depot per
extravascular dose, effect site) is written as one augmented linear system

    x' = M x,   x = [A1, A2, A3, Ad_1..Ad_n, Ce, I_Cp, I_Ce, u]

where u is the current zero-order infusion rate (u' = 0; each infusion start adds its rate
and each end removes it, so the input is handled exactly), and I_Cp, I_Ce are the running
integrals of Cp and Ce. Between consecutive nodes (event times and output times) the state is
advanced exactly by x(t + dt) = expm(M dt) x(t), computed with mpmath at 40 significant
digits. Events are applied at their time, and the value reported AT an event time includes
it (right-continuous). Nothing here is shared with the Rust engine.

Cmax/Tmax and the minutes above each threshold are continuous quantities over the window
[first time, last time]: each interval between nodes is sampled on a sub-grid of 8 steps,
sign changes of dCp/dt bracket the interior extrema, which are solved for dCp/dt = 0 by a
safeguarded Newton iteration (d2Cp/dt2 = row1(M^2) x / V1), and threshold crossings are
solved the same way on the resulting monotone pieces. Node values (including event times and
window ends) are Cmax candidates too. Tmax is the earliest candidate within 1e-12 relative of
Cmax: peaks that agree to 12 digits count as equal (in weekly_long every dose's peak agrees with
the first to about 1e-27, since the previous dose has washed out), which keeps Tmax reproducible.

Output: tests/pk/reference-curves.json (floats written with repr, which round-trips the double).

    python3 tests/pk/reference.py            # write reference-curves.json
    python3 tests/pk/reference.py --check    # recompute and compare (1e-12 relative), exit 1 on mismatch
"""

import argparse
import json
import sys
import time
from pathlib import Path

import mpmath
from mpmath import mp

HERE = Path(__file__).resolve().parent
CASES = HERE / "cases.json"
OUT = HERE / "reference-curves.json"
DPS = 40
SUBSTEPS = 8
CHECK_RTOL = 1e-12
TMAX_TIE_RTOL = mp.mpf("1e-12")
NG_PER_MG_L = 1000  # 1 mg/L = 1000 ng/mL
MIN_PER_H = 60

IV_ROUTES = ("iv",)
DEPOT_ROUTES = ("sc", "im", "in", "po")


class CaseError(ValueError):
    pass


def num(value):
    """An exact mpf from a JSON number (Python float or int)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CaseError(f"not a number: {value!r}")
    return mp.mpf(value)


class Model:
    """One case, parsed into exact mpf values."""

    def __init__(self, case):
        self.name = case["name"]
        micro = case["micro"]
        for a, b in (("k12", "k21"), ("k13", "k31")):
            if (a in micro) != (b in micro):
                raise CaseError(f"{self.name}: {a} and {b} come together")
        if "k13" in micro and "k12" not in micro:
            raise CaseError(f"{self.name}: a third compartment needs a second")
        self.v1 = num(micro["v1_l"])
        self.k10 = num(micro["k10"])
        self.k12 = num(micro.get("k12", 0))
        self.k21 = num(micro.get("k21", 0))
        self.k13 = num(micro.get("k13", 0))
        self.k31 = num(micro.get("k31", 0))
        self.ke0 = num(case["ke0_per_min"])
        if self.v1 <= 0 or min(self.k10, self.k12, self.k21, self.k13, self.k31, self.ke0) < 0:
            raise CaseError(f"{self.name}: V1 must be positive and rates nonnegative")
        self.times = [num(t) for t in case["times_min"]]
        if not self.times or any(b <= a for a, b in zip(self.times, self.times[1:])):
            raise CaseError(f"{self.name}: times_min must be strictly increasing")
        if self.times[0] < 0:
            raise CaseError(f"{self.name}: negative time")
        self.thresholds = [num(t) for t in case["thresholds_ng_per_ml"]]

        # actions[t] = list of (what, payload, amount); depots get one state each.
        self.depots = []  # (ka, time, F*D)
        self.actions = {}
        self.auc_inf_mg_min_per_l = mp.mpf(0)
        cl = self.k10 * self.v1
        infusions = []
        for ev in case["events"]:
            kind = ev.get("kind")
            if kind == "infusion":
                start, duration, dose = num(ev["start_min"]), num(ev["duration_min"]), num(ev["dose_mg"])
                if duration <= 0 or dose < 0 or start < 0:
                    raise CaseError(f"{self.name}: bad infusion {ev}")
                rate = dose / duration
                self._add(start, ("u", None, rate))
                self._add(start + duration, ("u", None, -rate))
                infusions.append((start, start + duration, rate))
                self.auc_inf_mg_min_per_l += dose / cl
            elif kind == "bolus":
                route = ev.get("route", "iv")
                at, dose = num(ev["at_min"]), num(ev["dose_mg"])
                if dose < 0 or at < 0:
                    raise CaseError(f"{self.name}: bad bolus {ev}")
                if route in IV_ROUTES:
                    self._add(at, ("a1", None, dose))
                    self.auc_inf_mg_min_per_l += dose / cl
                elif route in DEPOT_ROUTES:
                    if "f" not in ev or "ka_per_min" not in ev:
                        raise CaseError(f"{self.name}: depot doses must give f and ka_per_min")
                    f, ka = num(ev["f"]), num(ev["ka_per_min"])
                    if ka <= 0 or f < 0:
                        raise CaseError(f"{self.name}: bad depot {ev}")
                    self._add(at, ("depot", len(self.depots), f * dose))
                    self.depots.append((ka, at, f * dose))
                    self.auc_inf_mg_min_per_l += f * dose / cl
                else:
                    raise CaseError(f"{self.name}: unknown route {route!r}")
            else:
                raise CaseError(f"{self.name}: unknown event kind {kind!r}")
        self.infusions = infusions

        # Full state layout.
        nd = len(self.depots)
        self.i_dep = 3
        self.i_ce = 3 + nd
        self.i_icp = self.i_ce + 1
        self.i_ice = self.i_ce + 2
        self.i_u = self.i_ce + 3
        self.n = self.i_ce + 4
        self.M = self._full_matrix()

        # Reduced state for Cp only: A1..A3, depots merged by equal ka (identical dynamics), u.
        self.groups = []
        self.group_of = []
        for ka, _, _ in self.depots:
            if ka not in self.groups:
                self.groups.append(ka)
            self.group_of.append(self.groups.index(ka))
        self.nr = 3 + len(self.groups) + 1
        self.Mr = self._reduced_matrix()
        self.Mr_mp = mp.matrix(self.Mr)
        mr2 = self.Mr_mp * self.Mr_mp
        self.row1 = [x / self.v1 for x in self.Mr[0]]  # dCp/dt = row1 . y
        self.row2 = [mr2[0, j] / self.v1 for j in range(self.nr)]  # d2Cp/dt2 = row2 . y
        self._expm_full = {}
        self._expm_red = {}

    def _add(self, t, action):
        self.actions.setdefault(t, []).append(action)

    def _central_rows(self, m, depot_cols, u_col):
        k10, k12, k21, k13, k31 = self.k10, self.k12, self.k21, self.k13, self.k31
        m[0][0] = -(k10 + k12 + k13)
        m[0][1] = k21
        m[0][2] = k31
        m[1][0] = k12
        m[1][1] = -k21
        m[2][0] = k13
        m[2][2] = -k31
        for col, ka in depot_cols:
            m[0][col] = ka
            m[col][col] = -ka
        m[0][u_col] = mp.mpf(1)

    def _full_matrix(self):
        n = self.n
        m = [[mp.mpf(0)] * n for _ in range(n)]
        self._central_rows(m, [(self.i_dep + j, ka) for j, (ka, _, _) in enumerate(self.depots)], self.i_u)
        m[self.i_ce][0] = self.ke0 / self.v1
        m[self.i_ce][self.i_ce] = -self.ke0
        m[self.i_icp][0] = 1 / self.v1
        m[self.i_ice][self.i_ce] = mp.mpf(1)
        return m

    def _reduced_matrix(self):
        n = self.nr
        m = [[mp.mpf(0)] * n for _ in range(n)]
        self._central_rows(m, [(3 + g, ka) for g, ka in enumerate(self.groups)], n - 1)
        return m

    def reduce(self, x):
        y = [x[0], x[1], x[2]] + [mp.mpf(0)] * len(self.groups) + [x[self.i_u]]
        for j, g in enumerate(self.group_of):
            y[3 + g] += x[self.i_dep + j]
        return y

    @staticmethod
    def _sparse(e):
        return [[(j, v) for j, v in enumerate(row) if v != 0] for row in e.tolist()]

    def step_full(self, x, dt):
        e = self._expm_full.get(dt)
        if e is None:
            e = self._expm_full[dt] = self._sparse(mp.expm(mp.matrix(self.M) * dt))
        return [mp.fdot((v, x[j]) for j, v in row) for row in e]

    def step_red(self, y, dt, cache=True):
        e = self._expm_red.get(dt) if cache else None
        if e is None:
            e = self._sparse(mp.expm(self.Mr_mp * dt))
            if cache:
                self._expm_red[dt] = e
        return [mp.fdot((v, y[j]) for j, v in row) for row in e]

    def cp(self, y):
        return y[0] / self.v1

    def dcp(self, y):
        return mp.fdot(self.row1, y)

    def d2cp(self, y):
        return mp.fdot(self.row2, y)


def newton_root(fun, lo, hi, flo, fhi, base):
    """Root of fun on [lo, hi] (flo, fhi of opposite sign); fun(s) -> (f, df, y)."""
    tol = mp.mpf(10) ** (-(mp.dps - 6)) * (1 + abs(base) + abs(hi))
    s = lo + (hi - lo) * flo / (flo - fhi)
    y = None
    for _ in range(200):
        f, df, y = fun(s)
        if f == 0:
            return s, y
        if (f > 0) == (flo > 0):
            lo, flo = s, f
        else:
            hi, fhi = s, f
        nxt = s - f / df if df != 0 else None
        if nxt is None or not (lo < nxt < hi):
            nxt = (lo + hi) / 2
        if abs(nxt - s) <= tol or hi - lo <= tol:
            s = nxt
            f, df, y = fun(s)
            return s, y
        s = nxt
    raise ArithmeticError("root finding did not converge")


def simulate(model):
    """Propagate the full state over all nodes; return outputs and per-node reduced states."""
    event_times = sorted(model.actions)
    nodes = sorted(set(model.times) | set(event_times))
    out_set = set(model.times)
    x = [mp.mpf(0)] * model.n
    t_cur = min(nodes[0], mp.mpf(0))
    cp, ce = [], []
    node_states = []  # (t, reduced pre, reduced post)
    for t in nodes:
        if t > t_cur:
            x = model.step_full(x, t - t_cur)
            t_cur = t
        pre = model.reduce(x)
        for what, idx, amount in model.actions.get(t, ()):
            if what == "a1":
                x[0] += amount
            elif what == "depot":
                x[model.i_dep + idx] += amount
            else:
                x[model.i_u] += amount
        if t in out_set:
            cp.append(x[0] / model.v1)
            ce.append(x[model.i_ce])
        node_states.append((t, pre, model.reduce(x)))
    return x, cp, ce, node_states


def analyse(model, node_states):
    """Continuous Cmax/Tmax and minutes above thresholds over [first time, last time]."""
    t0, t1 = model.times[0], model.times[-1]
    window = [ns for ns in node_states if t0 <= ns[0] <= t1]
    pieces = []  # one list of points per interval between consecutive nodes
    for (a, _, ya), (b, yb_pre, _) in zip(window, window[1:]):
        h = (b - a) / SUBSTEPS
        samples = [(a, ya)]
        y = ya
        for k in range(1, SUBSTEPS):
            y = model.step_red(y, h)
            samples.append((a + k * h, y))
        samples.append((b, yb_pre))
        # points: (time, state, is a candidate for Cmax); the last state is the pre-event
        # value at b. Between consecutive points Cp is monotone.
        points = [(a, ya, True)]
        for (s0, y0), (s1, y1) in zip(samples, samples[1:]):
            d0, d1 = model.dcp(y0), model.dcp(y1)
            if (d0 > 0 and d1 < 0) or (d0 < 0 and d1 > 0):

                def fun(sig, y0=y0):
                    y = model.step_red(y0, sig, cache=False)
                    return model.dcp(y), model.d2cp(y), y

                sig, yc = newton_root(fun, mp.mpf(0), s1 - s0, d0, d1, s0)
                points.append((s0 + sig, yc, True))
            points.append((s1, y1, s1 == b))
        pieces.append(points)

    # Cmax: the maximum over node values (post-event, and pre-event limits) and interior
    # extrema. Tmax: the earliest of these candidates within TMAX_TIE_RTOL of Cmax, so that
    # peaks equal to 12 digits (a washed-out repeated dose) give a reproducible time.
    cands = [(t, model.cp(y)) for t, _, y in window]
    for points in pieces:
        cands.extend((t, model.cp(y)) for t, y, extremum in points if extremum)
    cmax = max(c for _, c in cands)
    tmax = min(t for t, c in cands if c >= cmax * (1 - TMAX_TIE_RTOL))

    minutes = []
    for thr_ng in model.thresholds:
        thr = thr_ng / NG_PER_MG_L
        above = mp.mpf(0)
        for points in pieces:
            for (p, yp, _), (q, yq, _) in zip(points, points[1:]):
                gp, gq = model.cp(yp) - thr, model.cp(yq) - thr
                if gp > 0 and gq > 0:
                    above += q - p
                elif (gp > 0) != (gq > 0):

                    def fun(sig, yp=yp):
                        y = model.step_red(yp, sig, cache=False)
                        return model.cp(y) - thr, model.dcp(y), y

                    sig, _ = newton_root(fun, mp.mpf(0), q - p, gp, gq, p)
                    above += sig if gp > 0 else (q - p) - sig
        minutes.append((thr_ng, above))
    return cmax, tmax, minutes


def infused_amount(model, t_end):
    total = mp.mpf(0)
    for start, end, rate in model.infusions:
        total += rate * max(mp.mpf(0), min(end, t_end) - start)
    return total


def given_amount(model, t_end):
    total = infused_amount(model, t_end)
    for t, acts in model.actions.items():
        if t <= t_end:
            total += sum(amount for what, _, amount in acts if what in ("a1", "depot"))
    return total


def compute_case(case):
    model = Model(case)
    x, cp, ce, node_states = simulate(model)
    cmax, tmax, minutes = analyse(model, node_states)

    # Mass balance: everything given (F*D for depots) is in a compartment, a depot or eliminated.
    depot = mp.fsum(x[model.i_dep + j] for j in range(len(model.depots)))
    eliminated = model.k10 * model.v1 * x[model.i_icp]
    inside = x[0] + x[1] + x[2] + depot + eliminated
    given = given_amount(model, model.times[-1])
    if given and abs(inside - given) > mp.mpf(10) ** (-(mp.dps - 10)) * given:
        raise ArithmeticError(f"{model.name}: mass balance off by {mp.nstr(inside - given, 5)} mg")

    f = float
    return {
        "name": model.name,
        "cp_ng_per_ml": [f(c * NG_PER_MG_L) for c in cp],
        "ce_ng_per_ml": [f(c * NG_PER_MG_L) for c in ce],
        "auc_0_t_ng_h_per_ml": f(x[model.i_icp] * NG_PER_MG_L / MIN_PER_H),
        "auc_0_inf_ng_h_per_ml": f(model.auc_inf_mg_min_per_l * NG_PER_MG_L / MIN_PER_H),
        "cmax_ng_per_ml": f(cmax * NG_PER_MG_L),
        "tmax_min": f(tmax),
        "minutes_above": [{"threshold_ng_per_ml": f(t), "minutes": f(m)} for t, m in minutes],
        "amounts_at_end": {
            "a1": f(x[0]),
            "a2": f(x[1]),
            "a3": f(x[2]),
            "depot": f(depot),
            "eliminated": f(eliminated),
        },
    }


def closed_form_checks(cases, results):
    """Independent analytic checks of the method on the cases that have a closed form."""
    problems = []
    by_name = {r["name"]: r for r in results}
    for case in cases:
        if case["name"] != "one_cpt_degenerate" or case["name"] not in by_name:
            continue
        # Cp = D/V k t e^{-kt}, Ce = D/V k^2 t^2/2 e^{-kt} when k10 = ke0 = ka = k, F = 1.
        m = Model(case)
        (ka, at, amount), = m.depots
        k = m.k10
        if not (ka == k == m.ke0 and at == 0):
            problems.append("one_cpt_degenerate is no longer the triple-root case")
            continue
        r = by_name[case["name"]]
        worst = 0.0
        for t, c, e in zip(m.times, r["cp_ng_per_ml"], r["ce_ng_per_ml"]):
            cp = amount / m.v1 * k * t * mp.exp(-k * t) * NG_PER_MG_L
            ce = amount / m.v1 * k * k * t * t / 2 * mp.exp(-k * t) * NG_PER_MG_L
            for got, want in ((c, cp), (e, ce)):
                if want:
                    worst = max(worst, float(abs(mp.mpf(got) - want) / want))
        if worst > 1e-15:
            problems.append(f"one_cpt_degenerate differs from its closed form by {worst:.3g}")
    return problems


def generated_by(dps):
    return f"tests/pk/reference.py (mpmath {mpmath.__version__}, {dps} digits, matrix exponential)"


def compute_all(cases, names=None, verbose=True):
    results = []
    for case in cases:
        if names and case["name"] not in names:
            continue
        t = time.perf_counter()
        results.append(compute_case(case))
        if verbose:
            print(f"  {case['name']:<26} {time.perf_counter() - t:7.2f} s", file=sys.stderr)
    return results


def write_json(path, doc):
    """Indented JSON with each numeric array on one line (floats as repr)."""
    lines = ["{", f"  \"generated_by\": {json.dumps(doc['generated_by'])},", "  \"cases\": ["]
    blocks = []
    for r in doc["cases"]:
        fields = [f"      {json.dumps(k)}: {json.dumps(v)}" for k, v in r.items()]
        blocks.append("    {\n" + ",\n".join(fields) + "\n    }")
    lines.append(",\n".join(blocks))
    lines += ["  ]", "}"]
    Path(path).write_text("\n".join(lines) + "\n")


def rel_diff(a, b):
    if a == b:
        return 0.0
    scale = max(abs(a), abs(b))
    return abs(a - b) / scale if scale else 0.0


def compare(expected, got, path="", out=None):
    """Walk two JSON values; return the worst relative difference and record structural errors."""
    out = out if out is not None else []
    if isinstance(expected, dict) and isinstance(got, dict):
        if set(expected) != set(got):
            out.append(f"{path}: keys differ ({sorted(set(expected) ^ set(got))})")
            return float("inf"), out
        worst = 0.0
        for k in expected:
            worst = max(worst, compare(expected[k], got[k], f"{path}.{k}", out)[0])
        return worst, out
    if isinstance(expected, list) and isinstance(got, list):
        if len(expected) != len(got):
            out.append(f"{path}: length {len(got)} != {len(expected)}")
            return float("inf"), out
        worst = 0.0
        for i, (e, g) in enumerate(zip(expected, got)):
            worst = max(worst, compare(e, g, f"{path}[{i}]", out)[0])
        return worst, out
    if isinstance(expected, (int, float)) and isinstance(got, (int, float)):
        d = rel_diff(float(expected), float(got))
        if d > CHECK_RTOL:
            out.append(f"{path}: {got!r} != {expected!r} (relative {d:.3g})")
        return d, out
    if expected != got:
        out.append(f"{path}: {got!r} != {expected!r}")
        return float("inf"), out
    return 0.0, out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="recompute and compare with the committed JSON")
    ap.add_argument("--cases", default=str(CASES), help="cases file (default: tests/pk/cases.json)")
    ap.add_argument("--out", default=str(OUT), help="output file (default: tests/pk/reference-curves.json)")
    ap.add_argument("--dps", type=int, default=DPS, help=f"decimal digits of working precision (default {DPS})")
    ap.add_argument("--case", action="append", help="only this case (repeatable; not with --check)")
    args = ap.parse_args()
    mp.dps = args.dps

    cases = json.loads(Path(args.cases).read_text())["cases"]
    names = set(args.case or ())
    started = time.perf_counter()
    results = compute_all(cases, names if not args.check else None)
    problems = closed_form_checks(cases, results)
    elapsed = time.perf_counter() - started
    doc = {"generated_by": generated_by(args.dps), "cases": results}

    if args.check:
        committed = json.loads(Path(args.out).read_text())
        if committed.get("generated_by") != doc["generated_by"]:
            print(f"note: committed file was generated by {committed.get('generated_by')!r}")
        exp_cases = {c["name"]: c for c in committed.get("cases", [])}
        got_cases = {c["name"]: c for c in results}
        if list(exp_cases) != list(got_cases):
            problems.append(f"case names differ: committed {list(exp_cases)}, computed {list(got_cases)}")
        for name in got_cases:
            if name not in exp_cases:
                continue
            worst, errs = compare(exp_cases[name], got_cases[name], name)
            print(f"  {name:<26} max relative difference {worst:.3g}")
            problems.extend(errs[:10])
        for p in problems:
            print(f"MISMATCH {p}")
        print(f"check {'FAILED' if problems else 'passed'}: {len(results)} cases in {elapsed:.1f} s")
        return 1 if problems else 0

    for p in problems:
        print(f"ERROR {p}", file=sys.stderr)
    if problems:
        return 1
    write_json(args.out, doc)
    print(f"wrote {args.out}: {len(results)} cases in {elapsed:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
