#!/usr/bin/env python3
"""Side-by-side benchmark of the Rust PK engine against two independent peers.

For every case in tests/pk/cases.json:

  * PyTCI 1.2.0, exact integrator: its three-compartment class (PyTCI.models.base.Three) is
    subclassed with the case's micro constants and run with set_integrator("exact") (matrix
    exponential of the 4-state system with a constant-input column). PyTCI has no depot, so
    only IV cases (boluses and infusions) are run; the others are reported as not applicable.
  * scipy solve_ivp, method Radau (rtol 1e-13, atol 1e-20 mg), with the constant Jacobian,
    restarted at every event time and evaluated at times_min through t_eval.
  * the Rust engine, through its benchmark target:
        cargo bench -q -p ketacare-domain --bench pk -- --cases tests/pk/cases.json --out FILE

Each curve (Cp and Ce at all times_min) is compared with tests/pk/reference-curves.json: the
error of a value is |value - ref| / max(|ref|, 1e-6 * max|ref| of that curve), and the case's
error is the largest over Cp and Ce. Peer times are the best of 5 runs (wall time per curve),
except that a peer stops repeating a case once its runs took 30 s in all (--budget; scipy on
weekly_long takes about a minute per run). PyTCI keeps its own lru caches of transition
matrices between runs, as it does in use.

    python3 tests/pk/compare_peers.py [--json table.json] [--no-rust | --rust-json FILE]
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy
from scipy.integrate import solve_ivp

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CASES = HERE / "cases.json"
REFERENCE = HERE / "reference-curves.json"
RUNS = 5
BUDGET = 30.0  # seconds per peer and case; a slower peer is timed fewer than RUNS times
RADAU_RTOL = 1e-13
RADAU_ATOL = 1e-20
FLOOR = 1e-6
RUST_CMD = ["cargo", "bench", "-q", "-p", "ketacare-domain", "--bench", "pk", "--"]

try:
    import PyTCI  # noqa: F401
    from PyTCI.models.base import Three

    try:
        from importlib.metadata import version

        PYTCI_VERSION = version("PyTCI")
    except Exception:  # pragma: no cover - metadata missing
        PYTCI_VERSION = "unknown"
except ImportError:  # pragma: no cover - reported in the table
    Three = None
    PYTCI_VERSION = None


# ---------------------------------------------------------------------------------------------
# Case parsing shared by the peers (plain floats)


def micro_of(case):
    m = case["micro"]
    return (
        float(m["v1_l"]),
        float(m["k10"]),
        float(m.get("k12", 0.0)),
        float(m.get("k21", 0.0)),
        float(m.get("k13", 0.0)),
        float(m.get("k31", 0.0)),
    )


def is_iv_only(case):
    return all(ev["kind"] == "infusion" or ev.get("route", "iv") == "iv" for ev in case["events"])


def event_times(case):
    ts = set()
    for ev in case["events"]:
        if ev["kind"] == "infusion":
            ts.add(float(ev["start_min"]))
            ts.add(float(ev["start_min"]) + float(ev["duration_min"]))
        else:
            ts.add(float(ev["at_min"]))
    return sorted(ts)


def infusion_rate_at(case, t):
    """Total infusion rate (mg/min) on [t, next node): active on [start, start + duration)."""
    rate = 0.0
    for ev in case["events"]:
        if ev["kind"] == "infusion":
            start = float(ev["start_min"])
            end = start + float(ev["duration_min"])
            if start <= t < end:
                rate += float(ev["dose_mg"]) / float(ev["duration_min"])
    return rate


# ---------------------------------------------------------------------------------------------
# Peer (a): PyTCI, exact integrator


if Three is not None:

    class MicroModel(Three):
        """PyTCI three-compartment model built from micro constants given per minute.

        setup() converts the rates to per second, as PyTCI's own models do; doses are given
        in micrograms so that x1 and xeo are in ug/L = ng/mL.
        """

        def __init__(self, case):
            v1, k10, k12, k21, k13, k31 = micro_of(case)
            self.v1 = v1
            self.k10, self.k12, self.k21, self.k13, self.k31 = k10, k12, k21, k13, k31
            self.keo = float(case["ke0_per_min"])
            self.setup()
            self.set_integrator("exact")


def run_pytci(case):
    model = MicroModel(case)
    times = [float(t) for t in case["times_min"]]
    wanted = set(times)
    nodes = sorted(wanted | set(event_times(case)))
    cp, ce = [], []
    t_cur = nodes[0]
    rate_ug_s = 0.0  # ug/s, set after the events of each node
    for t in nodes:
        if t > t_cur:
            seconds = (t - t_cur) * 60
            if rate_ug_s > 0:
                model.giveoverseconds(rate_ug_s, seconds)
            else:
                model.wait_time(seconds)
            t_cur = t
        for ev in case["events"]:
            if ev["kind"] == "bolus" and float(ev["at_min"]) == t:
                model.give_drug(float(ev["dose_mg"]) * 1000)
        rate_ug_s = infusion_rate_at(case, t) * 1000 / 60
        if t in wanted:
            cp.append(model.x1)
            ce.append(model.xeo)
    return cp, ce


# ---------------------------------------------------------------------------------------------
# Peer (b): scipy solve_ivp Radau


def linear_system(case):
    """M for x = [A1, A2, A3, Ad_1..Ad_n, Ce] (amounts in mg, Ce in mg/L) and depot list."""
    v1, k10, k12, k21, k13, k31 = micro_of(case)
    ke0 = float(case["ke0_per_min"])
    depots = [ev for ev in case["events"] if ev["kind"] == "bolus" and ev.get("route", "iv") != "iv"]
    n = 3 + len(depots) + 1
    m = np.zeros((n, n))
    m[0, 0] = -(k10 + k12 + k13)
    m[0, 1] = k21
    m[0, 2] = k31
    m[1, 0] = k12
    m[1, 1] = -k21
    m[2, 0] = k13
    m[2, 2] = -k31
    for j, ev in enumerate(depots):
        ka = float(ev["ka_per_min"])
        m[0, 3 + j] = ka
        m[3 + j, 3 + j] = -ka
    m[n - 1, 0] = ke0 / v1
    m[n - 1, n - 1] = -ke0
    return m, depots, v1


def run_scipy(case):
    m, depots, v1 = linear_system(case)
    depot_index = {id(ev): j for j, ev in enumerate(depots)}
    n = m.shape[0]
    times = np.array([float(t) for t in case["times_min"]])
    t_end = times[-1]
    first = min([times[0]] + event_times(case))
    starts = sorted({first} | {t for t in event_times(case) if t < t_end})
    x = np.zeros(n)
    cp, ce = [], []
    for i, a in enumerate(starts):
        # Events at a; the value reported at a includes them (right-continuous).
        for ev in case["events"]:
            if ev["kind"] == "bolus" and float(ev["at_min"]) == a:
                if ev.get("route", "iv") == "iv":
                    x[0] += float(ev["dose_mg"])
                else:
                    x[3 + depot_index[id(ev)]] += float(ev["f"]) * float(ev["dose_mg"])
        last = i + 1 == len(starts)
        b = t_end if last else starts[i + 1]
        sel = times[(times >= a) & ((times <= b) if last else (times < b))]
        if b <= a:  # only when the last event is at the last time
            cp.extend(x[0:1] / v1 * 1000 if len(sel) else [])
            ce.extend(x[n - 1:n] * 1000 if len(sel) else [])
            continue
        u = np.zeros(n)
        u[0] = infusion_rate_at(case, a)

        def fun(_t, y, u=u):
            return m @ y + u

        t_eval = sel if len(sel) and sel[-1] == b else np.append(sel, b)
        sol = solve_ivp(fun, (a, b), x, method="Radau", t_eval=t_eval, rtol=RADAU_RTOL, atol=RADAU_ATOL, jac=m)
        if not sol.success:
            raise RuntimeError(f"Radau failed on {case['name']}: {sol.message}")
        k = len(sel)
        cp.extend(sol.y[0, :k] / v1 * 1000)
        ce.extend(sol.y[n - 1, :k] * 1000)
        x = sol.y[:, -1].copy()
    return cp, ce


# ---------------------------------------------------------------------------------------------
# Measurement


def max_rel_error(ref, got):
    ref = np.asarray(ref, dtype=float)
    got = np.asarray(got, dtype=float)
    if ref.shape != got.shape:
        return float("inf")
    scale = np.maximum(np.abs(ref), FLOOR * np.max(np.abs(ref)))
    with np.errstate(divide="ignore", invalid="ignore"):
        err = np.where(scale > 0, np.abs(got - ref) / np.where(scale > 0, scale, 1), np.abs(got - ref))
    return float(np.max(err)) if err.size else 0.0


def curve_error(ref_case, cp, ce):
    return max(max_rel_error(ref_case["cp_ng_per_ml"], cp), max_rel_error(ref_case["ce_ng_per_ml"], ce))


def best_of(fn, case, runs=RUNS, budget=None):
    """(best wall time, runs done, first run's time, result); stops early past the budget."""
    best = float("inf")
    first = None
    result = None
    spent = 0.0
    done = 0
    for _ in range(runs):
        t = time.perf_counter()
        result = fn(case)
        dt = time.perf_counter() - t
        first = dt if first is None else first
        best = min(best, dt)
        spent += dt
        done += 1
        if budget and spent >= budget:
            break
    return best, done, first, result


def timed(fn, case, ref, args):
    secs, done, first, (cp, ce) = best_of(fn, case, args.runs, args.budget)
    return {
        "seconds_per_curve": secs,
        "runs": done,
        "first_run_seconds": first,
        "max_rel_error": curve_error(ref, cp, ce),
    }


def run_rust(cases_path, rust_json):
    """Return ({name: case}, message). Runs cargo bench unless rust_json is given."""
    if rust_json:
        path = Path(rust_json)
        try:
            return {c["name"]: c for c in json.loads(path.read_text())["cases"]}, f"read {path}"
        except (OSError, ValueError, KeyError) as e:
            return None, f"could not read Rust results {path}: {e}"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "rust-pk.json"
        try:
            cases_arg = str(Path(cases_path).resolve().relative_to(ROOT))
        except ValueError:
            cases_arg = str(cases_path)
        cmd = RUST_CMD + ["--cases", cases_arg, "--out", str(out)]
        print("running: " + " ".join(cmd), file=sys.stderr)
        try:
            proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        except OSError as e:
            return None, f"Rust benchmark not run ({e})"
        if proc.returncode != 0:
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
            return None, (
                f"Rust benchmark failed (exit {proc.returncode}): {' '.join(cmd)}\n"
                f"  (the bench target 'pk' of ketacare-domain may not exist yet)\n{_indent(tail)}"
            )
        try:
            return {c["name"]: c for c in json.loads(out.read_text())["cases"]}, "cargo bench"
        except (OSError, ValueError, KeyError) as e:
            return None, f"Rust benchmark ran but its output {out} is unreadable: {e}"


def _indent(text):
    return "\n".join("    " + line for line in text.splitlines())


def fmt_err(e):
    return "-" if e is None else f"{e:.1e}"


def fmt_time(s):
    if s is None:
        return "-"
    if s < 1e-3:
        return f"{s * 1e6:.1f} us"
    if s < 1:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.2f} s"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", default=str(CASES))
    ap.add_argument("--reference", default=str(REFERENCE))
    ap.add_argument("--json", metavar="FILE", help="also save the table as JSON")
    ap.add_argument("--no-rust", action="store_true", help="skip the Rust benchmark")
    ap.add_argument("--rust-json", metavar="FILE", help="use this Rust bench output instead of running cargo")
    ap.add_argument("--runs", type=int, default=RUNS, help=f"timed runs per peer, best kept (default {RUNS})")
    ap.add_argument(
        "--budget", type=float, default=BUDGET,
        help=f"stop a peer's runs on a case once they took this many seconds (default {BUDGET:g}; 0 = no limit)",
    )
    args = ap.parse_args()

    cases_path = Path(args.cases).resolve()
    cases = json.loads(cases_path.read_text())["cases"]
    reference = {c["name"]: c for c in json.loads(Path(args.reference).read_text())["cases"]}

    if args.no_rust:
        rust, rust_msg = None, "Rust benchmark skipped (--no-rust)"
    else:
        rust, rust_msg = run_rust(cases_path, args.rust_json)

    rows = []
    notes = []
    for case in cases:
        name = case["name"]
        ref = reference.get(name)
        if ref is None:
            notes.append(f"{name}: no reference curve (run tests/pk/reference.py)")
            continue
        row = {"case": name, "points": len(case["times_min"])}
        # (a) PyTCI
        if Three is None:
            row["pytci"] = {"skipped": "PyTCI not installed"}
        elif not is_iv_only(case):
            row["pytci"] = {"skipped": "not applicable: PyTCI has no absorption depot (IV bolus/infusion only)"}
        else:
            row["pytci"] = timed(run_pytci, case, ref, args)
        # (b) scipy Radau
        row["scipy_radau"] = timed(run_scipy, case, ref, args)
        # Rust
        if rust is not None:
            rc = rust.get(name)
            if rc is None:
                row["rust"] = {"skipped": "case missing from the Rust output"}
            else:
                row["rust"] = {
                    "seconds_per_curve": float(rc["ns_per_curve"]) * 1e-9,
                    "max_rel_error": curve_error(ref, rc["cp_ng_per_ml"], rc["ce_ng_per_ml"]),
                }
        else:
            row["rust"] = {"skipped": "Rust benchmark not available"}
        peer_times = [row[p]["seconds_per_curve"] for p in ("pytci", "scipy_radau") if "seconds_per_curve" in row[p]]
        if "seconds_per_curve" in row["rust"] and row["rust"]["seconds_per_curve"] > 0:
            fastest = min(peer_times)
            row["speed_ratio_vs_fastest_peer"] = fastest / row["rust"]["seconds_per_curve"]
        else:
            row["speed_ratio_vs_fastest_peer"] = None
        rows.append(row)
        print(f"  {name:<26} done", file=sys.stderr)

    def g(row, peer, key):
        return row[peer].get(key)

    def tcell(row, peer):
        text = fmt_time(g(row, peer, "seconds_per_curve"))
        runs = g(row, peer, "runs")
        return text + ("*" if runs is not None and runs < args.runs else "")

    header = (
        f"{'case':<26} {'points':>6} | {'err Rust':>8} {'err PyTCI':>9} {'err scipy':>9} | "
        f"{'t Rust':>10} {'t PyTCI':>10} {'t scipy':>10} | {'Rust speedup':>12}"
    )
    print()
    print("Agreement with tests/pk/reference-curves.json (max relative error over Cp and Ce) and")
    print(f"wall time per curve (best of {args.runs} runs; * = fewer runs, as one run took over")
    print(f"{args.budget:g} s / {args.runs}); speedup = fastest peer time / Rust time.")
    print(header)
    print("-" * len(header))
    for row in rows:
        ratio = row["speed_ratio_vs_fastest_peer"]
        print(
            f"{row['case']:<26} {row['points']:>6} | "
            f"{fmt_err(g(row, 'rust', 'max_rel_error')):>8} {fmt_err(g(row, 'pytci', 'max_rel_error')):>9} "
            f"{fmt_err(g(row, 'scipy_radau', 'max_rel_error')):>9} | "
            f"{fmt_time(g(row, 'rust', 'seconds_per_curve')):>10} {tcell(row, 'pytci'):>10} "
            f"{tcell(row, 'scipy_radau'):>10} | "
            f"{'-' if ratio is None else f'{ratio:.0f}x':>12}"
        )
    print()
    skipped = sorted({row["pytci"]["skipped"] for row in rows if "skipped" in row["pytci"]})
    for s in skipped:
        names = [row["case"] for row in rows if row["pytci"].get("skipped") == s]
        print(f"PyTCI skipped for {', '.join(names)}: {s}")
    for n in notes:
        print(n)
    if rust is None:
        print(rust_msg)

    ratios = [(row["speed_ratio_vs_fastest_peer"], row["case"]) for row in rows if row["speed_ratio_vs_fastest_peer"]]
    rust_errs = [(row["rust"]["max_rel_error"], row["case"]) for row in rows if "max_rel_error" in row["rust"]]
    summary = {
        "min_speed_ratio": min(ratios)[0] if ratios else None,
        "min_speed_ratio_case": min(ratios)[1] if ratios else None,
        "max_rust_error": max(rust_errs)[0] if rust_errs else None,
        "max_rust_error_case": max(rust_errs)[1] if rust_errs else None,
        "max_pytci_error": max((row["pytci"]["max_rel_error"] for row in rows if "max_rel_error" in row["pytci"]), default=None),
        "max_scipy_error": max(row["scipy_radau"]["max_rel_error"] for row in rows) if rows else None,
    }
    if ratios and rust_errs:
        print(
            f"Summary: minimum speed ratio Rust vs fastest peer {summary['min_speed_ratio']:.1f}x "
            f"({summary['min_speed_ratio_case']}); max Rust error {summary['max_rust_error']:.2e} "
            f"({summary['max_rust_error_case']})"
        )
    else:
        print(
            "Summary: minimum speed ratio n/a, max Rust error n/a (no Rust results); "
            f"max PyTCI error {fmt_err(summary['max_pytci_error'])}, max scipy error {fmt_err(summary['max_scipy_error'])}"
        )

    if args.json:
        doc = {
            "environment": {
                "python": platform.python_version(),
                "numpy": np.__version__,
                "scipy": scipy.__version__,
                "PyTCI": PYTCI_VERSION,
                "machine": platform.machine(),
                "cpu_count": os.cpu_count(),
            },
            "method": {
                "runs": args.runs,
                "budget_seconds": args.budget,
                "radau_rtol": RADAU_RTOL,
                "radau_atol_mg": RADAU_ATOL,
                "error_floor_fraction_of_max": FLOOR,
                "rust": rust_msg,
            },
            "rows": rows,
            "summary": summary,
        }
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
        print(f"saved {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
