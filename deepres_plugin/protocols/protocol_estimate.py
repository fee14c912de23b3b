"""ProtDeepResEstimate: a map (+ optional mask) → local-resolution map (Å) with DeepRes."""
import json
import os

import pyworkflow.object as pwobj
import pyworkflow.protocol.params as params
from pwem.objects import Volume, VolumeMask
from pwem.protocols import EMProtocol
from pyworkflow import BETA

from .. import constants as C
from .protocol_simulate import make_origin


def clean_path(fn):
    """Scipion file names may carry a ':mrc' format suffix; the backend wants the path."""
    fn = fn or ""
    return fn[:-4] if fn.endswith(":mrc") else fn


def mrc_header(path):
    """(shape z,y,x, voxel size Å) of an MRC file, memory-mapped; None if unreadable."""
    import mrcfile

    try:
        with mrcfile.mmap(path, mode="r", permissive=True) as mrc:
            return tuple(int(v) for v in mrc.data.shape), float(mrc.voxel_size.x)
    except Exception:  # unreadable / not MRC: the backend reports it properly at run time
        return None


def read_card(name_or_path):
    """The JSON model card of a shipped model name ('auto' → standard's) or a trained
    ``<base>``; None if missing."""
    if name_or_path == C.MODEL_CHOICES[C.MODEL_AUTO]:
        name_or_path = C.SHIPPED_MODELS[0]
    base = os.path.join(C.WEIGHTS_DIR, name_or_path) if name_or_path in C.SHIPPED_MODELS \
        else name_or_path
    try:
        with open(base + ".json", encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


class ProtDeepResEstimate(EMProtocol):
    """Local resolution of a cryo-EM map with DeepRes (a 3-D convolutional network trained on
    maps simulated from atomic models at known resolution). Works on a single full map, needs
    no half maps. Output: a resolution map in Å on the input grid (0 outside the mask)."""

    _label = "local resolution"
    _devStatus = BETA
    _possibleOutputs = {"outputResolution": Volume, "outputMask": VolumeMask}

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
        form.addParam("modelChoice", params.EnumParam, default=C.MODEL_AUTO,
                      choices=C.MODEL_CHOICES, label="Model",
                      help="auto: 'standard' unless the map is sampled at ≤ %.2f Å/px and the "
                           "standard median is below 3 Å, then 'high'.\nstandard: 1 Å/px "
                           "model, resolutions ≈ 2.5-13 Å.\nhigh: 0.5 Å/px model for "
                           "high-resolution maps (voxel size ≤ %.2f Å/px).\ntrained model: "
                           "the output of a 'DeepRes train' run." %
                           (C.HIGH_MAX_SAMPLING, C.HIGH_MAX_SAMPLING))
        form.addParam("trainedModel", params.PointerParam, pointerClass="DeepResModel",
                      condition="modelChoice == %d" % C.MODEL_TRAINED, allowsNull=True,
                      label="Trained model",
                      help="A model produced by the DeepRes train protocol.")
        form.addParam("useCalibration", params.BooleanParam, default=True,
                      expertLevel=params.LEVEL_ADVANCED, label="Apply the model's calibration?",
                      help="Yes: the answer is calibrated so that a region of true resolution "
                           "t reads t (median), fitted on simulated maps when the model was "
                           "made. No: the network's raw answer, which reads noisy "
                           "low-resolution regions up to ~1 Å too bad.")
        form.addHidden(params.USE_GPU, params.BooleanParam, default=True,
                       label="Use GPU", help="Run the network on a GPU when one is visible.")
        form.addHidden(params.GPU_LIST, params.StringParam, default="0",
                       label="GPU IDs", help="GPUs TensorFlow may use (CUDA_VISIBLE_DEVICES).")

    # --------------------------- STEPS ---------------------------------------
    def _insertAllSteps(self):
        vol, mask = self.inputVolume.get(), self.mask.get()
        self._insertFunctionStep(self.estimateStep, clean_path(vol.getFileName()),
                                 vol.getSamplingRate(),
                                 clean_path(mask.getFileName()) if mask is not None else "",
                                 self._modelArg(), bool(self.useCalibration.get()),
                                 needsGPU=bool(self.useGpu.get()))
        self._insertFunctionStep(self.createOutputStep, needsGPU=False)

    def estimateStep(self, mapPath, sampling, maskPath, model, calibrate=True):
        from ..backend import estimate

        self._setDevices()
        mapPath = self._withSampling(mapPath, sampling, "input_map.mrc", "map")
        if maskPath:
            maskPath = self._withSampling(maskPath, sampling, "input_mask.mrc", "mask")
        res = estimate.run(mapPath, self._getExtraPath(C.ESTIMATE_MAP), mask_path=maskPath or None,
                           model=model, histogram=self._getExtraPath(C.ESTIMATE_HISTOGRAM),
                           slices=self._getExtraPath(C.ESTIMATE_SLICES),
                           chimerax=self._getExtraPath(C.ESTIMATE_CHIMERAX), progress=False,
                           calibrate=calibrate)
        s = res.stats
        self.info("model %s: median %.2f Å, 5-95%% %.2f-%.2f Å over %d voxels"
                  % (res.model, s["median"], s["p5"], s["p95"], s["n_voxels"]))
        for w in res.warnings:
            self.warning(w)

    def createOutputStep(self):
        inVol = self.inputVolume.get()
        origin = inVol.getOrigin(force=True).getShifts()
        out = Volume()
        out.setFileName(self._getExtraPath(C.ESTIMATE_MAP))
        out.setSamplingRate(inVol.getSamplingRate())
        out.setOrigin(make_origin(origin))
        stats = self.getStats()
        for key in ("median", "mean", "p5", "p95"):
            setattr(out, "_deepres_" + key, pwobj.Float(stats.get(key)))
        outputs = {"outputResolution": out}
        if self.mask.get() is None and os.path.isfile(self._getExtraPath(C.ESTIMATE_AUTOMASK)):
            mask = VolumeMask()
            mask.setFileName(self._getExtraPath(C.ESTIMATE_AUTOMASK))
            mask.setSamplingRate(inVol.getSamplingRate())
            mask.setOrigin(make_origin(origin))
            outputs["outputMask"] = mask
        self._defineOutputs(**outputs)
        for obj in outputs.values():
            self._defineSourceRelation(self.inputVolume, obj)
        if self.mask.get() is not None:
            self._defineSourceRelation(self.mask, out)
        if self.modelChoice.get() == C.MODEL_TRAINED:
            self._defineSourceRelation(self.trainedModel, out)

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
                          f"standard/high .json + .weights.h5 in {C.WEIGHTS_DIR}): the plugin "
                          f"installation is incomplete.")
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
        lines += [f"Warning: {w}" for w in d.get("warnings", [])]
        return lines

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

    def _readJson(self):
        try:
            with open(self._getExtraPath(C.ESTIMATE_JSON), encoding="utf-8") as fh:
                return json.load(fh)
        except (OSError, ValueError):
            return {}

    def _modelArg(self):
        """'auto' / 'standard' / 'high' or the trained model's base path (a str: step arg)."""
        choice = self.modelChoice.get()
        if choice == C.MODEL_TRAINED:
            model = self.trainedModel.get()
            return os.path.abspath(model.getBase()) if model is not None else ""
        return C.MODEL_CHOICES[choice]

    def _setDevices(self):
        """Expose only the chosen GPUs (or none) to TensorFlow, before it is imported."""
        os.environ["CUDA_VISIBLE_DEVICES"] = (",".join(map(str, self.getGpuList()))
                                              if self.useGpu.get() else "-1")

    def _withSampling(self, path, sampling, name, what):
        """The file itself, or a copy in extra/ when its header voxel size disagrees with
        Scipion's (Scipion's value wins, as everywhere in Scipion)."""
        from ..backend.volume import read_volume, write_volume

        vol = read_volume(path, what)
        if abs(vol.sampling - sampling) <= 1e-3 * sampling:
            return path
        self.warning(f"{what} header voxel size {vol.sampling:.4f} Å differs from Scipion's "
                     f"{sampling:.4f} Å: using Scipion's (copy in extra/{name})")
        vol.sampling = float(sampling)
        vol.header_extra.pop("cella", None)  # else write_volume would copy the file's cell back
        return write_volume(self._getExtraPath(name), vol)
