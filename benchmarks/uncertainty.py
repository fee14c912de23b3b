"""Uncertainty (``deepres estimate --uncertainty``): coverage of the spread on `val` maps, cost,
and the fit of its reference (`train` maps only).

Benchmark (default): val structures simulated as accuracy.py part 6a (chains or regions at
3/5/7/9 Å, 1 Å/px, white noise 0.08 × max, the paper's filter); per map the plain estimate
(``--model auto``) and the K-copy spread; coverage = fraction of masked voxels whose truth lies
within ±1 (±2) spread of the estimate; wall time with and without; OOD counts; the same for the
`deepres estimate` command on one map. Writes benchmarks/results/uncertainty.json and prints a
markdown table.

``--fit``: the reference in deepres_plugin/backend/weights/uncertainty.json, from `train`
structures only: the 0.1–99.9 % range of the box statistics on each shipped model's training
samples (its card's recipe), and per K the spread's scale and floor on simulated train maps
(regions at uniform 3–10 Å, noise 0.04–0.12 × max) such that ±1 spread covers 68 % and ±2
spread 95 % of the voxels.
Usage:
    python benchmarks/uncertainty.py [--copies 4] [--structures 1mol,4gv9] [--out FILE]
    python benchmarks/uncertainty.py --fit [--fit-maps 14] [--box-jobs 40] [--seed 1]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

from deepres_plugin.backend import models, samples, simulate
from deepres_plugin.backend import uncertainty as U
from deepres_plugin.backend.estimate import estimate
from deepres_plugin.backend.volume import Volume, atomic_write_text, write_volume

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from accuracy import LEVELS, _groups, _val  # noqa: E402  (the 6a protocol)

VAL = ["4gv9", "1mol", "1lcd", "1j6z", "4gxy"]
HERE = os.path.dirname(os.path.abspath(__file__))
G68, G95 = 0.6827, 0.9545


def coverage(est, truth, spread):
    err = np.abs(est - truth)
    return {"within_1": float(np.mean(err <= spread)),
            "within_2": float(np.mean(err <= 2 * spread)), "n": int(err.size)}


def val_map(pid: str, i: int, noise: float = 0.08):
    st = _val(pid)
    groups, k = _groups(st, i)
    res = [LEVELS[(g + i) % 4] for g in range(k)]
    sim = simulate.simulate(st, 1.0, res, groups=groups, seed=i)
    rng = np.random.default_rng(100 + i)
    return sim, sim.map + rng.standard_normal(sim.map.shape).astype(np.float32) * noise * \
        sim.map.max()


def bench(pids, k: int, cli_map: bool = True) -> dict:
    rows, pooled = [], {"est": [], "truth": [], "spread": [], "sd": []}
    for i, pid in enumerate(pids):
        sim, data = val_map(pid, VAL.index(pid) if pid in VAL else i)
        vol = Volume(data, 1.0)
        estimate(vol, sim.mask, "auto")  # warm-up: models loaded before timing
        t = time.perf_counter()
        out = estimate(vol, sim.mask, "auto")
        plain = time.perf_counter() - t
        U.attach(out, vol, "auto", True, k)
        u = out.uncertainty
        m = sim.mask
        est, truth, spread = out.resolution[m], sim.truth[m], u.spread[m]
        scale, floor = u.summary["scale"], u.summary["floor"]
        sd = np.sqrt(np.maximum((spread / scale) ** 2 - (floor * est) ** 2, 0.0))  # raw SD
        row = {"structure": pid, "voxels": int(m.sum()), "model": out.model,
               "plain_s": round(plain, 2), "uncertainty_s": u.summary["seconds"],
               "cost_ratio": round((plain + u.summary["seconds"]) / plain, 2),
               "median_spread": float(np.median(spread)), "ood_fraction": u.ood_summary["fraction"],
               "ood_reasons": u.ood_summary["reasons"], **coverage(est, truth, spread),
               "per_truth": {f"{r:g}": coverage(est[truth == r], r, spread[truth == r])
                             for r in sorted(set(truth.tolist()))}}
        rows.append(row)
        for key, v in (("est", est), ("truth", truth), ("spread", spread), ("sd", sd)):
            pooled[key].append(v)
        print(f"{pid}: ±1 {100 * row['within_1']:.0f} %, ±2 {100 * row['within_2']:.0f} %, "
              f"median spread {row['median_spread']:.2f} Å, {plain:.1f} s + "
              f"{u.summary['seconds']:.1f} s, OOD {100 * row['ood_fraction']:.1f} %", flush=True)
    from scipy.stats import spearmanr

    est, truth, spread, sd = (np.concatenate(pooled[k_]) for k_ in ("est", "truth", "spread", "sd"))
    err = np.abs(est - truth)
    sd_only = U.reference()["tta"]["scale"][str(k)]["sd_only_scale"] * sd
    terciles = np.quantile(spread, [1 / 3, 2 / 3])
    bins = np.digitize(spread, terciles)
    res = {"copies": k, "rows": rows, "pooled": coverage(est, truth, spread),
           "per_truth": {f"{r:g}": coverage(est[truth == r], r, spread[truth == r])
                         for r in LEVELS},
           "mean_abs_error_by_spread_tercile": [float(err[bins == b].mean()) for b in range(3)],
           "mean_spread_by_tercile": [float(spread[bins == b].mean()) for b in range(3)],
           "cost_ratio_mean": float(np.mean([r["cost_ratio"] for r in rows])),
           "sd_only": coverage(est, truth, sd_only),  # scale × raw SD, no floor term
           "spearman_abs_error": {"spread": float(spearmanr(err, spread)[0]),
                                  "raw_sd": float(spearmanr(err, sd)[0]),
                                  "resolution": float(spearmanr(err, est)[0])}}
    if cli_map:
        res["cli"] = cli_cost(pids[0], k)
    return res


def cli_cost(pid: str, k: int) -> dict:
    """Wall time of `deepres estimate` on one val map, without and with --uncertainty."""
    import tempfile

    sim, data = val_map(pid, VAL.index(pid) if pid in VAL else 0)
    exe = os.path.join(os.path.dirname(sys.executable), "deepres")
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        mp, kp = os.path.join(tmp, "map.mrc"), os.path.join(tmp, "mask.mrc")
        write_volume(mp, Volume(data, 1.0))
        write_volume(kp, Volume(sim.mask.astype(np.float32), 1.0))
        for label, extra in (("plain", []), ("uncertainty", ["--uncertainty", "--tta", str(k)])):
            t = time.perf_counter()
            subprocess.run([exe, "estimate", mp, "--mask", kp, "-o",
                            os.path.join(tmp, label + ".mrc"), "--no-progress", *extra],
                           check=True, capture_output=True)
            out[label + "_s"] = round(time.perf_counter() - t, 2)
    out["ratio"] = round(out["uncertainty_s"] / out["plain_s"], 2)
    out["structure"] = pid
    return out


# ---------------------------------------------------------------- the fit (train only)

def fit_box_ranges(n_jobs: int, seed: int) -> dict:
    """0.1–99.9 % of the box statistics of each shipped model's training samples."""
    from deepres_plugin.backend.samples import SampleMaker, SampleRecipe

    paths = [r["path"] for r in samples.manifest("train")]
    out = {}
    for name in models.SHIPPED:
        card = models.read_card(models.weights_paths(name)[1])
        recipe = SampleRecipe(**card.extra["recipe"])
        maker = SampleMaker(recipe, paths)
        rng = np.random.default_rng([seed, 7])
        h, q = recipe.halo, recipe.patch - 2 * recipe.halo
        values = {s: [] for s in U.STATS}
        for _ in range(n_jobs):
            x, y, _n = maker.job(rng)
            st = U.box_stats(x[..., 0], card.dense_spec().box)
            inner = np.s_[:, h:h + q - 1, h:h + q - 1, h:h + q - 1]  # boxes inside the patch
            keep = (y[..., 1] > 0)[:, :-1, :-1, :-1] & (rng.random(st["zeros"][inner].shape) < 0.25)
            for s in U.STATS:
                values[s].append(st[s][inner][keep])
        vals = {s: np.concatenate(v) for s, v in values.items()}
        out[name] = {s: [round(float(p), 4) for p in np.percentile(v, U.PERCENTILES)]
                     for s, v in vals.items()}
        out[name].update(created=card.extra.get("created"), voxels=int(vals["zeros"].size),
                         jobs=n_jobs)
        print(f"box statistics, {name}: {out[name]}", flush=True)
    return out


