"""ProtDeepResEstimate: a map (+ optional mask) → local-resolution map (Å) with DeepRes."""
import json
import os

import pyworkflow.object as pwobj
import pyworkflow.protocol.params as params
from pwem.objects import AtomStruct, Volume, VolumeMask
from pyworkflow import BETA

from .. import constants as C
from .base import ProtDeepResBase, clean_path, mrc_header, object_path, read_card


class ProtDeepResEstimate(ProtDeepResBase):
    """Local resolution of a cryo-EM map with DeepRes (a 3-D convolutional network trained on
    maps simulated from atomic models at known resolution). Works on a single full map, needs
    no half maps. Output: a resolution map in Å on the input grid (0 outside the mask)."""

    _label = "local resolution"
    _devStatus = BETA
    _possibleOutputs = {"outputResolution": Volume, "outputMask": VolumeMask,
                        "outputAtomStruct": AtomStruct}

    def _defineParams(self, form):
        form.addSection(label="Input")
        form.addParam("inputVolume", params.PointerParam, pointerClass="Volume",
                      label="Map", important=True,
                      help="Full (not half) map, sharpened or not. Any voxel size: it is "
                           "resampled to the model's sampling internally and the result is "
                           "brought back to this map's grid, voxel size and origin.")
        form.addParam("mask", params.PointerParam, pointerClass="VolumeMask",
                      allowsNull=True, label="Mask (optional)",
                      help="Binary mask of the molecule (values > 0.5 are inside), same box "
                           "and voxel size as the map. Empty: an automatic mask is computed "
                           "(low-pass + threshold) and given as a second output.")
        form.addParam("inputStructure", params.PointerParam, pointerClass="AtomStruct",
                      allowsNull=True, label="Atomic model (optional)",
                      help="A model fitted to this map (in the map's frame, with the origin "
                           "Scipion has for it). Each residue gets the median local resolution "
                           "of the mask voxels nearest its atoms (within 2.5 Å): output "
                           "outputAtomStruct (median in the B-factor column), a CSV, a plot "
                           "along the sequence and a ChimeraX script. A model that does not "
                           "sit in the map is refused.")
        self._defineModelParams(
            form, "Model",
            "auto: 'standard', fused voxel by voxel with 'coarse' where both models read worse "
            "than about 7-10 Å, and with 'high' where it reads better than 4.5-5.5 Å when the map is "
            "sampled at ≤ %.2f Å/px and the standard median is below 3 Å, or when over 30 %% "
            "of the voxels sit on the standard model's 2.5 Å floor.\nstandard: 1 Å/px model, "
            "resolutions ≈ 2.5-13 Å.\nhigh: 0.5 Å/px model for high-resolution maps (voxel "
            "size ≤ %.2f Å/px), 1.5-6 Å.\ncoarse: 2 Å/px model, 5-25 Å (low-resolution maps, "
            "subtomogram averages).\ntrained model: the output of a 'DeepRes train' run."
            % (C.HIGH_MAX_SAMPLING, C.HIGH_MAX_SAMPLING))
        form.addParam("useCalibration", params.BooleanParam, default=True,
                      expertLevel=params.LEVEL_ADVANCED, label="Apply the model's calibration?",
                      help="Yes: the answer is calibrated so that a region of true resolution "
                           "t reads t (median), fitted on simulated maps when the model was "
                           "made. No: the network's raw answer, which reads noisy "
                           "low-resolution regions up to ~1 Å too bad.")
        self._defineGpuParams(form)

    # --------------------------- STEPS ---------------------------------------
    def _insertAllSteps(self):
        vol, mask = self.inputVolume.get(), self.mask.get()
        self._insertFunctionStep(self.estimateStep, clean_path(vol.getFileName()),
                                 vol.getSamplingRate(),
                                 clean_path(mask.getFileName()) if mask is not None else "",
                                 self._modelArg(), bool(self.useCalibration.get()),
                                 self._structurePath(), needsGPU=bool(self.useGpu.get()))
        self._insertFunctionStep(self.createOutputStep, needsGPU=False)

    def estimateStep(self, mapPath, sampling, maskPath, model, calibrate=True, atomsPath=""):
        from ..backend import estimate
        from ..backend.volume import InputError

        self._setDevices()
        mapPath = self._withSampling(mapPath, sampling, C.INPUT_MAP, "map",
                                     self._inputGrid()[1] if atomsPath else None)
        maskPath = self._withSampling(maskPath, sampling, C.INPUT_MASK, "mask")
        try:
            res = estimate.run(mapPath, self._getExtraPath(C.ESTIMATE_MAP),
                               mask_path=maskPath or None, model=model,
                               histogram=self._getExtraPath(C.ESTIMATE_HISTOGRAM),
                               slices=self._getExtraPath(C.ESTIMATE_SLICES),
                               chimerax=self._getExtraPath(C.ESTIMATE_CHIMERAX), progress=False,
                               calibrate=calibrate, atoms=atomsPath or None)
        except InputError as exc:
            if atomsPath and "in the map's frame" in str(exc):
                raise InputError(f"{exc} In Scipion the map's frame is its origin as set at "
                                 "import ('Set origin of coordinates').") from None
            raise
        s = res.stats
        self.info("model %s: median %.2f Å, 5-95%% %.2f-%.2f Å over %d voxels"
                  % (res.model, s["median"], s["p5"], s["p95"], s["n_voxels"]))
        for w in res.warnings:
            self.warning(w)

    def createOutputStep(self):
        sampling, origin = self._inputGrid()
        out = self._outputVolume(C.ESTIMATE_MAP, sampling, origin)
        stats = self.getStats()
        for key in ("median", "mean", "p5", "p95"):
            setattr(out, "_deepres_" + key, pwobj.Float(stats.get(key)))
        outputs = {"outputResolution": out}
        if self.mask.get() is None and os.path.isfile(self._getExtraPath(C.ESTIMATE_AUTOMASK)):
            outputs["outputMask"] = self._outputVolume(C.ESTIMATE_AUTOMASK, sampling, origin,
                                                       VolumeMask)
        self._defineOutputs(**outputs)
        for obj in outputs.values():
            self._defineSourceRelation(self.inputVolume, obj)
        if self.mask.get() is not None:
            self._defineSourceRelation(self.mask, out)
        if self.modelChoice.get() == C.MODEL_TRAINED:
            self._defineSourceRelation(self.trainedModel, out)
        if self.inputStructure.get() is not None:
            atoms = AtomStruct(filename=self.getResidueModelFile())
            self._defineOutputs(outputAtomStruct=atoms)
            self._defineSourceRelation(self.inputStructure, atoms)
            self._defineSourceRelation(self.inputVolume, atoms)

    # --------------------------- INFO ----------------------------------------
    def _validate(self):
        vol = self.inputVolume.get()
        if vol is None:
            return []  # pyworkflow already reports the empty pointer
        errors, s = [], vol.getSamplingRate()
        hdr = mrc_header(clean_path(vol.getFileName()))
        if hdr is None:
            return [f"Cannot read the map {vol.getFileName()} as MRC."]
        if len(hdr[0]) != 3 or min(hdr[0]) < 2:
            errors.append(f"The map is not a 3-D volume (shape {hdr[0]}).")
        choice = self.modelChoice.get()
        if choice == C.MODEL_TRAINED:
            model = self.trainedModel.get()
            if model is None:
                return errors + ["Choose a trained model (output of 'DeepRes train') or "
                                 "another model."]
            if not model.exists():
                return errors + [f"Trained model files missing: {model.getFileName()} / "
                                 f"{model.getCardFile()}."]
        elif choice == C.MODEL_HIGH and s > C.HIGH_MAX_SAMPLING:
            errors.append(f"The 'high' model needs a map sampled at ≤ {C.HIGH_MAX_SAMPLING} "
                          f"Å/px; this map has {s:.3f} Å/px. Use 'auto' or 'standard'.")
        card = read_card(self._modelArg())
        if card is None:
            errors.append(f"Model card of '{self._modelArg()}' not found (shipped models: "
                          f".json + .weights.h5 in ${C.DEEPRES_WEIGHTS_VAR} or "
                          f"{C.WEIGHTS_DIR}): the plugin installation is incomplete.")
        elif 2 * s >= float(card["res_max"]):
            errors.append(f"Voxel size {s:.3f} Å/px is too coarse for model "
                          f"'{card['name']}': its Nyquist limit {2 * s:.2f} Å is beyond the "
                          f"model's range ({card['res_min']:g}-{card['res_max']:g} Å).")
        mask = self.mask.get()
        if mask is not None:
            mhdr = mrc_header(clean_path(mask.getFileName()))
            if mhdr is None:
                errors.append(f"Cannot read the mask {mask.getFileName()} as MRC.")
            elif mhdr[0] != hdr[0]:
                errors.append(f"Mask box {mhdr[0][::-1]} differs from the map box "
                              f"{hdr[0][::-1]} (x, y, z): resize one of them.")
            if mask.getSamplingRate() and abs(mask.getSamplingRate() - s) > 1e-3 * s:
                errors.append(f"Mask voxel size {mask.getSamplingRate():.4f} Å differs from "
                              f"the map's {s:.4f} Å.")
        if self._structurePath() and not os.path.isfile(self._structurePath()):
            errors.append(f"Atomic model file missing: {self._structurePath()}.")
        return errors

    def _warnings(self):
        warns = []
        if self.mask.get() is None:
            warns.append("No mask given: an automatic mask will be computed and output "
                         f"({C.ESTIMATE_AUTOMASK}). Check it with the viewer.")
        card, vol = read_card(self._modelArg()), self.inputVolume.get()
        if card and vol is not None and 2 * vol.getSamplingRate() > float(card["res_min"]):
            warns.append(f"Resolutions below {2 * vol.getSamplingRate():.2f} Å (Nyquist of "
                         "this map) cannot be measured: values are clamped there.")
        return warns

    def _summary(self):
        if not self.hasAttribute("outputResolution"):
            return ["Estimation not finished yet."]
        d = self._readJson()
        s = d.get("stats", {})
        lines = [f"Model: {os.path.basename(str(d.get('model', '?')))}"
                 f"{' (calibrated)' if d.get('calibrated') else ''}.",
                 f"Median resolution {s['median']:.2f} Å (mean {s['mean']:.2f} ± "
                 f"{s['sd']:.2f} Å); percentiles 5/25/75/95: {s['p5']:.2f} / {s['p25']:.2f} / "
                 f"{s['p75']:.2f} / {s['p95']:.2f} Å over {s['n_voxels']} voxels."]
        if self.hasAttribute("outputMask"):
            lines.append("Automatic mask used (see outputMask).")
        if self.hasAttribute("outputAtomStruct"):
            lines.append(self._residueSummary())
        lines += [f"Warning: {w}" for w in d.get("warnings", [])]
        return lines

    def _residueSummary(self):
        import numpy as np

        from ..backend.residues import read_csv
        from ..backend.volume import InputError

        try:
            med = read_csv(self._getExtraPath(C.ESTIMATE_RESIDUE_CSV))["median"]
        except InputError as exc:
            return str(exc)
        ok = med[np.isfinite(med)]
        text = f"Per residue ({med.size} residues, {med.size - ok.size} without mask voxel)"
        if ok.size:
            text += (f": median {np.median(ok):.2f} Å, 5-95% {np.percentile(ok, 5):.2f}-"
                     f"{np.percentile(ok, 95):.2f} Å")
        return text + " (outputAtomStruct: median in the B-factor column)."

    def _methods(self):
        if not self.hasAttribute("outputResolution"):
            return []
        d, vol = self._readJson(), self.inputVolume.get()
        s = d.get("stats", {})
        return [f"Local resolution of {vol.getNameId()} was estimated with DeepRes "
                f"[RamirezAportela2019] (model {os.path.basename(str(d.get('model')))}); "
                f"median {s.get('median', 0):.2f} Å, 5th-95th percentile "
                f"{s.get('p5', 0):.2f}-{s.get('p95', 0):.2f} Å inside the mask."]

    def _citations(self):
        return ["RamirezAportela2019"]

    # --------------------------- UTILS ---------------------------------------
    def getStats(self):
        return self._readJson().get("stats", {})

    def getResolutionFile(self):
        return self._getExtraPath(C.ESTIMATE_MAP)

    def getResidueModelFile(self):
        """extra/resolution_residues.pdb or .cif: the model annotated per residue."""
        from ..backend.residues import output_paths

        return output_paths(self._getExtraPath(C.ESTIMATE_MAP), self._structurePath())["model"]

    def _structurePath(self):
        return object_path(self.inputStructure.get())

    def _readJson(self):
        try:
            with open(self._getExtraPath(C.ESTIMATE_JSON), encoding="utf-8") as fh:
                return json.load(fh)
        except (OSError, ValueError):
            return {}
