"""Markdown tables for wiki/Benchmarks.md from the JSON of `accuracy.py` and `speed.py`, so that
the numbers quoted in the wiki are the numbers of a run. Usage:
    python benchmarks/tables.py [ACCURACY.json [SPEED.json]]   (default: benchmarks/results/)
"""
from __future__ import annotations

import json
import os
import sys


def _f(v, nd=2):
    return f"{v:.{nd}f}"


def accuracy(res: dict) -> str:
    out = []
    if "a" in res:
        a = res["a"]
        out += ["### 6a / 6f / 6g. Per chain, the paper's protocol (1 Å/px, noise 0.08 × max)", "",
                "| structure | region | truth | median | SD | masked | coloured noise |",
                "|---|---|---|---|---|---|---|"]
        out += [f"| {r['structure']} | {r['region']} | {r['truth']:g} | {_f(r['median'])} | "
                f"{_f(r['sd'])} | {_f(r['median_masked'])} | {_f(r['median_coloured'])} |"
                for r in a["rows"]]
        out += ["", "| truth | regions | mean median | max \\|error\\| | mean SD (target) |",
                "|---|---|---|---|---|"]
        out += [f"| {float(t):g} Å | {s['n']} | {_f(s['mean_median'])} | "
                f"{_f(s['max_abs_error'])} | {_f(s['mean_sd'])} (≤ {s['target_sd']}) |"
                for t, s in a["summary"].items()]
        out += ["", f"Mean \\|median − truth\\| {_f(a['mean_abs_error'])} Å (target ≤ 0.15), "
                f"max {_f(a['max_abs_error'])} Å (target ≤ 0.3). Masked (6f): max \\|change\\| "
                f"{_f(a['masked_max_abs_change'])} Å (target ≤ 0.3). Coloured noise (6g): max "
                f"\\|change\\| {_f(a['coloured_max_abs_change'])} Å, mean "
                f"{a['coloured_mean_change']:+.2f} Å (target ≤ 0.3).", ""]
    if "b" in res:
        out += ["### 6b. `high`, regions at 2 and 4 Å, 0.5 Å/px, noise 0.08 × max", "",
                "| structure | truth | median |", "|---|---|---|"]
        out += [f"| {r['structure']} | {r['truth']:g} | {_f(r['median'])} |"
                for r in res["b"]["rows"]]
        out += ["", f"Max \\|error\\| {_f(res['b']['max_abs_error'])} Å (target ≤ 0.2).", ""]
    if "c" in res:
        out += ["### 6c. 2 Å map, phases randomised beyond 4 Å (noise-free)", "",
                "| structure | sampling | model | 2 Å map | randomised |", "|---|---|---|---|---|"]
        out += [f"| {r['structure']} | {r['sampling']:g} | {r['model']} | "
                f"{_f(r['median_2A_map'])} | {_f(r['median_phase_randomised_4A'])} |"
                for r in res["c"]["rows"]]
        out += [""]
    if "d" in res:
        bs = list(res["d"]["rows"][0]["medians"])
        out += ["### 6d. Sharpening (noise 0.08 × max; B in Å² inside the Nyquist sphere)", "",
                "| structure | truth | variant | " + " | ".join(f"B = {float(b):+g}" for b in bs)
                + " | increasing |", "|---|---|---|" + "---|" * (len(bs) + 1)]
        out += [f"| {r['structure']} | {r['truth']:g} | {r['variant']} | "
                + " | ".join(_f(r["medians"][b]) for b in bs)
                + f" | {'yes' if r['increasing'] else '**no**'} |" for r in res["d"]["rows"]]
        out += ["", f"All increasing: {res['d']['all_increasing']}; largest \\|B = 0 − truth\\| "
                f"{_f(res['d']['max_abs_b0_error'])} Å (target ≤ 0.3).", ""]
    if "i" in res:
        out += ["### 6i. Low resolution: uniform maps, noise 0.08 × max", "",
                "| structure | sampling | truth | median | error | voxels per model |",
                "|---|---|---|---|---|---|"]
        out += [f"| {r['structure']} | {r['sampling']:g} Å/px | {r['truth']:g} | "
                f"{_f(r['median'])} | {100 * r['relative_error']:+.0f} % | {r['models']} |"
                for r in res["i"]["rows"]]
        out += ["", f"Largest \\|error\\| {100 * res['i']['max_relative_error']:.0f} % "
                "(target ≤ 10 %).", ""]
    if "u" in res:
        out += ["### Uniform maps at 1 Å/px (median, Å)", "",
                "| structure | truth | noise | median |", "|---|---|---|---|"]
        out += [f"| {r['structure']} | {r['truth']:g} | {r['noise']:g} | {_f(r['median'])} |"
                for r in res["u"]["rows"]]
        out += [""]
    if "e" in res:
        out += ["### 6e. Real maps of the data kit (automatic mask, `--model auto`)", "",
                "| map | Å/px | models (voxels) | median | 5–95 % | on the floor | seconds |",
                "|---|---|---|---|---|---|---|"]
        for r in res["e"]["rows"]:
            out.append(f"| {r['map']} | {r['sampling']:.3f} | {r['models']} | "
                       f"{_f(r['median'])} | {_f(r['p5'])}–{_f(r['p95'])} | "
                       f"{100 * r['clamp_low_fraction']:.0f} % | {r['seconds']:.1f} |")
            if "fsc05_vs_5me2" in r:
                ref = (f"EMD-3488 map–model FSC against 5ME2 (soft mask around the model): "
                       f"{_f(r['fsc05_vs_5me2'])} Å at 0.5, {_f(r['fsc0143_vs_5me2'])} Å at "
                       "0.143 (reported 3.2 Å).")
        out += ["", ref if "ref" in locals() else "", ""]
    return "\n".join(out)


def speed(res: dict) -> str:
    out = ["| measurement | result | target |", "|---|---|---|"]
    if "per_voxel" in res:
        pv = res["per_voxel"]
        out += [f"| `paper` net as Xmipp runs it (unit-norm 13³ box per voxel, batch 128) | "
                f"{pv['paper_voxels_per_s']:.0f} voxels/s | |",
                f"| `dense` per voxel on a 128³ map | {pv['dense_128cube_voxels_per_s']:.0f} "
                f"voxels/s → **{pv['ratio_per_voxel_128cube']:.0f}×** | |"]
    for key in ("estimate_256", "estimate_512"):
        if key in res:
            r = res[key]
            ratio = (f" → **{r['ratio_end_to_end']:.0f}×** end to end" if "ratio_end_to_end" in r
                     else "")
            out.append(f"| `deepres estimate` {r['size']}³, {100 * r['mask_fraction']:.0f} % "
                       f"mask, model {r.get('model', 'standard')} | {r['wall_s']:.1f} s wall, "
                       f"{r.get('masked_voxels_per_s', 0):.0f} masked voxels/s{ratio}, peak RSS "
                       f"{r['peak_rss_GB']:.2f} GB | "
                       + ("≥ 1000×, ≤ 15 s" if r["size"] == 256 else "≤ 4 GB") + " |")
    return "\n".join(out)


if __name__ == "__main__":
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
    acc, spd = (sys.argv[1:] + [os.path.join(here, "accuracy.json"),
                                os.path.join(here, "speed.json")][len(sys.argv) - 1:])[:2]
    print(accuracy(json.load(open(acc, encoding="utf-8"))))
    print("\n" + speed(json.load(open(spd, encoding="utf-8"))))
