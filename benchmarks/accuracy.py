"""Accuracy of the shipped models on the paper's experiments, `val` structures only.

a. multi-chain/region maps at 3/5/7/9 Å, 1.0 Å/px, noise SD 0.08 × max (paper 3.2/5.0/7.1/8.9)
b. high model: regions at 2 and 4 Å, 0.5 Å/px (paper 2.3 ± 0.3, 4.0 ± 0.3)
c. phase randomisation beyond 4 Å of a 2 Å map (answer should be near 4 Å)
d. sharpening B = −60, 0, +60, +150 Å² on a 4 Å map (median should rise with B)
e. the real maps of the data kit (auto-mask)
u. uniform maps at 3–12 Å, clean and noisy

Prints tables and writes bench_output/accuracy.json. Usage:
    python benchmarks/accuracy.py [--parts abcdeu] [--standard NAME_OR_PATH] [--high ...]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

from deepres_plugin.backend import filters, samples, simulate
from deepres_plugin.backend.estimate import estimate
from deepres_plugin.backend.models import read_card, weights_paths
from deepres_plugin.backend.volume import Volume, read_volume

# `val` structures (MANIFEST split == val) used for each experiment
MULTI = ["1r19", "1j6z", "4gxy", "1dx5", "4l81", "4gv9"]
HIGH = ["1j6z", "5cvz", "6ol3"]
UNIFORM = ["1j6z", "4gxy", "3kcs"]
PAPER_A = {3.0: "3.2", 5.0: "5.0", 7.0: "7.1", 9.0: "8.9"}


def _val_path(pid: str) -> str:
    rows = {r["id"]: r for r in samples.manifest()}
    if rows[pid]["split"] != "val":
        raise SystemExit(f"{pid} is not a val structure")
    return rows[pid]["path"]


def _groups(st, k, seed):
    """k groups: the chains when the model has k chains, else k spatial regions (Voronoi)."""
    pos, chain_idx, names = simulate.atom_table(st)
    if len(names) == k:
        return chain_idx
    rng = np.random.default_rng(seed)
    # seeds far apart: farthest-point sampling from a random atom
    seeds = [pos[rng.integers(len(pos))]]
    for _ in range(k - 1):
        d = np.min([((pos - s) ** 2).sum(1) for s in seeds], axis=0)
        seeds.append(pos[int(np.argmax(d))])
    return np.argmin(((pos[:, None] - np.array(seeds)[None]) ** 2).sum(-1), axis=1)


def per_region(pid, res_list, sampling, noise, model, seed=0):
    """Per-region median and SD, calibrated (the default answer) and raw (`median_raw`)."""
    st = simulate.load_structure(_val_path(pid))
    groups = _groups(st, len(res_list), seed)
    sim = simulate.simulate(st, sampling, res_list, noise=noise, groups=groups, seed=seed)
    vol = Volume(sim.map, sampling)
    out = estimate(vol, sim.mask, model)
    raw = estimate(vol, sim.mask, model, calibrate=False).resolution if out.calibrated else None
    rows = []
    for r in res_list:
        sel = (sim.truth == r) & sim.mask
        v = out.resolution[sel]
        rows.append({"structure": pid, "truth": r, "median": float(np.median(v)),
                     "sd": float(np.std(v)), "n": int(v.size)})
        if raw is not None:
            rows[-1].update(median_raw=float(np.median(raw[sel])), sd_raw=float(np.std(raw[sel])))
    return rows


def _summary_a(rows, key="median", sd_key="sd"):
    summary = {}
    for r in (3.0, 5.0, 7.0, 9.0):
        med = [x[key] for x in rows if x["truth"] == r]
        sd = [x[sd_key] for x in rows if x["truth"] == r]
        summary[r] = {"median_of_medians": float(np.median(med)), "mean_median": float(np.mean(med)),
                      "max_abs_error": float(np.max(np.abs(np.array(med) - r))),
                      "mean_sd": float(np.mean(sd)), "paper": PAPER_A[r]}
    return summary


def part_a(model, noise=0.08):
    rows = []
    for i, pid in enumerate(MULTI):
        rows += per_region(pid, [3.0, 5.0, 7.0, 9.0], 1.0, noise, model, seed=i)
    summary = _summary_a(rows)
    res = {"noise": noise, "rows": rows, "summary": summary,
           "max_abs_error_of_mean": max(abs(s["mean_median"] - r) for r, s in summary.items()),
           "mean_abs_error": float(np.mean([abs(x["median"] - x["truth"]) for x in rows]))}
    if "median_raw" in rows[0]:
        res["summary_raw"] = _summary_a(rows, "median_raw", "sd_raw")
        res["mean_abs_error_raw"] = float(np.mean([abs(x["median_raw"] - x["truth"])
                                                   for x in rows]))
    return res


def part_b(model):
    rows = []
    for i, pid in enumerate(HIGH):
        rows += per_region(pid, [2.0, 4.0], 0.5, 0.08, model, seed=i)
    return {"rows": rows, "paper": {"2.0": "2.3 ± 0.3", "4.0": "4.0 ± 0.3"}}


def _uniform(pid, res, sampling, noise, seed=0):
    st = simulate.load_structure(_val_path(pid))
    return simulate.simulate(st, sampling, res, noise=noise, seed=seed)


def part_c(std_model, high_model):
    rows = []
    for pid in UNIFORM:
        for sampling, model in ((1.0, std_model), (0.5, high_model)):
            sim = _uniform(pid, 2.0, sampling, 0.0)
            pr = filters.phase_randomize(sim.map, sampling, 4.0, seed=1)
            med = [float(np.median(estimate(Volume(m, sampling), sim.mask, model).resolution[sim.mask]))
                   for m in (sim.map, pr)]
            rows.append({"structure": pid, "sampling": sampling, "model": model,
                         "median_2A_map": med[0], "median_phase_randomised_4A": med[1]})
    return {"rows": rows}


def part_d(model, bfactors=(-60.0, 0.0, 60.0, 150.0)):
    """Each B applied alone ('raw') and, as post-processing does, followed by the low-pass at
    the map's resolution ('low-passed 4 Å')."""
    rows = []
    for pid in UNIFORM:
        for noise in (0.0, 0.08):
            sim = _uniform(pid, 4.0, 1.0, noise, seed=3)
            for variant, res in (("raw", None), ("low-passed 4 Å", 4.0)):
                med = {}
                for b in bfactors:
                    m = filters.fourier_filter(sim.map, 1.0, res, b)
                    med[b] = float(np.median(estimate(Volume(m, 1.0), sim.mask, model)
                                             .resolution[sim.mask]))
                rows.append({"structure": pid, "noise": noise, "variant": variant,
                             "medians": med, "monotonic": bool(np.all(np.diff(
                                 [med[b] for b in bfactors]) > 0))})
    return {"rows": rows}


