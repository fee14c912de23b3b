"""ProtDeepResTrain: atomic structures → a trained DeepRes model (DeepResModel output)."""
import csv
import glob
import os

import pyworkflow.protocol.params as params
from pwem.objects import AtomStruct, SetOfAtomStructs
from pyworkflow import BETA

from .. import constants as C
from ..backend.config import PRESETS, InputError, TrainConfig, format_head, parse_head
from ..backend.config import TRAIN_DEFAULTS as D
from ..objects import DeepResModel
from .base import ProtDeepResBase

NOISE_REFS = ["map", "local"]
#: expert settings: (param, TrainConfig field = default, label, help)
_ADVANCED = [
    ("noiseMax", "noise_max", "Max noise",
     "Noise SD drawn up to this fraction of the map maximum (as in the DeepRes paper's test "
     "maps: blurred regions get a worse SNR)."),
    ("colouredNoise", "noise_colour", "Coloured noise?",
     "Training noise white, low-passed or B-shaped at random, as in post-processed maps, so "
     "that noise texture is not a resolution cue. No: always white."),
    ("globalBFraction", "global_b_fraction", "Sharpened/blurred maps",
     "Fraction of training maps given a global B-factor (sharpening or blurring), labelled with "
     "the resolution of the ideal map they resemble, so that sharpening reads better and "
     "blurring worse."),
    ("maskInput", "mask_input", "Feed map × mask?",
     "The net sees map × (mask dilated by one voxel), as Xmipp's DeepRes, in training and "
     "estimation: a masked map (solvent 0) then reads like the unmasked one."),
    ("noiseInput", "noise_input", "Give the net the noise level?",
     "The head also sees the map's noise SD, measured in the solvent 5 Å beyond the mask at "
     "estimation time. Off by default: masked and post-processed maps have no usable solvent "
     "noise."),
    ("cleanFraction", "clean_fraction", "Noise-free maps",
     "Fraction of training maps without noise."),
    ("batch", "batch", "Batch size",
     "Patches per optimizer step."),
    ("patch", "patch", "Patch size (px)",
     "Edge of the training cubes; labels exist for the inner (patch - 12)³ voxels."),
    ("channels", "channels", "Trunk channels",
     "Width of the convolution trunk (the shipped models' value is in their model card). Fewer "
     "= faster, less accurate."),
    ("lastChannels", "last_channels", "Last trunk channels",
     "Channels of the last trunk layer."),
    ("learningRate", "lr", "Learning rate",
     "Initial Adam learning rate (cosine decay over the run)."),
    ("ema", "ema", "Weight-average decay",
     "Decay of the moving average of the weights that is validated and exported (0 = the last "
     "step's weights)."),
    ("valMaps", "val_maps", "Validation maps",
     "Simulated maps (4 patches each) in the fixed validation set."),
    ("calibrationMaps", "calibration_maps", "Calibration maps",
     "Maps simulated from the training structures after training to calibrate the model (so "
     "that a region of true resolution t reads t); 0 = no calibration."),
    ("seed", "seed", "Random seed",
     "Same seed and inputs give the same model."),
]


def structure_files(pointers):
    """Absolute file paths of every AtomStruct in a list of AtomStruct/SetOfAtomStructs pointers."""
    files = []
    for ptr in pointers or []:
        obj = ptr.get()
        if isinstance(obj, SetOfAtomStructs):
            files += [os.path.abspath(item.getFileName()) for item in obj]
        elif isinstance(obj, AtomStruct):
            files.append(os.path.abspath(obj.getFileName()))
    return files


def split_validation(files, fraction=0.15):
    """(train, val): every k-th structure held out (≥ 1); a single structure serves both."""
    files = sorted(set(files), key=lambda f: (os.path.basename(f), f))  # name order
    if len(files) < 2:
        return files, files
    step = max(2, round(1 / fraction))
    val = files[step - 1::step] or files[-1:]
    return [f for f in files if f not in val], val


