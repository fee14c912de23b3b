"""ProtDeepResSimulate: atomic structure → simulated map + true-resolution map + mask."""
import json
import os

import pyworkflow.protocol.params as params
from pwem.objects import Volume, VolumeMask
from pyworkflow import BETA

from .. import constants as C
from ..backend.config import CHAIN_SYNTAX, InputError, chain_resolutions, \
    parse_chain_resolutions
from .base import ProtDeepResBase, object_path

RES_UNIFORM, RES_PER_CHAIN = 0, 1


class ProtDeepResSimulate(ProtDeepResBase):
    """Simulate a cryo-EM map of an atomic structure at known resolution (uniform or per
    chain), with Gaussian noise, plus the true local-resolution map and a molecular mask.

    Density: gemmi electron form factors, raised-cosine low-pass at 1/resolution (as in the
    DeepRes paper), aliasing-free. Use it to test DeepRes (or any local-resolution method)
    against a known answer."""

    _label = "simulate map"
    _devStatus = BETA
    _possibleOutputs = {"outputVolume": Volume, "outputTruth": Volume,
                        "outputMask": VolumeMask}

    def _defineParams(self, form):
        form.addSection(label="Input")
        form.addParam("inputStructure", params.PointerParam, pointerClass="AtomStruct",
                      label="Atomic structure",
                      help="PDB/mmCIF model. The first model is used; hydrogens and waters "
                           "are dropped. The map is boxed around it and its origin is set so "
                           "that it overlays the model.")
        form.addParam("samplingRate", params.FloatParam, default=1.0,
                      label="Voxel size (Å/px)",
                      help="Sampling of the simulated map. Resolutions must be at least "
                           "2 × this value (Nyquist).")
        form.addParam("resolutionMode", params.EnumParam, default=RES_UNIFORM,
                      choices=["uniform", "per chain"], display=params.EnumParam.DISPLAY_HLIST,
                      label="Resolution",
                      help="uniform: the whole map at one resolution. per chain: each chain "
                           "low-passed at its own resolution and summed; the truth map holds "
                           "the resolution of each voxel's nearest atom.")
        form.addParam("resolution", params.FloatParam, default=4.0,
                      label="Resolution (Å)",
                      help="Resolution of the map (uniform), or of chains not listed below "
                           "(per chain).")
        form.addParam("chainResolutions", params.StringParam, default="",
                      condition="resolutionMode == %d" % RES_PER_CHAIN,
                      label="Chain resolutions",
                      help=f"{CHAIN_SYNTAX} (A:3 is accepted too). Chains not listed get "
                           "the resolution above.")
        form.addParam("noise", params.FloatParam, default=0.08,
                      label="Noise (fraction of max)",
                      help="Gaussian noise SD as a fraction of the noise-free map maximum "
                           "(the DeepRes paper used 0.08). 0 = no noise.")
        form.addParam("bfactor", params.FloatParam, default=0.0,
                      expertLevel=params.LEVEL_ADVANCED, label="Atomic B-factor (Å²)",
                      help="Constant B-factor given to every atom before low-passing.")
        form.addParam("padding", params.FloatParam, default=12.0,
                      expertLevel=params.LEVEL_ADVANCED, label="Padding (Å)",
                      help="Space between the model and the box edge on each side.")
        form.addParam("maskRadius", params.FloatParam, default=3.0,
                      expertLevel=params.LEVEL_ADVANCED, label="Mask radius (Å)",
                      help="Voxels within this distance of an atom form the mask (and carry "
                           "a true resolution).")
        form.addParam("seed", params.IntParam, default=0,
                      expertLevel=params.LEVEL_ADVANCED, label="Random seed",
                      help="Seed of the noise; the same seed gives the same map.")

    # --------------------------- STEPS ---------------------------------------
    def _insertAllSteps(self):
        self._insertFunctionStep(self.simulateStep, self._structurePath(),
                                 self.samplingRate.get(), self._chainText(), needsGPU=False)
        self._insertFunctionStep(self.createOutputStep, needsGPU=False)

    def simulateStep(self, structurePath, sampling, chainText=""):
        from ..backend.simulate import atom_table, load_structure, simulate
        from ..backend.volume import OutputSet, Volume as BVolume, atomic_write_text, write_volume

        st = load_structure(structurePath)
        res = chain_resolutions(atom_table(st)[2], self.resolution.get(), chainText)
        sim = simulate(st, sampling, res, noise=self.noise.get(), bfactor=self.bfactor.get(),
                       padding=self.padding.get(), mask_radius=self.maskRadius.get(),
                       seed=self.seed.get())
        grid = BVolume(sim.map, sampling, sim.origin)
        info = {"structure": structurePath, "sampling": sampling, "origin": list(sim.origin),
                "shape_zyx": list(sim.map.shape), "noise": self.noise.get(),
                "groups": {n: r for n, r in zip(sim.group_names, sim.group_resolutions)},
                "mask_voxels": int(sim.mask.sum())}
        with OutputSet():  # all four files or none
            write_volume(self._getExtraPath(C.SIM_MAP), grid)
            write_volume(self._getExtraPath(C.SIM_TRUTH), grid, sim.truth)
            write_volume(self._getExtraPath(C.SIM_MASK), grid, sim.mask.astype("float32"))
            atomic_write_text(self._getExtraPath(C.SIM_JSON),
                              json.dumps(info, indent=2) + "\n")
        self.info("simulated %s: box %s (z,y,x) at %.3f Å/px, resolutions %s"
                  % (os.path.basename(structurePath), sim.map.shape, sampling, info["groups"]))

    def createOutputStep(self):
        info = self._readInfo()
        sampling, origin = info["sampling"], info["origin"]
        outputs = {key: self._outputVolume(fname, sampling, origin, cls)
                   for key, fname, cls in (("outputVolume", C.SIM_MAP, Volume),
                                           ("outputTruth", C.SIM_TRUTH, Volume),
                                           ("outputMask", C.SIM_MASK, VolumeMask))}
        self._defineOutputs(**outputs)
        for vol in outputs.values():
            self._defineSourceRelation(self.inputStructure, vol)

    # --------------------------- INFO ----------------------------------------
    def _validate(self):
        errors = []
        s = self.samplingRate.get()
        if s is None or s <= 0:
            return ["Voxel size must be positive."]
        values = [self.resolution.get()]
        if self._chainText():
            try:
                values += list(parse_chain_resolutions(self._chainText()).values())
            except InputError as exc:
                return [f"Chain resolutions: {exc}."]
        low = [v for v in values if v < 2 * s]
        if low:
            errors.append(f"Resolution {min(low):g} Å is beyond Nyquist for {s:g} Å/px "
                          f"(must be ≥ {2 * s:g} Å): lower the voxel size or the resolution.")
        if self.noise.get() is None or self.noise.get() < 0:
            errors.append("Noise must be ≥ 0.")
        path = self._structurePath()
        if path and not os.path.isfile(path):
            errors.append(f"Atomic structure file not found: {path}")
        return errors

    def _summary(self):
        if not self.hasAttribute("outputVolume"):
            return ["Simulation not finished yet."]
        info = self._readInfo()
        groups = ", ".join(f"{k}: {v:g} Å" for k, v in info["groups"].items())
        z, y, x = info["shape_zyx"]
        return [f"Simulated map {x}×{y}×{z} px at {info['sampling']:g} Å/px, "
                f"noise {info['noise']:g} × max.", f"Resolutions: {groups}.",
                f"Mask: {info['mask_voxels']} voxels."]

    def _methods(self):
        if not self.hasAttribute("outputVolume"):
            return []
        info = self._readInfo()
        groups = ", ".join(f"{k} {v:g} Å" for k, v in info["groups"].items())
        return [f"A map of {os.path.basename(info['structure'])} was simulated at "
                f"{info['sampling']:g} Å/px with electron scattering factors, low-passed with "
                f"a raised cosine at the target resolution ({groups}) and Gaussian noise of "
                f"SD {info['noise']:g} × the map maximum, as in DeepRes "
                f"[RamirezAportela2019]."]

    def _citations(self):
        return ["RamirezAportela2019"]

    # --------------------------- UTILS ---------------------------------------
    def _structurePath(self):
        return object_path(self.inputStructure.get())

    def _chainText(self):
        """The per-chain resolutions as typed ('' in uniform mode; a str: step argument)."""
        if self.resolutionMode.get() == RES_PER_CHAIN:
            return self.chainResolutions.get() or ""
        return ""

    def _readInfo(self):
        with open(self._getExtraPath(C.SIM_JSON), encoding="utf-8") as fh:
            return json.load(fh)
