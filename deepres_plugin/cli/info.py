"""Describe an MRC/CCP4 map: grid, voxel size, origin, value statistics, rough resolution.

The rough global resolution comes from the radial power spectrum of the map inside an
automatic mask: the highest frequency whose shell power is ≥ 10× the noise floor (median power
of the outer 15 % of shells). It is a quick sanity number (within ~0.5 Å on simulated 3–8 Å
maps, worse on very noisy ones), not an FSC; `--no-resolution` skips it."""
from __future__ import annotations

import json


def add_args(parser):
    parser.add_argument("map", help="map file (.mrc, .map, .ccp4; gzipped too)")
    parser.add_argument("--json", action="store_true", help="print the facts as JSON")
    parser.add_argument("--no-resolution", action="store_true",
                        help="skip the power-spectrum resolution estimate")


def describe(path: str, resolution: bool = True) -> dict:
    """Facts about the map at ``path`` (a JSON-safe dict)."""
    import numpy as np

    from ..backend.report import grid_origin, power_resolution
    from ..backend.volume import InputError, read_volume

    vol = read_volume(path)
    d = vol.data
    nz, ny, nx = vol.shape
    facts = {
        "path": path,
        "shape_xyz": [nx, ny, nz],
        "voxel_size_A": round(float(vol.sampling), 5),
        "box_A": [round(n * float(vol.sampling), 3) for n in (nx, ny, nz)],
        "origin_A": [round(o, 4) for o in vol.origin],
        "nstart": list(vol.nstart),
        "first_voxel_A": [round(o, 4) for o in grid_origin(vol)],
        "axis_order": [vol.header_extra.get(k) for k in ("mapc", "mapr", "maps")],
        "min": float(d.min()), "max": float(d.max()),
        "mean": float(d.mean()), "sd": float(d.std()),
        "binary": bool(np.isin(d, (0.0, 1.0)).all()),
        "nyquist_A": round(2.0 * float(vol.sampling), 4),
    }
    if resolution and not facts["binary"]:
        try:
            facts["power_spectrum_resolution_A"] = round(power_resolution(d, vol.sampling), 2)
        except InputError as exc:  # constant or pure-noise map: describe it all the same
            facts["power_spectrum_resolution_A"] = None
            facts["resolution_note"] = str(exc)
    return facts


def main(args):
    facts = describe(args.map, not args.no_resolution)
    if args.json:
        print(json.dumps(facts, indent=2))
        return 0
    f = facts
    lines = [
        f"map          {f['path']}",
        f"grid (x,y,z) {' x '.join(map(str, f['shape_xyz']))} voxels",
        f"voxel size   {f['voxel_size_A']:g} Å/px (Nyquist {f['nyquist_A']:g} Å)",
        f"box          {' x '.join(f'{b:g}' for b in f['box_A'])} Å",
        f"origin       {', '.join(f'{o:g}' for o in f['origin_A'])} Å (header)",
        f"nstart       {', '.join(map(str, f['nstart']))} voxels",
        f"voxel 0 at   {', '.join(f'{o:g}' for o in f['first_voxel_A'])} Å",
        f"values       min {f['min']:.4g}  max {f['max']:.4g}  mean {f['mean']:.4g}  "
        f"sd {f['sd']:.4g}" + ("  (binary: a mask?)" if f["binary"] else ""),
    ]
    if f.get("resolution_note"):
        lines.append(f"resolution   not estimated: {f['resolution_note']}")
    elif "power_spectrum_resolution_A" in f:
        lines.append(f"resolution   ~{f['power_spectrum_resolution_A']:g} Å (rough, from the "
                     "power spectrum; not an FSC)")
    print("\n".join(lines))
    return 0