class ProtDeepResTrain(ProtDeepResBase):
    """Train a DeepRes model on your own atomic structures. Maps are simulated on the fly
    (random orientations, 1-4 regions per map at random resolutions in the range, noise), and
    the dense network learns the resolution of every voxel. The output model can be used by
    the DeepRes local resolution protocol ('trained model')."""

    _label = "train model"
    _devStatus = BETA
    _possibleOutputs = {"outputModel": DeepResModel}

    def _defineParams(self, form):
        form.addSection(label="Input")
        form.addParam("inputStructures", params.MultiPointerParam,
                      pointerClass="AtomStruct,SetOfAtomStructs", allowsNull=True,
                      label="Training structures",
                      help="Atomic models (PDB/mmCIF) the training maps are simulated from. "
                           "More and more varied structures generalise better (the shipped "
                           "models used ~130). Can be combined with the file pattern below.")
        form.addParam("structureFiles", params.StringParam, default="",
                      label="Structure files (pattern)",
                      help="Optional glob pattern of more model files, e.g. "
                           "/data/models/*.cif.gz, so a large collection need not be imported "
                           "into the project one by one.")
        form.addParam("valStructures", params.MultiPointerParam,
                      pointerClass="AtomStruct,SetOfAtomStructs", allowsNull=True,
                      label="Validation structures (optional)",
                      help="Structures used only to measure the validation error each epoch. "
                           "Empty: about 15% of the training structures are held out (with "
                           "a single structure, it validates on itself).")
        form.addParam("modelName", params.StringParam, default="deepres_custom",
                      label="Model name",
                      help="Files are written as extra/<name>.weights.h5 and <name>.json.")
        form.addParam("samplingRate", params.FloatParam, default=D.sampling,
                      label="Model voxel size (Å/px)",
                      help="Maps are simulated at this sampling; at estimation, input maps are "
                           "resampled to it. The shipped models: "
                           + "; ".join(f"{n} {p.sampling:g} Å/px, {p.res_min:g}-{p.res_max:g} Å"
                                       for n, p in PRESETS.items()) + ".")
        line = form.addLine("Resolution range (Å)",
                            help="Labels are drawn uniformly in this range. The lower end "
                                 "must be ≥ 2 × voxel size (Nyquist).")
        line.addParam("resMin", params.FloatParam, default=D.res_min, label="min",
                      help="Best resolution the model learns (Å, ≥ 2 × voxel size).")
        line.addParam("resMax", params.FloatParam, default=D.res_max, label="max",
                      help="Worst resolution the model learns (Å).")
        form.addParam("epochs", params.IntParam, default=D.epochs, label="Epochs",
                      help="Passes of (steps per epoch × batch) patches; a checkpoint is "
                           "written after each, and 'continue' resumes from it.")
        form.addParam("stepsPerEpoch", params.IntParam, default=D.steps_per_epoch,
                      label="Steps per epoch", help="Optimizer steps per epoch.")
        kinds = {bool: params.BooleanParam, int: params.IntParam, float: params.FloatParam}
        for name, field, label, text in _ADVANCED:
            default = getattr(D, field)
            form.addParam(name, kinds[type(default)], default=default, label=label, help=text,
                          expertLevel=params.LEVEL_ADVANCED)
        form.addParam("noiseRef", params.EnumParam, default=NOISE_REFS.index(D.noise_ref),
                      choices=NOISE_REFS, display=params.EnumParam.DISPLAY_HLIST,
                      expertLevel=params.LEVEL_ADVANCED, label="Noise relative to",
                      help="map: noise SD relative to the whole map's maximum (as real maps "
                           "and the paper's tests); local: to each region's own maximum.")
        form.addParam("head", params.StringParam, default=format_head(D.head),
                      expertLevel=params.LEVEL_ADVANCED, label="Head layers",
                      help="Widths of the per-voxel head layers, comma separated.")
        form.addParam("initModel", params.StringParam, default=D.init or "",
                      expertLevel=params.LEVEL_ADVANCED, label="Start from model (optional)",
                      help="Fine-tuning: start from the weights of a shipped model (standard, "
                           "high, coarse) or a trained NAME.weights.h5; layers whose names and "
                           "shapes match are copied. Empty: random start.")
        self._defineGpuParams(form, "Train")
        form.addParallelSection(threads=2, mpi=0)

    # --------------------------- STEPS ---------------------------------------
    def _insertAllSteps(self):
        self._insertFunctionStep(self.trainStep, self.modelName.get(),
                                 needsGPU=bool(self.useGpu.get()))
        self._insertFunctionStep(self.createOutputStep, needsGPU=False)

    def trainStep(self, name):
        self._setDevices()
        from ..backend.training import train

        train_files, val_files = self._splits()
        cfg = self._config(name, structures=train_files, val_structures=val_files,
                           command=f"Scipion {self.getClassName()} run {self.getObjId()}")
        cfg.check()
        self.info(f"training on {len(train_files)} structure(s), validating on "
                  f"{len(val_files)}: {', '.join(os.path.basename(f) for f in val_files)}")

        def report(epoch, logs):
            self.info("epoch %d/%d: loss %.4f, val_loss %.4f, val_mae %.3f Å (%.0f s)"
                      % (epoch, cfg.epochs, logs["loss"], logs["val_loss"], logs["val_mae"],
                         logs.get("seconds", 0)))

        base = train(cfg, self._getExtraPath(), resume=True, progress=False, callback=report)
        self.info(f"model written: {base}.weights.h5")

    def createOutputStep(self):
        from ..backend.registry import read_card

        base = self._getExtraPath(self.modelName.get())
        model = DeepResModel(filename=base + ".weights.h5")
        model.setFromCard(read_card(base + ".json"))
        self._defineOutputs(outputModel=model)
        for ptr in list(self.inputStructures or []) + list(self.valStructures or []):
            self._defineSourceRelation(ptr.get(), model)

    # --------------------------- INFO ----------------------------------------
    def _validate(self):
        errors = self._config(self.modelName.get()).errors()
        pattern = (self.structureFiles.get() or "").strip()
        if pattern and not glob.glob(os.path.expanduser(pattern)):
            errors.append(f"Structure files: nothing matches {pattern}")
        missing = [f for f in self._trainFiles() + self._valFiles() if not os.path.isfile(f)]
        if missing:
            errors.append(f"Structure file(s) not found: {', '.join(missing[:3])}")
        elif not self._trainFiles():
            errors.append("No training structures: select atomic structures or give a file "
                          "pattern.")
        return errors

    def _warnings(self):
        if len(set(self._trainFiles())) == 1 and not self._valFiles():
            return ["Only one structure and no validation structures: the validation error "
                    "is measured on the training structure (optimistic)."]
        return []

    def _summary(self):
        rows = self._history()
        if not rows:
            return ["Training not started or no epoch finished yet."]
        last = rows[-1]
        lines = [f"{len(rows)}/{self.epochs.get()} epochs: training loss "
                 f"{float(last['loss']):.4f}, validation MAE {float(last['val_mae']):.3f} Å."]
        if self.hasAttribute("outputModel"):
            lines.append(f"Model: {self.outputModel}.")
        return lines

    def _methods(self):
        if not self.hasAttribute("outputModel"):
            return []
        n = len(set(self._trainFiles()))
        return [f"A DeepRes model [RamirezAportela2019] was trained on maps simulated from {n} "
                f"atomic structure(s) at {self.samplingRate.get():g} Å/px, resolutions "
                f"{self.resMin.get():g}-{self.resMax.get():g} Å, for {self.epochs.get()} epochs "
                f"of {self.stepsPerEpoch.get()} steps."]

    def _citations(self):
        return ["RamirezAportela2019"]

    # --------------------------- UTILS ---------------------------------------
    def _trainFiles(self):
        """Files of the selected structures plus those matching the pattern (absolute)."""
        pattern = os.path.expanduser((self.structureFiles.get() or "").strip())
        extra = sorted(os.path.abspath(f) for f in glob.glob(pattern)) if pattern else []
        return structure_files(self.inputStructures) + extra

    def _valFiles(self):
        return structure_files(self.valStructures) if self.valStructures else []

    def _splits(self):
        train_files = self._trainFiles()
        val = self._valFiles()
        return (sorted(set(train_files)), sorted(set(val))) if val \
            else split_validation(train_files)

    def _head(self):
        try:
            return parse_head(self.head.get())
        except InputError:
            return ()  # TrainConfig.errors() names it

    def _config(self, name, **kw):
        """The form as a :class:`TrainConfig` (backend/config.py: defaults and checks)."""
        expert = {field: getattr(self, param).get() for param, field, _, _ in _ADVANCED}
        return TrainConfig(
            name=name, sampling=self.samplingRate.get(), res_min=self.resMin.get(),
            res_max=self.resMax.get(), epochs=self.epochs.get(),
            steps_per_epoch=self.stepsPerEpoch.get(), **expert,
            noise_ref=NOISE_REFS[self.noiseRef.get()], head=self._head(),
            threads=max(1, self.numberOfThreads.get()),
            init=(self.initModel.get() or "").strip() or None, **kw)

    def getHistoryFile(self):
        return self._getExtraPath(C.TRAIN_HISTORY)

    def _history(self):
        try:
            with open(self.getHistoryFile(), newline="", encoding="utf-8") as fh:
                return list(csv.DictReader(fh))
        except OSError:
            return []
