"""ProtDeepResSharpening: map + half maps and/or atomic model → B-factor sweep, DeepRes vs local
FSC (of the half maps, or of the map vs the model), recommended B and the map sharpened with it."""
import json
import os

import pyworkflow.object as pwobj
import pyworkflow.protocol.params as params
from pwem.objects import Volume
from pyworkflow import BETA

from .. import constants as C
from .base import (ProtDeepResBase, clean_path, mrc_header, object_path, read_card,
                   scipion_frame)

HALVES_FROM_MAP, HALVES_FROM_VOLUMES, HALVES_NONE = 0, 1, 2


class ProtDeepResSharpening(ProtDeepResBase):
    """Oversharpening check (DeepRes paper, §3.4): the map is sharpened with each B-factor of
    a range and DeepRes measures the local resolution of every sharpened map; a half-map local
    FSC (an SNR-based reference that sharpening cannot change) is computed once. The
    recommended B is where DeepRes's 20th percentile meets the local FSC's 20th percentile:
    sharper than that shows detail that the half maps do not support. With an atomic model,
    the model–map correlation per B is added; without half maps, the local FSC of the map
    against the model's density (threshold 0.5 = half-map 0.143) is the reference. Output:
    the map sharpened with the recommended B (on the input grid), the local-FSC map, and a
    table/plot in extra/."""

    _label = "sharpening check"
    _devStatus = BETA
    _possibleOutputs = {"outputVolume": Volume, "outputLocalFSC": Volume}

    def _defineParams(self, form):
        form.addSection(label="Input")
        form.addParam("inputVolume", params.PointerParam, pointerClass="Volume",
                      label="Map", important=True,
                      help="Full, unsharpened map (the average of the two half maps).")
        form.addParam("halvesFrom", params.EnumParam, default=HALVES_FROM_MAP,
                      choices=["from the map", "two volumes", "none (atomic model)"],
                      display=params.EnumParam.DISPLAY_HLIST, label="Half maps",
                      help="from the map: the half maps attached to the map (e.g. imported "
                           "with 'Set half maps'); if it has none, the atomic model is the "
                           "reference. two volumes: choose them below. none: the local FSC of "
                           "the map against the atomic model is the reference.")
        form.addParam("half1", params.PointerParam, pointerClass="Volume", allowsNull=True,
                      condition="halvesFrom == %d" % HALVES_FROM_VOLUMES, label="Half map 1",
                      help="First independent half map (same box and voxel size as the map).")
        form.addParam("half2", params.PointerParam, pointerClass="Volume", allowsNull=True,
                      condition="halvesFrom == %d" % HALVES_FROM_VOLUMES, label="Half map 2",
                      help="Second independent half map (same box and voxel size as the map).")
        form.addParam("mask", params.PointerParam, pointerClass="VolumeMask", allowsNull=True,
                      label="Mask (optional)",
                      help="Binary mask of the molecule, same box as the map; empty: an "
                           "automatic mask.")
        form.addParam("inputStructure", params.PointerParam, pointerClass="AtomStruct",
                      allowsNull=True, label="Atomic model (needed without half maps)",
                      help="A model fitted to the map (in its frame: the origin set at "
                           "import): its simulated density (low-passed at the median local FSC) "
                           "is correlated with each sharpened map. Without half maps it is the "
                           "reference: local FSC of the map vs the model's density (to "
                           "Nyquist, every atom at B = 0).")
        form.addParam("bRange", params.StringParam, default="-300:0:20",
                      label="B-factors (Å²)",
                      help="START:STOP:STEP (STOP included) or a list such as -100,-60,0. "
                           "Negative B sharpens.")
        self._defineModelParams(
            form, "DeepRes model", "As in 'local resolution'; 'auto' is resolved once, on the "
            "least sharpened map, and kept for the whole sweep.")
        form.addParam("lowpass", params.FloatParam, default=-1.0,
                      expertLevel=params.LEVEL_ADVANCED, label="Low-pass (Å)",
                      help="Applied together with every B. -1: the global half-map FSC "
                           "(0.143) resolution (as relion_postprocess); 0: none.")
        form.addParam("box", params.FloatParam, default=0.0, expertLevel=params.LEVEL_ADVANCED,
                      label="Local-FSC box (Å)",
                      help="0: 7 × the global FSC resolution (at least 16 voxels).")
        form.addParam("threshold", params.FloatParam, default=0.5,
                      expertLevel=params.LEVEL_ADVANCED, label="Local-FSC threshold",
                      help="0.5 is the usual choice for half maps (0.143 reads better "
                           "values); against an atomic model 0.5 is the half-map 0.143 "
                           "criterion (the model is noise-free).")
        self._defineGpuParams(form)

    # --------------------------- STEPS ---------------------------------------
    def _insertAllSteps(self):
        vol, mask, st = self.inputVolume.get(), self.mask.get(), self.inputStructure.get()
        h1, h2 = self._halfPaths()
        self._insertFunctionStep(
            self.sweepStep, clean_path(vol.getFileName()), vol.getSamplingRate(), h1, h2,
            clean_path(mask.getFileName()) if mask is not None else "", object_path(st),
            self.bRange.get(), self._modelArg(), needsGPU=bool(self.useGpu.get()))
        self._insertFunctionStep(self.createOutputStep, needsGPU=False)

    def sweepStep(self, mapPath, sampling, half1, half2, maskPath, structPath, bRange, model):
        from ..backend import sharpening

        self._setDevices()
        origin = self._inputGrid()[1] if structPath else None  # the model is in Scipion's frame
        paths = [self._withSampling(p, sampling, name, what, o) for p, name, what, o in
                 ((mapPath, C.INPUT_MAP, "map", origin),
                  (half1, C.INPUT_HALF.format(1), "half map 1", None),
                  (half2, C.INPUT_HALF.format(2), "half map 2", None),
                  (maskPath, C.INPUT_MASK, "mask", None))]
        lowpass = self.lowpass.get()
        with scipion_frame():
            res = sharpening.run(paths[0], paths[1] or None, paths[2] or None,
                                 self._getExtraPath(), paths[3] or None, structPath or None,
                                 bRange, model, self.box.get() or None, self.threshold.get(),
                                 None if lowpass is None or lowpass < 0 else lowpass)
        self.info(res.message)
        for w in sorted(set(res.warnings)):
            self.warning(w)

    def createOutputStep(self):
        from ..backend.sharpening import FILES

        sampling, origin = self._inputGrid()
        d = self.getResult()
        outputs = {key: self._outputVolume(FILES[name], sampling, origin)
                   for key, name in (("outputVolume", "sharpened"),
                                     ("outputLocalFSC", "localfsc"))}
        outputs["outputVolume"]._deepres_bfactor = pwobj.Float(d.get("best_b"))
        outputs["outputLocalFSC"]._deepres_p20 = pwobj.Float(d.get("localfsc", {}).get("p20"))
        self._defineOutputs(**outputs)
        for obj in outputs.values():
            self._defineSourceRelation(self.inputVolume, obj)
        if self.inputStructure.get() is not None:
            self._defineSourceRelation(self.inputStructure, outputs["outputVolume"])

    # --------------------------- INFO ----------------------------------------
    def _validate(self):
        from ..backend.sharpening import parse_range
        from ..backend.volume import InputError

        vol = self.inputVolume.get()
        if vol is None:
            return []
        errors = []
        try:
            parse_range(self.bRange.get())
        except InputError as exc:
            errors.append(f"B-factors: {exc}.")
        hdr = mrc_header(clean_path(vol.getFileName()))
        if hdr is None:
            return errors + [f"Cannot read the map {vol.getFileName()} as MRC."]
        h1, h2 = self._halfPaths()
        if bool(h1) != bool(h2):
            errors.append("Only one half map given: give both, or none and an atomic model.")
        elif not h1 and self.inputStructure.get() is None:
            errors.append("The map has no half maps: import it with 'Set half maps', choose "
                          "'two volumes' and give both half maps, or give an atomic model "
                          "fitted to the map (model-based local FSC).")
        for name, path in (("Half map 1", h1), ("Half map 2", h2),
                           ("Mask", clean_path(self.mask.get().getFileName())
                            if self.mask.get() is not None else "")):
            if path:
                other = mrc_header(path)
                if other is None:
                    errors.append(f"{name}: cannot read {path} as MRC.")
                elif other[0] != hdr[0]:
                    errors.append(f"{name} box {other[0][::-1]} differs from the map box "
                                  f"{hdr[0][::-1]} (x, y, z).")
        if self.modelChoice.get() == C.MODEL_TRAINED and self.trainedModel.get() is None:
            errors.append("Choose a trained model (output of 'DeepRes train').")
        elif read_card(self._modelArg()) is None:
            errors.append(f"Model card of '{self._modelArg()}' not found: the plugin "
                          "installation is incomplete.")
        if self.threshold.get() is None or not 0 < self.threshold.get() < 1:
            errors.append("The local-FSC threshold must be between 0 and 1.")
        return errors

    def _warnings(self):
        out = []
        if self.mask.get() is None:
            out.append("No mask given: an automatic mask is computed (extra/mask.mrc).")
        if not any(self._halfPaths()) and self.inputStructure.get() is not None:
            out.append("No half maps: the reference is the local FSC of the map against the "
                       "atomic model.")
        return out

    def _summary(self):
        if not self.hasAttribute("outputVolume"):
            return ["Sweep not finished yet."]
        d = self.getResult()
        vs = ", map vs atomic model" if d.get("reference") == "model" else ""
        lines = [d.get("message", "") + ".",
                 f"Local FSC ({d.get('threshold', 0.5):g}{vs}) 20th percentile "
                 f"{d['localfsc']['p20']:.2f} Å, median {d['localfsc']['p50']:.2f} Å "
                 f"({d.get('localfsc_box', 0):.0f} Å boxes).",
                 f"Output map sharpened with B = {d['best_b']:.1f} Å²"
                 + ("" if d.get("met") else " (closest approach, no crossing)") + "."]
        if d.get("cc"):
            i = max(range(len(d["cc"])), key=lambda k: d["cc"][k])
            lines.append(f"Model–map CC is highest ({d['cc'][i]:.3f}) at B = "
                         f"{d['bfactors'][i]:g} Å².")
        return lines

    def _methods(self):
        if not self.hasAttribute("outputVolume"):
            return []
        d = self.getResult()
        ref = "the map vs the atomic model" if d.get("reference") == "model" else "the half maps"
        return [f"The map {self.inputVolume.get().getNameId()} was sharpened with B-factors "
                f"{d['b_range']} Å² and its local resolution measured with DeepRes "
                f"[RamirezAportela2019] (model {os.path.basename(str(d['model']))}); the "
                f"20th percentile was compared with that of a local FSC of {ref} "
                f"(threshold {d['threshold']:g}): {d['message']}."]

    def _citations(self):
        return ["RamirezAportela2019"]

    # --------------------------- UTILS ---------------------------------------
    def getResult(self):
        """The sweep's JSON (bfactors, deepres/localfsc percentiles, best_b, cc, files)."""
        from ..backend.sharpening import FILES

        try:
            with open(self._getExtraPath(FILES["json"]), encoding="utf-8") as fh:
                return json.load(fh)
        except (OSError, ValueError):
            return {}

    def _halfPaths(self):
        """Absolute paths of the two half maps ('' where missing)."""
        if self.halvesFrom.get() == HALVES_NONE:
            paths = ["", ""]
        elif self.halvesFrom.get() == HALVES_FROM_VOLUMES:
            objs = [self.half1.get(), self.half2.get()]
            paths = [clean_path(o.getFileName()) if o is not None else "" for o in objs]
        else:
            vol = self.inputVolume.get()
            paths = ([clean_path(p) for p in vol.getHalfMaps(asList=True)]
                     if vol is not None and vol.hasHalfMaps() else [])
            paths = (paths + ["", ""])[:2]
        return [os.path.abspath(p) if p else "" for p in paths]