def fit_scale(n_maps: int, seed: int, kmax: int = len(U.COPIES)) -> dict:
    """Per K: (scale, floor) such that ±1 / ±2 spread cover 68 / 95 % on train maps."""
    rows = [r for r in samples.manifest("train") if 1200 <= int(r["n_atoms"]) <= 3600]
    rng = np.random.default_rng(seed)
    chosen = [rows[i] for i in sorted(rng.choice(len(rows), n_maps, replace=False))]
    est, truth, answers = [], [], []
    for i, row in enumerate(chosen):
        st = simulate.load_structure(row["path"])
        groups, k = _groups(st, seed + i)
        res = rng.uniform(3.0, 10.0, size=k)
        sim = simulate.simulate(st, 1.0, res, noise=float(rng.uniform(0.04, 0.12)),
                                groups=groups, seed=seed + i)
        vol = Volume(sim.map, 1.0)
        out = estimate(vol, sim.mask, "auto")
        first = out.resolution[sim.mask]
        copies = [first] + [U.from_copy(estimate(Volume(U.to_copy(sim.map, c), 1.0),
                                                 U.to_copy(sim.mask, c), "auto").resolution,
                                        c)[sim.mask] for c in U.COPIES[1:kmax]]
        est.append(first)
        truth.append(sim.truth[sim.mask])
        answers.append(np.stack(copies))
        print(f"fit map {i + 1}/{n_maps} {row['id']}: {first.size} voxels", flush=True)
    est, truth, answers = np.concatenate(est), np.concatenate(truth), np.concatenate(answers, 1)
    err = np.abs(est - truth)
    table = {}
    for k in range(2, kmax + 1):
        sd = answers[:k].std(0, ddof=1)
        table[str(k)] = _fit_one(err, sd, est)
        print(f"K={k}: {table[str(k)]}", flush=True)
    return {"scale": table, "structures": [r["id"] for r in chosen], "maps": n_maps,
            "voxels": int(err.size)}


