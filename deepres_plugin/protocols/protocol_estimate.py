"""ProtDeepResEstimate: a map, or a set of maps, (+ optional mask) → local-resolution map(s) in
Å with DeepRes. A set runs one step per map (several at once with Scipion threads), all writing
into extra/ under a per-map prefix, then one step makes the output set and the summary table."""
import json
import os

import pyworkflow.object as pwobj
import pyworkflow.protocol.params as params
from pwem.objects import AtomStruct, SetOfVolumes, Volume, VolumeMask
from pyworkflow import BETA
from pyworkflow.protocol.constants import STEPS_PARALLEL

from .. import constants as C
from ..backend.uncertainty import DEFAULT_COPIES, MAX_COPIES
from .base import (ProtDeepResBase, clean_path, mrc_header, object_path, read_card,
                   scipion_frame)

SET_PREFIX = "vol{:03d}_"  # extra/ prefix of a set's map with this id: vol003_resolution.mrc
THREADS_HELP = ("Scipion threads: 1 is the main process; N runs N-1 maps of a set at once, in "
                "one process (one TensorFlow; each model loaded once). With 'Use GPU' on, "
                "Scipion also runs at most one map per entry of GPU IDs at a time (0,0: two "
                "on GPU 0); the process computes on the first GPU listed. A single map: "
                "leave 1.")