def part_u(model, cases=((3, 0), (3, .08), (4, 0), (4, .08), (6, 0), (6, .08), (8, 0), (8, .08),
                          (10, 0), (12, 0))):
    """Uniform maps (one resolution everywhere), clean and at noise 0.08 × max."""
    rows = []
    for pid in UNIFORM:
        for res, noise in cases:
            sim = _uniform(pid, float(res), 1.0, noise, seed=1)
            out = estimate(Volume(sim.map, 1.0), sim.mask, model)
            rows.append({"structure": pid, "truth": float(res), "noise": noise,
                         "median": out.stats["median"]})
    return {"rows": rows}


def part_e(model):
    from deepres_plugin.backend.masks import auto_mask

    rows = []
    maps = os.path.join(samples.data_dir(), "maps")
    for name in ("emd_5168.map.gz", "emd_5170.map.gz", "emd_5168_monomer.mrc.gz"):
        vol = read_volume(os.path.join(maps, name))
        t = time.perf_counter()
        out = estimate(vol, auto_mask(vol.data, vol.sampling), model)
        s = out.stats
        rows.append({"map": name, "sampling": vol.sampling, "model": out.model,
                     "median": s["median"], "p5": s["p5"], "p95": s["p95"],
                     "min": s["min"], "max": s["max"], "n_voxels": s["n_voxels"],
                     "seconds": time.perf_counter() - t, "warnings": out.warnings})
    return {"rows": rows}


