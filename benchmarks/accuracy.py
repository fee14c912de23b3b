"""Accuracy of the shipped models on the paper's terms (DESIGN.md §4.1–4.1b), `val` structures only.

a. per chain, the paper's protocol: multi-chain val structures, each chain at one of 3/5/7/9 Å
   (single-chain structures: regions of ≥ 1 000 atoms), 1 Å/px, white noise SD 0.08 × max
f. the same maps masked (map × soft mask, solvent exactly 0): per-chain change
g. the same maps with their noise low-passed at 4 Å (post-processed maps): per-chain change
b. high model: regions at 2 and 4 Å, 0.5 Å/px (paper 2.3 ± 0.3, 4.0 ± 0.3)
c. phase randomisation beyond 4 Å of a 2 Å map (answer should be near 4 Å)
d. sharpening: 3.5 Å (paper Fig. S5) and 4 Å maps, noise 0.08 × max, B = −100…+150 Å² inside
   the Nyquist sphere, (i) alone, (ii) followed by a low-pass at the map's resolution
i. low resolution: uniform 10/15/20 Å maps at 2 and 3 Å/px
u. uniform maps at 3–12 Å, clean and noisy, 1 Å/px
e. the real maps of the data kit (auto-mask); EMD-3488 also its map–model FSC against 5ME2

Every estimate uses ``--model`` (default auto, what users get). Prints tables and writes
bench_output/accuracy.json. Usage:
    python benchmarks/accuracy.py [--parts afgbcdiue] [--model auto] [--high high]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
from scipy import ndimage

from deepres_plugin.backend import filters, models, samples, simulate
from deepres_plugin.backend.estimate import estimate
from deepres_plugin.backend.sharpening import model_map
from deepres_plugin.backend.volume import Volume, read_volume

MULTI = ["1r19", "4gv9", "1mol", "1lcd", "1j6z", "4gxy", "4l81", "6ol3"]  # val, 21 chains/regions
HIGH = ["1j6z", "5cvz", "6ol3"]
UNIFORM = ["1j6z", "4gxy", "3kcs"]
LEVELS = (3.0, 5.0, 7.0, 9.0)
BFACTORS = (-100.0, -60.0, 0.0, 60.0, 150.0)
TARGET_SD = {3.0: 0.5, 5.0: 0.6, 7.0: 0.9, 9.0: 0.9}


def _val(pid: str):
    rows = {r["id"]: r for r in samples.manifest()}
    if rows[pid]["split"] != "val":
        raise SystemExit(f"{pid} is not a val structure")
    return simulate.load_structure(rows[pid]["path"])


def _groups(st, seed):
    """The chains of a multi-chain model, else regions of ≥ 1 000 atoms (farthest-point seeds,
    Voronoi), at most 4."""
    pos, chain_idx, names = simulate.atom_table(st)
    if len(names) > 1:
        return chain_idx, len(names)
    k = int(np.clip(len(pos) // 1000, 1, 4))
    rng = np.random.default_rng(seed)
    seeds = [pos[rng.integers(len(pos))]]
    for _ in range(k - 1):
        d = np.min([((pos - s) ** 2).sum(1) for s in seeds], axis=0)
        seeds.append(pos[int(np.argmax(d))])
    return np.argmin(((pos[:, None] - np.array(seeds)[None]) ** 2).sum(-1), axis=1), k


def soft_mask(mask: np.ndarray, sampling: float, extend: float = 4.0, edge: float = 6.0):
    """A soft mask as users apply them: 1 up to ``extend`` Å beyond ``mask``, cosine to 0 over
    ``edge`` Å."""
    d = ndimage.distance_transform_edt(~mask, sampling=sampling)
    return (0.5 * (1 + np.cos(np.pi * np.clip((d - extend) / edge, 0, 1)))).astype(np.float32)


def _medians(resolution, sim):
    return [float(np.median(resolution[(sim.truth == r) & sim.mask])) for r in
            sim.group_resolutions]


def per_chain(model, noise=0.08):
    """6a, 6f and 6g on the same simulated maps (one per structure)."""
    rows = []
    for i, pid in enumerate(MULTI):
        st = _val(pid)
        groups, k = _groups(st, i)
        res = [LEVELS[(g + i) % 4] for g in range(k)]
        sim = simulate.simulate(st, 1.0, res, groups=groups, seed=i)
        rng = np.random.default_rng(100 + i)
        white = rng.standard_normal(sim.map.shape).astype(np.float32) * noise * sim.map.max()
        coloured = filters.fourier_filter(white, 1.0, 4.0)
        runs = {"white": sim.map + white,
                "masked": (sim.map + white) * soft_mask(sim.mask, 1.0),
                "coloured": sim.map + coloured}
        out = {k_: estimate(Volume(m, 1.0), sim.mask, model) for k_, m in runs.items()}
        meds = {k_: _medians(o.resolution, sim) for k_, o in out.items()}
        for g, r in enumerate(res):
            sel = (sim.truth == r) & sim.mask
            if not sel.any():
                continue
            rows.append({"structure": pid, "region": sim.group_names[g], "truth": r,
                         "n": int(sel.sum()), "median": meds["white"][g],
                         "sd": float(np.std(out["white"].resolution[sel])),
                         "median_masked": meds["masked"][g],
                         "median_coloured": meds["coloured"][g],
                         "models": out["white"].voxels})
    summary = {}
    for r in LEVELS:
        sel = [x for x in rows if x["truth"] == r]
        err = np.array([x["median"] - r for x in sel])
        summary[r] = {"n": len(sel), "mean_median": float(np.mean([x["median"] for x in sel])),
                      "mean_error": float(err.mean()), "max_abs_error": float(np.abs(err).max()),
                      "mean_sd": float(np.mean([x["sd"] for x in sel])),
                      "target_sd": TARGET_SD[r]}
    dm = np.array([x["median_masked"] - x["median"] for x in rows])
    dc = np.array([x["median_coloured"] - x["median"] for x in rows])
    err = np.array([x["median"] - x["truth"] for x in rows])
    return {"noise": noise, "rows": rows, "summary": summary,
            "mean_abs_error": float(np.abs(err).mean()), "max_abs_error": float(np.abs(err).max()),
            "masked_max_abs_change": float(np.abs(dm).max()),
            "masked_mean_change": float(dm.mean()),
            "coloured_max_abs_change": float(np.abs(dc).max()),
            "coloured_mean_change": float(dc.mean())}


def _region_rows(pid, res, sampling, noise, model, seed):
    """Two regions (farthest-point split of the atoms) at the two resolutions ``res``."""
    st = _val(pid)
    pos = simulate.atom_table(st)[0]
    a = pos[np.argmax(((pos - pos.mean(0)) ** 2).sum(1))]
    b = pos[np.argmax(((pos - a) ** 2).sum(1))]
    groups = (((pos - b) ** 2).sum(1) < ((pos - a) ** 2).sum(1)).astype(np.int64)
    sim = simulate.simulate(st, sampling, res, noise=noise, groups=groups, seed=seed)
    out = estimate(Volume(sim.map, sampling), sim.mask, model)
    return [{"structure": pid, "truth": r, "median": m} for r, m in
            zip(res, _medians(out.resolution, sim))]


def part_b(model):
    rows = []
    for i, pid in enumerate(HIGH):
        rows += _region_rows(pid, [2.0, 4.0], 0.5, 0.08, model, i)
    return {"rows": rows, "max_abs_error": max(abs(r["median"] - r["truth"]) for r in rows),
            "paper": {"2.0": "2.3 ± 0.3", "4.0": "4.0 ± 0.3"}}


def _uniform(pid, res, sampling, noise, seed=0):
    return simulate.simulate(_val(pid), sampling, res, noise=noise, seed=seed)


def _median(m, sim, model, sampling=1.0):
    out = estimate(Volume(m, sampling), sim.mask, model)
    return float(np.median(out.resolution[sim.mask])), out


def part_c(model, high):
    rows = []
    for pid in UNIFORM:
        for sampling, name in ((1.0, model), (0.5, high)):
            sim = _uniform(pid, 2.0, sampling, 0.0)
            pr = filters.phase_randomize(sim.map, sampling, 4.0, seed=1)
            rows.append({"structure": pid, "sampling": sampling, "model": name,
                         "median_2A_map": _median(sim.map, sim, name, sampling)[0],
                         "median_phase_randomised_4A": _median(pr, sim, name, sampling)[0]})
    return {"rows": rows}


def part_d(model):
    """B applied inside the Nyquist sphere (i) alone and (ii) then low-passed at the map's
    resolution; medians must rise strictly with B, and B = 0 read the truth within 0.3 Å."""
    rows = []
    for pid in UNIFORM:
        for res in (3.5, 4.0):
            sim = _uniform(pid, res, 1.0, 0.08, seed=3)
            for variant, cut in (("B alone", 2.0), (f"B + low-pass {res:g} Å", res)):
                med = {b: _median(filters.fourier_filter(sim.map, 1.0, cut, b), sim, model)[0]
                       for b in BFACTORS}
                vals = [med[b] for b in BFACTORS]
                rows.append({"structure": pid, "truth": res, "variant": variant, "medians": med,
                             "increasing": bool(np.all(np.diff(vals) > 0)),
                             "b0_error": med[0.0] - res})
    return {"rows": rows, "all_increasing": all(r["increasing"] for r in rows),
            "max_abs_b0_error": max(abs(r["b0_error"]) for r in rows)}


def part_i(model):
    rows = []
    for pid in UNIFORM:
        for sampling in (2.0, 3.0):
            for res in (10.0, 15.0, 20.0):
                sim = _uniform(pid, res, sampling, 0.08, seed=2)
                med, out = _median(sim.map, sim, model, sampling)
                rows.append({"structure": pid, "sampling": sampling, "truth": res,
                             "median": med, "relative_error": med / res - 1,
                             "models": out.voxels})
    return {"rows": rows, "max_relative_error": max(abs(r["relative_error"]) for r in rows)}


def part_u(model, cases=((3, 0), (3, .08), (4, 0), (4, .08), (6, 0), (6, .08), (8, 0), (8, .08),
                          (10, 0), (12, 0))):
    rows = []
    for pid in UNIFORM:
        for res, noise in cases:
            sim = _uniform(pid, float(res), 1.0, noise, seed=1)
            rows.append({"structure": pid, "truth": float(res), "noise": noise,
                         "median": _median(sim.map, sim, model)[0]})
    return {"rows": rows}


def map_model_fsc(vol, model_path, threshold=0.5):
    """Global FSC resolution (Å) between a map and its model's density (soft mask around the
    model), at ``threshold``."""
    dens = model_map(simulate.load_structure(model_path), vol, 2.0 * vol.sampling)
    mask = soft_mask(dens > 0.05 * dens.max(), vol.sampling, 3.0, 6.0)
    f, c = filters.fsc(vol.data * mask, dens * mask, vol.sampling)
    return filters.resolution_at_threshold(f, c, threshold)


def part_e(model):
    from deepres_plugin.backend.masks import auto_mask

    rows = []
    maps = os.path.join(samples.data_dir(), "maps")
    names = sorted(f for f in os.listdir(maps) if f.startswith("emd_") and "_fit_" not in f
                   and f.endswith((".map.gz", ".mrc.gz")))
    for name in names:
        vol = read_volume(os.path.join(maps, name))
        t = time.perf_counter()
        out = estimate(vol, auto_mask(vol.data, vol.sampling), model)
        s, inside = out.stats, out.resolution[out.mask]
        row = {"map": name, "sampling": vol.sampling, "model": out.model, "models": out.voxels,
               "median": s["median"], "p5": s["p5"], "p95": s["p95"],
               "clamp_low_fraction": float(np.mean(np.isclose(inside, out.clamp[0], atol=1e-3))),
               "clamp_high_fraction": float(np.mean(np.isclose(inside, out.clamp[1], atol=1e-3))),
               "n_voxels": s["n_voxels"], "seconds": time.perf_counter() - t,
               "warnings": out.warnings}
        if name.startswith("emd_3488"):
            atoms = os.path.join(maps, "emd_3488_fit_5me2.pdb.gz")
            row["fsc05_vs_5me2"] = map_model_fsc(vol, atoms)
            row["fsc0143_vs_5me2"] = map_model_fsc(vol, atoms, 0.143)
        rows.append(row)
    return {"rows": rows}


def _model_record(name: str) -> dict:
    card = models.read_card(models.weights_paths(name)[1])
    cal = card.extra.get("calibration") or {}
    return {"name": card.name, "created": card.extra.get("created"),
            "command": card.extra.get("command"), "calibration": cal.get("command")}


def _print(res):
    if "a" in res:
        a = res["a"]
        print(f"\n6a/6f/6g  per chain at 3/5/7/9 Å, 1 Å/px, noise {a['noise']}·max (val)")
        print(f"{'structure':>9} {'region':>7} {'truth':>5} {'median':>7} {'SD':>5} "
              f"{'masked':>7} {'coloured':>8}")
        for r in a["rows"]:
            print(f"{r['structure']:>9} {r['region']:>7} {r['truth']:5.1f} {r['median']:7.2f} "
                  f"{r['sd']:5.2f} {r['median_masked']:7.2f} {r['median_coloured']:8.2f}")
        for r, s in a["summary"].items():
            print(f"  {r:.0f} Å ({s['n']}): mean {s['mean_median']:.2f}, max |err| "
                  f"{s['max_abs_error']:.2f}, mean SD {s['mean_sd']:.2f} (target ≤ "
                  f"{s['target_sd']})")
        print(f"  mean |err| {a['mean_abs_error']:.2f} Å, max {a['max_abs_error']:.2f} Å; masked: "
              f"max |Δ| {a['masked_max_abs_change']:.2f} Å; coloured noise: max |Δ| "
              f"{a['coloured_max_abs_change']:.2f} Å")
    if "b" in res:
        print("\n6b  high model, regions at 2 and 4 Å, 0.5 Å/px, noise 0.08·max")
        for r in res["b"]["rows"]:
            print(f"{r['structure']:>9} {r['truth']:5.1f} {r['median']:7.2f}")
    if "c" in res:
        print("\n6c  2 Å map, phases randomised beyond 4 Å")
        for r in res["c"]["rows"]:
            print(f"{r['structure']:>9} {r['sampling']:.1f} Å/px {r['model']:>9}: 2 Å map "
                  f"{r['median_2A_map']:.2f} → randomised {r['median_phase_randomised_4A']:.2f}")
    if "d" in res:
        print("\n6d  sharpening, noise 0.08·max: median per B (Å²)")
        for r in res["d"]["rows"]:
            meds = " ".join(f"{b:+.0f}:{m:.2f}" for b, m in r["medians"].items())
            print(f"{r['structure']:>9} {r['truth']:.1f} {r['variant']:>20}: {meds} "
                  f"increasing={r['increasing']}")
    if "i" in res:
        print("\n6i  uniform low-resolution maps, noise 0.08·max")
        for r in res["i"]["rows"]:
            print(f"{r['structure']:>9} {r['sampling']:.0f} Å/px {r['truth']:5.1f}: "
                  f"{r['median']:6.2f} ({100 * r['relative_error']:+.0f} %) {r['models']}")
    if "u" in res:
        print("\nuniform maps: median (Å) per truth / noise × max")
        for r in res["u"]["rows"]:
            print(f"{r['structure']:>9} {r['truth']:5.1f} / {r['noise']:.2f}: {r['median']:.2f}")
    if "e" in res:
        print("\n6e  real maps (auto-mask)")
        for r in res["e"]["rows"]:
            extra = (f" FSC(map, 5ME2) 0.5: {r['fsc05_vs_5me2']:.2f} Å, 0.143: "
                     f"{r['fsc0143_vs_5me2']:.2f} Å" if "fsc05_vs_5me2" in r else "")
            print(f"{r['map']:>24} {r['sampling']:.3f} Å/px {r['model']}: median "
                  f"{r['median']:.2f} (5–95 % {r['p5']:.2f}–{r['p95']:.2f}), floor "
                  f"{100 * r['clamp_low_fraction']:.0f} %, {r['seconds']:.1f} s{extra} "
                  f"{r['warnings']}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--parts", default="abcdiue", help="a (with f, g), b, c, d, i, u, e")
    p.add_argument("--model", default="auto")
    p.add_argument("--high", default="high", help="model of parts b and c at 0.5 Å/px")
    p.add_argument("--out", default="bench_output/accuracy.json")
    a = p.parse_args(argv)
    res = {"models": {n: _model_record(n) for n in models.SHIPPED}, "model": a.model}
    steps = {"a": lambda: per_chain(a.model), "b": lambda: part_b(a.high),
             "c": lambda: part_c(a.model, a.high), "d": lambda: part_d(a.model),
             "i": lambda: part_i(a.model), "u": lambda: part_u(a.model),
             "e": lambda: part_e(a.model)}
    os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
    for key in a.parts:  # the JSON is rewritten after each part: a late failure keeps the rest
        t = time.perf_counter()
        res[key] = steps[key]()
        res[key]["seconds"] = round(time.perf_counter() - t, 1)
        with open(a.out, "w", encoding="utf-8") as fh:
            json.dump(res, fh, indent=1, default=float)
    _print(res)
    print(f"\nwrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