class ProtDeepResEstimate(ProtDeepResBase):
    """Local resolution of a cryo-EM map with DeepRes (a 3-D convolutional network trained on
    maps simulated from atomic models at known resolution). Works on a single full map, needs
    no half maps. Output: a resolution map in Å on the input grid (0 outside the mask); for a
    set of maps, a set of resolution maps and a summary table."""

    _label = "local resolution"
    _devStatus = BETA
    _possibleOutputs = {"outputResolution": Volume, "outputMask": VolumeMask,
                        "outputAtomStruct": AtomStruct, "outputResolutions": SetOfVolumes,
                        "outputSpread": Volume, "outputOutOfDistribution": VolumeMask}
    stepsExecutionMode = STEPS_PARALLEL  # a set: one step per map, "Scipion threads" at once

    def _defineParams(self, form):
        form.addSection(label="Input")
        form.addParam("inputVolume", params.PointerParam, pointerClass="Volume, SetOfVolumes",
                      label="Map(s)", important=True,
                      help="Full (not half) map, sharpened or not, or a set of maps (one "
                           "step each, several at once with Scipion threads; output: a set "
                           "of resolution maps + extra/summary.csv). Any voxel size: it is "
                           "resampled to the model's sampling internally and the result is "
                           "brought back to the map's grid, voxel size and origin.")
        form.addParam("mask", params.PointerParam, pointerClass="VolumeMask",
                      allowsNull=True, label="Mask (optional)",
                      help="Binary mask of the molecule (values > 0.5 are inside), same box "
                           "and voxel size as the map (a set: as every map). Empty: an "
                           "automatic mask is computed (low-pass + threshold) and given as a "
                           "second output (a set: extra/volNNN_resolution_mask.mrc).")
        form.addParam("inputStructure", params.PointerParam, pointerClass="AtomStruct",
                      allowsNull=True, label="Atomic model (optional)",
                      help="A model fitted to this map (in the map's frame, with the origin "
                           "Scipion has for it). Each residue gets the median local resolution "
                           "of the mask voxels nearest its atoms (within 2.5 Å): output "
                           "outputAtomStruct (median in the B-factor column), a CSV, a plot "
                           "along the sequence and a ChimeraX script. A model that does not "
                           "sit in the map is refused. A single map only.")
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
        form.addParam("uncertainty", params.BooleanParam, default=False,
                      label="Estimate the uncertainty?",
                      help="Yes: the estimate is rerun on flipped/transposed copies of the map; "
                           "outputs a spread map in Å (±1 spread covered the truth for about "
                           "68 % of voxels on simulated maps) and a mask of the voxels that are "
                           "clamped or unlike the training data (out of distribution). Takes "
                           "about as many times as long as there are copies. A set: "
                           "extra/volNNN_resolution_spread.mrc and _ood.mrc.")
        form.addParam("ttaCopies", params.IntParam, default=DEFAULT_COPIES, condition="uncertainty",
                      validators=[params.Range(2, MAX_COPIES, "2 to %d copies" % MAX_COPIES)],
                      expertLevel=params.LEVEL_ADVANCED, label="Copies of the map",
                      help="Copies for the spread (the map itself included), 2 to %d; the "
                           "spread's scale was fitted for each number of copies." % MAX_COPIES)
        self._defineGpuParams(form)
        form.addParallelSection(threads=1, mpi=0)
        form.getParam("numberOfThreads").help.set(THREADS_HELP)

    # --------------------------- STEPS ---------------------------------------
    def _insertAllSteps(self):
        mask, gpu = self.mask.get(), bool(self.useGpu.get())
        args = (clean_path(mask.getFileName()) if mask is not None else "", self._modelArg(),
                bool(self.useCalibration.get()), self.getCopies())
        if not self.isSet():
            vol = self.inputVolume.get()
            self._insertFunctionStep(self.estimateStep, clean_path(vol.getFileName()),
                                     vol.getSamplingRate(), *args, self._structurePath(),
                                     needsGPU=gpu)
            self._insertFunctionStep(self.createOutputStep, needsGPU=False)
            return
        steps = [self._insertFunctionStep(self.estimateStep, path, sampling, *args, "",
                                          SET_PREFIX.format(objId), prerequisites=[],
                                          needsGPU=gpu)
                 for objId, path, sampling, _ in self.getMaps()]
        self._insertFunctionStep(self.createOutputStep, prerequisites=steps, needsGPU=False)

    def estimateStep(self, mapPath, sampling, maskPath, model, calibrate=True, copies=0,
                     atomsPath="", prefix=""):
        """One map → extra/<prefix>resolution.mrc … (``prefix`` '' for a single map)."""
        from ..backend import estimate

        self._setDevices()
        mapPath = self._withSampling(mapPath, sampling, prefix + C.INPUT_MAP, "map",
                                     self._inputGrid()[1] if atomsPath else None)
        maskPath = self._withSampling(maskPath, sampling, prefix + C.INPUT_MASK, "mask")
        extra = lambda name: self._getExtraPath(prefix + name)  # noqa: E731
        with scipion_frame():
            res = estimate.run(mapPath, extra(C.ESTIMATE_MAP), mask_path=maskPath or None,
                               model=model, histogram=extra(C.ESTIMATE_HISTOGRAM),
                               slices=extra(C.ESTIMATE_SLICES),
                               chimerax=extra(C.ESTIMATE_CHIMERAX), progress=False,
                               calibrate=calibrate, atoms=atomsPath or None,
                               uncertainty=copies)
        s, who = res.stats, (f"map {prefix.rstrip('_')} ({os.path.basename(mapPath)}): "
                             if prefix else "")
        self.info("%smodel %s: median %.2f Å, 5-95%% %.2f-%.2f Å over %d voxels"
                  % (who, res.model, s["median"], s["p5"], s["p95"], s["n_voxels"]))
        if res.uncertainty:
            u, o = res.uncertainty.summary, res.uncertainty.ood_summary
            self.info("%sspread (%d copies): median %.2f Å; %d voxels (%.1f%%) out of "
                      "distribution" % (who, u["copies"], u["spread"]["median"], o["voxels"],
                                        100 * o["fraction"]))
        for w in res.warnings:
            self.warning(who + w)

    def createOutputStep(self):
        if self.isSet():
            return self._createSetOutput()
        sampling, origin = self._inputGrid()
        out = self._outputVolume(C.ESTIMATE_MAP, sampling, origin)
        stats = self.getStats()
        for key in ("median", "mean", "p5", "p95"):
            setattr(out, "_deepres_" + key, pwobj.Float(stats.get(key)))
        outputs = {"outputResolution": out}
        if self.mask.get() is None and os.path.isfile(self._getExtraPath(C.ESTIMATE_AUTOMASK)):
            outputs["outputMask"] = self._outputVolume(C.ESTIMATE_AUTOMASK, sampling, origin,
                                                       VolumeMask)
        if self.getCopies():
            outputs["outputSpread"] = self._outputVolume(C.ESTIMATE_SPREAD, sampling, origin)
            outputs["outputOutOfDistribution"] = self._outputVolume(C.ESTIMATE_OOD, sampling,
                                                                    origin, VolumeMask)
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

    def _createSetOutput(self):
        """outputResolutions: one resolution map per input map (same id, voxel size and
        origin; median etc. as attributes) + extra/summary.csv/json (backend/batch.py)."""
        from ..backend.batch import write_summary

        out = self._createSetOfVolumes()
        out.setSamplingRate(self.inputVolume.get().getSamplingRate())
        rows = []
        for index, (objId, path, sampling, origin) in enumerate(self.getMaps(), 1):
            prefix = SET_PREFIX.format(objId)
            vol = self._outputVolume(prefix + C.ESTIMATE_MAP, sampling, origin)
            vol.setObjId(objId)
            d = self._readJson(prefix)
            for key in ("median", "mean", "p5", "p95"):
                setattr(vol, "_deepres_" + key, pwobj.Float(d["stats"][key]))
            vol._deepres_input = pwobj.String(path)
            out.append(vol)
            rows.append(self._summaryRow(index, prefix, path, d))
        write_summary(rows, self._getExtraPath())
        self._defineOutputs(outputResolutions=out)
        self._defineSourceRelation(self.inputVolume, out)
        if self.mask.get() is not None:
            self._defineSourceRelation(self.mask, out)
        if self.modelChoice.get() == C.MODEL_TRAINED:
            self._defineSourceRelation(self.trainedModel, out)

    def _summaryRow(self, index, prefix, path, d):
        """A row of backend/batch.py's summary table from a map's resolution JSON."""
        from ..backend.batch import measured, run_seconds
        from ..backend.volume import read_volume

        res = read_volume(d["output"], "resolution map").data
        return dict(index=index, map=path, name=prefix.rstrip("_"), status="ok",
                    **measured(d, res[res > 0]),
                    seconds=run_seconds(d.get("timings", {})), mask=d["mask"],
                    output=d["output"], error="")

    # --------------------------- INFO ----------------------------------------
    def _validate(self):
        if self.inputVolume.get() is None:
            return []  # pyworkflow already reports the empty pointer
        errors, maps, choice = [], self.getMaps(), self.modelChoice.get()
        if not maps:
            return ["The set of maps is empty."]
        if choice == C.MODEL_TRAINED:
            model = self.trainedModel.get()
            if model is None:
                return ["Choose a trained model (output of 'DeepRes train') or another model."]
            if not model.exists():
                return [f"Trained model files missing: {model.getFileName()} / "
                        f"{model.getCardFile()}."]
        card = read_card(self._modelArg())
        if card is None:
            errors.append(f"Model card of '{self._modelArg()}' not found (shipped models: "
                          f".json + .weights.h5 in ${C.DEEPRES_WEIGHTS_VAR} or "
                          f"{C.WEIGHTS_DIR}): the plugin installation is incomplete.")
        mask = self.mask.get()
        mhdr = mrc_header(clean_path(mask.getFileName())) if mask is not None else None
        if mask is not None and mhdr is None:
            errors.append(f"Cannot read the mask {mask.getFileName()} as MRC.")
        for objId, path, s, _ in maps:
            who = f"Map {objId} ({os.path.basename(path)}): " if self.isSet() else ""
            errors += [who + e for e in self._mapErrors(path, s, card, mask, mhdr)]
        if self.isSet() and self._structurePath():
            errors.append("An atomic model can be given with a single map only.")
        if self._structurePath() and not os.path.isfile(self._structurePath()):
            errors.append(f"Atomic model file missing: {self._structurePath()}.")
        return errors

    def _mapErrors(self, path, s, card, mask, mhdr):
        """What is wrong with one map (MRC file ``path``, Scipion voxel size ``s``)."""
        hdr = mrc_header(path)
        if hdr is None:
            return [f"Cannot read the map {path} as MRC."]
        errors = []
        if len(hdr[0]) != 3 or min(hdr[0]) < 2:
            errors.append(f"The map is not a 3-D volume (shape {hdr[0]}).")
        if self.modelChoice.get() == C.MODEL_HIGH and s > C.HIGH_MAX_SAMPLING:
            errors.append(f"The 'high' model needs a map sampled at ≤ {C.HIGH_MAX_SAMPLING} "
                          f"Å/px; this map has {s:.3f} Å/px. Use 'auto' or 'standard'.")
        if card is not None and 2 * s >= float(card["res_max"]):
            errors.append(f"Voxel size {s:.3f} Å/px is too coarse for model "
                          f"'{card['name']}': its Nyquist limit {2 * s:.2f} Å is beyond the "
                          f"model's range ({card['res_min']:g}-{card['res_max']:g} Å).")
        if mhdr is not None and mhdr[0] != hdr[0]:
            errors.append(f"Mask box {mhdr[0][::-1]} differs from the map box "
                          f"{hdr[0][::-1]} (x, y, z): resize one of them.")
        if mask is not None and mask.getSamplingRate() and \
                abs(mask.getSamplingRate() - s) > 1e-3 * s:
            errors.append(f"Mask voxel size {mask.getSamplingRate():.4f} Å differs from "
                          f"the map's {s:.4f} Å.")
        return errors

    def _warnings(self):
        warns = []
        if self.mask.get() is None:
            where = ("extra/volNNN_" if self.isSet() else "") + C.ESTIMATE_AUTOMASK
            warns.append("No mask given: an automatic mask will be computed and output "
                         f"({where}). Check it with the viewer.")
        card, vol = read_card(self._modelArg()), self.inputVolume.get()
        if card and vol is not None and 2 * vol.getSamplingRate() > float(card["res_min"]):
            warns.append(f"Resolutions below {2 * vol.getSamplingRate():.2f} Å (Nyquist of "
                         "this map) cannot be measured: values are clamped there.")
        return warns

    def _summary(self):
        if self.hasAttribute("outputResolutions"):
            return self._setSummary()
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
        if "uncertainty" in d and "ood" in d:
            u, o = d["uncertainty"], d["ood"]
            lines.append(f"Spread ({u['copies']} copies, outputSpread): median "
                         f"{u['spread']['median']:.2f} Å; {o['voxels']} voxels "
                         f"({100 * o['fraction']:.1f}%) out of distribution "
                         "(outputOutOfDistribution).")
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

    def _setSummary(self):
        rows = self.getSummaryRows()
        models = sorted({os.path.basename(str(r["model"])) for r in rows})
        lines = [f"{len(rows)} maps, model {', '.join(models)}; table: extra/summary.csv."]
        lines += [f"{r['name']} ({os.path.basename(r['map'])}): median {r['median']:.2f} Å, "
                  f"5-95% {r['p5']:.2f}-{r['p95']:.2f} Å" for r in rows[:20]]
        return lines + (["…"] if len(rows) > 20 else [])

    def _methods(self):
        if self.hasAttribute("outputResolutions"):
            meds = [r["median"] for r in self.getSummaryRows()]
            return [f"Local resolution of {len(meds)} maps was estimated with DeepRes "
                    f"[RamirezAportela2019]; median per map {min(meds):.2f}-{max(meds):.2f} "
                    "Å inside the mask."] if meds else []
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
    def isSet(self):
        """True when the input is a set of maps."""
        return isinstance(self.inputVolume.get(), SetOfVolumes)

    def getMaps(self):
        """[(id, MRC path, voxel size, origin x, y, z Å)] of the input map(s), Scipion's
        values; a set in id order."""
        obj = self.inputVolume.get()
        items = obj.iterItems(orderBy="id") if self.isSet() else [obj]
        default = obj.getSamplingRate()
        return [(v.getObjId(), clean_path(v.getFileName()), v.getSamplingRate() or default,
                 [float(x) for x in v.getOrigin(force=True).getShifts()]) for v in items]

    def getCopies(self):
        """Copies of the map for the uncertainty, 0 when it is off."""
        return int(self.ttaCopies.get()) if self.uncertainty.get() else 0

    def getStats(self, prefix=""):
        return self._readJson(prefix).get("stats", {})

    def getSummaryRows(self):
        """The rows of extra/summary.json (a set run), [] before it is written."""
        from ..backend.batch import summary_paths

        try:
            with open(summary_paths(self._getExtraPath())[1], encoding="utf-8") as fh:
                return json.load(fh)["rows"]
        except (OSError, ValueError, KeyError):
            return []

    def getResolutionFile(self):
        return self._getExtraPath(C.ESTIMATE_MAP)

    def getResidueModelFile(self):
        """extra/resolution_residues.pdb or .cif: the model annotated per residue."""
        from ..backend.residues import output_paths

        return output_paths(self._getExtraPath(C.ESTIMATE_MAP), self._structurePath())["model"]

    def _structurePath(self):
        return object_path(self.inputStructure.get())

    def _readJson(self, prefix=""):
        try:
            with open(self._getExtraPath(prefix + C.ESTIMATE_JSON), encoding="utf-8") as fh:
                return json.load(fh)
        except (OSError, ValueError):
            return {}