def _fit_one(err, sd, est) -> dict:
    """The floor (grid search) whose scale for 68 % also gives 95 % at ±2."""
    best = None
    for floor in np.arange(0.0, 0.301, 0.0025):
        ratio = err / np.maximum(np.sqrt(sd * sd + (floor * est) ** 2), 1e-9)
        scale = float(np.quantile(ratio, G68))
        cov2 = float(np.mean(ratio <= 2 * scale))
        if best is None or abs(cov2 - G95) < abs(best["coverage_2"] - G95):
            best = {"scale": round(scale, 4), "floor": round(float(floor), 4),
                    "coverage_1": G68, "coverage_2": round(cov2, 4)}
    sd_only = float(np.quantile(err / np.maximum(sd, 1e-9), G68))
    best["sd_only_scale"] = round(sd_only, 4)  # scale alone (floor 0), for comparison
    best["sd_only_coverage_2"] = round(float(np.mean(err <= 2 * sd_only * sd)), 4)
    return best


def fit(args) -> int:
    t = time.perf_counter()
    ref = {"about": "deepres --uncertainty reference (benchmarks/uncertainty.py --fit), from "
                    "`train` structures only",
           "box_statistics": {"models": fit_box_ranges(args.box_jobs, args.seed),
                              "percentiles": list(U.PERCENTILES), "seed": args.seed}}
    tta = fit_scale(args.fit_maps, args.seed)
    tta.update(model="auto", calibrated=True, seed=args.seed, noise=[0.04, 0.12],
               resolutions=[3.0, 10.0],
               target_coverage={"within_1": G68, "within_2": G95},
               command=" ".join(["python benchmarks/uncertainty.py"] + sys.argv[1:]))
    ref["tta"] = tta
    ref["seconds"] = round(time.perf_counter() - t, 1)
    atomic_write_text(args.reference, json.dumps(ref, indent=1) + "\n")
    print(f"wrote {args.reference} ({ref['seconds']:.0f} s)")
    return 0


def table(res: dict) -> str:
    lines = ["| structure | masked voxels | models | ±1 spread | ±2 spread | median spread | "
             "estimate | + uncertainty | OOD |", "|---|---|---|---|---|---|---|---|---|"]
    for r in res["rows"]:
        lines.append(f"| {r['structure']} | {r['voxels']} | {r['model']} | "
                     f"{100 * r['within_1']:.0f} % | {100 * r['within_2']:.0f} % | "
                     f"{r['median_spread']:.2f} Å | {r['plain_s']:.1f} s | "
                     f"{r['uncertainty_s']:.1f} s | {100 * r['ood_fraction']:.1f} % |")
    p = res["pooled"]
    lines.append(f"| **all** | {p['n']} | | **{100 * p['within_1']:.0f} %** | "
                 f"**{100 * p['within_2']:.0f} %** | | | ×{res['cost_ratio_mean']:.2f} | |")
    q = res["sd_only"]
    lines.append(f"| scale × raw SD only | | | {100 * q['within_1']:.0f} % | "
                 f"{100 * q['within_2']:.0f} % | | | | |")
    lines += ["", "| truth | ±1 spread | ±2 spread |", "|---|---|---|"]
    lines += [f"| {t} Å | {100 * c['within_1']:.0f} % | {100 * c['within_2']:.0f} % |"
              for t, c in res["per_truth"].items()]
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fit", action="store_true", help="refit the reference (train maps)")
    p.add_argument("--copies", type=int, default=U.DEFAULT_COPIES)
    p.add_argument("--structures", default=",".join(VAL), help="val structures")
    p.add_argument("--no-cli", action="store_true", help="skip the command-line timing")
    p.add_argument("--out", default=os.path.join(HERE, "results", "uncertainty.json"))
    p.add_argument("--fit-maps", type=int, default=14)
    p.add_argument("--box-jobs", type=int, default=40)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--reference", default=U.REFERENCE)
    a = p.parse_args(argv)
    if a.fit:
        return fit(a)
    pids = [s for s in a.structures.split(",") if s]
    t = time.perf_counter()
    res = bench(pids, U.check_copies(a.copies), not a.no_cli)
    res["seconds"] = round(time.perf_counter() - t, 1)
    res["reference"] = {k: v for k, v in U.reference()["tta"].items() if k != "scale"}
    res["reference"]["scale"] = U.reference()["tta"]["scale"][str(a.copies)]
    os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
    atomic_write_text(a.out, json.dumps(res, indent=1) + "\n")
    print(table(res))
    if "cli" in res:
        c = res["cli"]
        print(f"\ndeepres estimate on {c['structure']}: {c['plain_s']:.1f} s, with --uncertainty "
              f"{c['uncertainty_s']:.1f} s (×{c['ratio']:.2f})")
    print(f"\nwrote {a.out} ({res['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