def _model_record(name_or_path: str) -> dict:
    """Which weights a result came from: the card's name, creation time, commands."""
    card = read_card(weights_paths(name_or_path)[1])
    cal = card.extra.get("calibration") or {}
    return {"model": name_or_path, "name": card.name, "created": card.extra.get("created"),
            "command": card.extra.get("command"), "calibration": cal.get("command")}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--parts", default="abcdeu")
    p.add_argument("--standard", default="standard")
    p.add_argument("--high", default="high")
    p.add_argument("--noise-a", type=float, default=0.08, help="noise of part a (paper 0.08)")
    p.add_argument("--out", default="bench_output/accuracy.json")
    a = p.parse_args(argv)
    res = {"models": {"standard": _model_record(a.standard), "high": _model_record(a.high)}}
    if "a" in a.parts:
        res["a"] = part_a(a.standard, a.noise_a)
        print(f"\n6a  chains/regions at 3/5/7/9 Å, 1 Å/px, noise {a.noise_a}·max (val structures)")
        print(f"{'structure':>9} {'truth':>5} {'median':>7} {'SD':>5}")
        for r in res["a"]["rows"]:
            print(f"{r['structure']:>9} {r['truth']:5.1f} {r['median']:7.2f} {r['sd']:5.2f}")
        for r, s in res["a"]["summary"].items():
            print(f"  truth {r:.0f} Å: mean median {s['mean_median']:.2f}, max |err| "
                  f"{s['max_abs_error']:.2f}, mean SD {s['mean_sd']:.2f}  (paper {s['paper']})")
        print(f"  mean |median − truth| over all regions: {res['a']['mean_abs_error']:.2f} Å")
        if "summary_raw" in res["a"]:
            for r, s in res["a"]["summary_raw"].items():
                print(f"  raw (--no-calibration) {r:.0f} Å: mean median {s['mean_median']:.2f}, "
                      f"max |err| {s['max_abs_error']:.2f}, mean SD {s['mean_sd']:.2f}")
            print(f"  raw mean |median − truth|: {res['a']['mean_abs_error_raw']:.2f} Å")
    if "b" in a.parts:
        res["b"] = part_b(a.high)
        print("\n6b  high model, regions at 2 and 4 Å, 0.5 Å/px, noise 0.08·max")
        for r in res["b"]["rows"]:
            print(f"{r['structure']:>9} {r['truth']:5.1f} {r['median']:7.2f} {r['sd']:5.2f}")
    if "c" in a.parts:
        res["c"] = part_c(a.standard, a.high)
        print("\n6c  2 Å map, phases randomised beyond 4 Å")
        for r in res["c"]["rows"]:
            print(f"{r['structure']:>9} {r['sampling']:.1f} Å/px {r['model']:>9}: 2 Å map "
                  f"{r['median_2A_map']:.2f} → randomised {r['median_phase_randomised_4A']:.2f}")
    if "d" in a.parts:
        res["d"] = part_d(a.standard)
        print("\n6d  4 Å map sharpened/blurred: median per B (Å²)")
        for r in res["d"]["rows"]:
            meds = "  ".join(f"B={b:+.0f}: {m:.2f}" for b, m in r["medians"].items())
            print(f"{r['structure']:>9} noise {r['noise']:.2f} {r['variant']:>14}: {meds}  "
                  f"monotonic={r['monotonic']}")
    if "u" in a.parts:
        res["u"] = part_u(a.standard)
        print("\nuniform maps: median (Å) per truth / noise × max")
        for r in res["u"]["rows"]:
            print(f"{r['structure']:>9} {r['truth']:5.1f} / {r['noise']:.2f}: {r['median']:.2f}")
    if "e" in a.parts:
        res["e"] = part_e(a.standard)
        print("\n6e  real maps (auto-mask)")
        for r in res["e"]["rows"]:
            print(f"{r['map']:>24} {r['sampling']:.3f} Å/px median {r['median']:.2f} "
                  f"(5–95 % {r['p5']:.2f}–{r['p95']:.2f}) {r['seconds']:.1f} s {r['warnings']}")
    os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
    with open(a.out, "w", encoding="utf-8") as fh:
        json.dump(res, fh, indent=1, default=float)
    print(f"\nwrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
