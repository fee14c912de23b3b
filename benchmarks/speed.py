"""Speed and memory, side by side in one run (ratios, not absolute timings, are the result).

1. per-voxel speed: the `paper` net as Xmipp runs it (one unit-norm 13³ box per voxel, batches of
   128) vs the `dense` model on the same voxels (a 32³ region) and on a full 64³ tile;
2. end-to-end `deepres estimate` (default `--model auto`, as users run it) on a 256³ map at
   1.0 Å/px with a ~30 % mask: wall time, and masked voxels per second of wall time against the
   paper net's voxels per second of part 1 (the end-to-end ratio);
3. peak RSS of `deepres estimate` on a 512³ map at 1.0 Å/px.
Targets (issue 16): end-to-end ratio ≥ 1000×, 256³ ≤ 15 s on 2 cores, 512³ ≤ 4 GB.
Writes bench_output/speed.json."""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
from scipy import ndimage

from deepres_plugin.backend import models, samples, simulate
from deepres_plugin.backend.estimate import get_model, predict_tiles
from deepres_plugin.backend.volume import Volume, write_volume


def _test_map(n: int, mask_fraction: float = 0.3, seed: int = 0):
    """A simulated map of a val structure (1r19, 4 chains at 3–9 Å) in an n³ box at 1 Å/px,
    tiled to fill the box, with a mask dilated to ~mask_fraction of the box."""
    st = simulate.load_structure(next(r["path"] for r in samples.manifest("val")
                                      if r["id"] == "1r19"))
    names = simulate.atom_table(st)[2]
    sim = simulate.simulate(st, 1.0, dict(zip(names, (3.0, 5.0, 7.0, 9.0))), noise=0.05,
                            seed=seed)
    reps = [int(np.ceil(n / s)) for s in sim.map.shape]
    data = np.tile(sim.map, reps)[:n, :n, :n]
    mask = np.tile(sim.mask, reps)[:n, :n, :n]
    while mask.mean() < mask_fraction:
        mask = ndimage.binary_dilation(mask, iterations=2)
    return data, mask


def per_voxel(region: int = 32):
    rng = np.random.default_rng(0)
    data = rng.standard_normal((region + 12,) * 3).astype(np.float32)
    net, card = get_model("standard")
    paper = models.build_paper()
    centres = np.argwhere(np.ones((region,) * 3, bool)) + 6
    t = time.perf_counter()
    for i in range(0, len(centres), 4096):
        boxes = models.unit_norm_boxes(data, centres[i:i + 4096])
        paper.predict(boxes, batch_size=128, verbose=0)
    t_paper = time.perf_counter() - t
    mask = np.zeros(data.shape, bool)
    mask[6:-6, 6:-6, 6:-6] = True
    predict_tiles(net, data, mask, 6)  # warm-up: one-off oneDNN set-up for this tile shape
    t = time.perf_counter()
    predict_tiles(net, data, mask, 6)
    t_dense = time.perf_counter() - t
    big = rng.standard_normal((128,) * 3).astype(np.float32)
    bmask = np.ones(big.shape, bool)
    predict_tiles(net, big, bmask, 6)
    t = time.perf_counter()
    predict_tiles(net, big, bmask, 6)
    t_big = time.perf_counter() - t
    n = region ** 3
    return {"voxels": n, "paper_s": t_paper, "paper_voxels_per_s": n / t_paper,
            "dense_same_voxels_s": t_dense, "dense_voxels_per_s": n / t_dense,
            "ratio_same_voxels": t_paper / t_dense,
            "dense_128cube_voxels_per_s": big.size / t_big,
            "ratio_per_voxel_128cube": (big.size / t_big) / (n / t_paper)}


def _run_cli(args):
    t = time.perf_counter()
    proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), "deepres")] + args,
                          capture_output=True, text=True)
    wall = time.perf_counter() - t
    if proc.returncode:
        raise SystemExit(proc.stderr)
    return wall, proc.stdout


def end_to_end(n: int, tmp: str):
    data, mask = _test_map(n)
    vol = Volume(data, 1.0, origin=(10.0, -20.0, 30.0))
    mp, kp, op = (os.path.join(tmp, f"{k}{n}.mrc") for k in ("map", "mask", "locres"))
    write_volume(mp, vol)
    write_volume(kp, vol, mask.astype(np.float32))
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    wall, out = _run_cli(["estimate", mp, "--mask", kp, "-o", op, "--no-progress"])
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    with open(op[:-4] + ".json", encoding="utf-8") as fh:
        summary = json.load(fh)
    return {"size": n, "mask_fraction": float(mask.mean()), "masked_voxels": int(mask.sum()),
            "wall_s": wall, "masked_voxels_per_s": float(mask.sum()) / wall,
            "peak_rss_GB": max(rss, before) / 1024 ** 2, "timings": summary["timings"],
            "model": summary["model"], "models": summary.get("models")}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="bench_output/speed.json")
    p.add_argument("--skip-512", action="store_true")
    p.add_argument("--parts", default="voxel,256,512",
                   help="comma-separated subset of voxel (per-voxel ratio), 256, 512")
    a = p.parse_args(argv)
    parts = set(a.parts.split(",")) - ({"512"} if a.skip_512 else set())
    res = {}
    if "voxel" in parts:
        res["per_voxel"] = pv = per_voxel()
        print(f"paper sliding window: {pv['paper_voxels_per_s']:.0f} voxels/s; dense on the same "
              f"{pv['voxels']} voxels: {pv['dense_voxels_per_s']:.0f} voxels/s → "
              f"{pv['ratio_same_voxels']:.0f}×; dense on 128³: "
              f"{pv['dense_128cube_voxels_per_s']:.0f} voxels/s → "
              f"{pv['ratio_per_voxel_128cube']:.0f}× per voxel")
    with tempfile.TemporaryDirectory() as tmp:
        if "256" in parts:
            res["estimate_256"] = r = end_to_end(256, tmp)
            if "per_voxel" in res:
                r["ratio_end_to_end"] = r["masked_voxels_per_s"] / res["per_voxel"][
                    "paper_voxels_per_s"]
            print(f"deepres estimate 256³ (mask {100 * r['mask_fraction']:.0f} %, model "
                  f"{r['model']}): {r['wall_s']:.1f} s wall, {r['masked_voxels_per_s']:.0f} "
                  f"masked voxels/s (end to end {r.get('ratio_end_to_end', float('nan')):.0f}× "
                  f"the paper net), peak RSS {r['peak_rss_GB']:.2f} GB, {r['timings']}")
        if "512" in parts:
            res["estimate_512"] = end_to_end(512, tmp)
            r = res["estimate_512"]
            print(f"deepres estimate 512³ (mask {100 * r['mask_fraction']:.0f} %): "
                  f"{r['wall_s']:.1f} s wall, peak RSS {r['peak_rss_GB']:.2f} GB")
    os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
    with open(a.out, "w", encoding="utf-8") as fh:
        json.dump(res, fh, indent=1)
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
