"""ProtDeepResTrain: atomic structures → a trained DeepRes model (DeepResModel output)."""
import csv
import glob
import os
import re

import pyworkflow.protocol.params as params
from pwem.objects import AtomStruct, SetOfAtomStructs
from pwem.protocols import EMProtocol
from pyworkflow import BETA

from .. import constants as C
from ..objects import DeepResModel


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


class ProtDeepResTrain(EMProtocol):
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
        form.addParam("samplingRate", params.FloatParam, default=1.0,
                      label="Model voxel size (Å/px)",
                      help="Maps are simulated at this sampling; at estimation, input maps are "
                           "resampled to it. 1.0 for general use, 0.5 for high resolution.")
        line = form.addLine("Resolution range (Å)",
                            help="Labels are drawn uniformly in this range. The lower end "
                                 "must be ≥ 2 × voxel size (Nyquist).")
        line.addParam("resMin", params.FloatParam, default=2.5, label="min",
                      help="Best resolution the model learns (Å, ≥ 2 × voxel size).")
        line.addParam("resMax", params.FloatParam, default=13.0, label="max",
                      help="Worst resolution the model learns (Å).")
        form.addParam("epochs", params.IntParam, default=16, label="Epochs",
                      help="Passes of (steps per epoch × batch) patches; a checkpoint is "
                           "written after each, and 'continue' resumes from it.")
        form.addParam("stepsPerEpoch", params.IntParam, default=250, label="Steps per epoch",
                      help="Optimizer steps per epoch.")
        form.addParam("noiseMax", params.FloatParam, default=0.12,
                      expertLevel=params.LEVEL_ADVANCED, label="Max noise",
                      help="Noise SD drawn up to this fraction of the map maximum (as in "
                           "the DeepRes paper's test maps: blurred regions get a worse SNR).")
        form.addParam("noiseInput", params.BooleanParam, default=True,
                      expertLevel=params.LEVEL_ADVANCED, label="Give the net the noise level?",
                      help="The head also sees the map's noise SD (at estimation time measured "
                           "in the solvent, 5 Å beyond the mask), so that noise and blur are "
                           "not confused. The shipped standard model uses it.")
        form.addParam("batch", params.IntParam, default=4, expertLevel=params.LEVEL_ADVANCED,
                      label="Batch size", help="Patches per optimizer step.")
        form.addParam("patch", params.IntParam, default=48, expertLevel=params.LEVEL_ADVANCED,
                      label="Patch size (px)",
                      help="Edge of the training cubes; labels exist for the inner "
                           "(patch - 12)³ voxels.")
        form.addParam("channels", params.IntParam, default=16,
                      expertLevel=params.LEVEL_ADVANCED, label="Trunk channels",
                      help="Width of the convolution trunk (the shipped models' value is in "
                           "their model card). Fewer = faster, less accurate.")
        form.addParam("lastChannels", params.IntParam, default=48,
                      expertLevel=params.LEVEL_ADVANCED, label="Last trunk channels",
                      help="Channels of the last trunk layer.")
        form.addParam("head", params.StringParam, default="48,32",
                      expertLevel=params.LEVEL_ADVANCED, label="Head layers",
                      help="Widths of the per-voxel head layers, comma separated.")
        form.addParam("learningRate", params.FloatParam, default=1e-3,
                      expertLevel=params.LEVEL_ADVANCED, label="Learning rate",
                      help="Initial Adam learning rate (cosine decay over the run).")
        form.addParam("valMaps", params.IntParam, default=12,
                      expertLevel=params.LEVEL_ADVANCED, label="Validation maps",
                      help="Simulated maps (4 patches each) in the fixed validation set.")
        form.addParam("calibrationMaps", params.IntParam, default=200,
                      expertLevel=params.LEVEL_ADVANCED, label="Calibration maps",
                      help="Maps simulated from the training structures after training to "
                           "calibrate the model (so that a region of true resolution t reads "
                           "t); 0 = no calibration.")
        form.addParam("seed", params.IntParam, default=1, expertLevel=params.LEVEL_ADVANCED,
                      label="Random seed", help="Same seed and inputs give the same model.")
        form.addHidden(params.USE_GPU, params.BooleanParam, default=True,
                       label="Use GPU", help="Train on a GPU when one is visible.")
        form.addHidden(params.GPU_LIST, params.StringParam, default="0",
                       label="GPU IDs", help="GPUs TensorFlow may use (CUDA_VISIBLE_DEVICES).")
        form.addParallelSection(threads=2, mpi=0)

    # --------------------------- STEPS ---------------------------------------
    def _insertAllSteps(self):
        self._insertFunctionStep(self.trainStep, self.modelName.get(),
                                 needsGPU=bool(self.useGpu.get()))
        self._insertFunctionStep(self.createOutputStep, needsGPU=False)

    def trainStep(self, name):
        os.environ["CUDA_VISIBLE_DEVICES"] = (",".join(map(str, self.getGpuList()))
                                              if self.useGpu.get() else "-1")
        from ..backend.training import TrainConfig, train

        train_files, val_files = self._splits()
        cfg = TrainConfig(
            name=name, sampling=self.samplingRate.get(), res_min=self.resMin.get(),
            res_max=self.resMax.get(), epochs=self.epochs.get(),
            steps_per_epoch=self.stepsPerEpoch.get(), batch=self.batch.get(),
            patch=self.patch.get(), noise_max=self.noiseMax.get(),
            noise_input=bool(self.noiseInput.get()), seed=self.seed.get(),
            lr=self.learningRate.get(), channels=self.channels.get(),
            last_channels=self.lastChannels.get(), head=self._head(), val_maps=self.valMaps.get(),
            structures=train_files, val_structures=val_files,
            threads=max(1, self.numberOfThreads.get()),
            calibration_maps=self.calibrationMaps.get(),
            command=f"Scipion {self.getClassName()} run {self.getObjId()}")
        self.info(f"training on {len(train_files)} structure(s), validating on "
                  f"{len(val_files)}: {', '.join(os.path.basename(f) for f in val_files)}")

        def report(epoch, logs):
            self.info("epoch %d/%d: loss %.4f, val_loss %.4f, val_mae %.3f Å (%.0f s)"
                      % (epoch, cfg.epochs, logs["loss"], logs["val_loss"], logs["val_mae"],
                         logs.get("seconds", 0)))

        base = train(cfg, self._getExtraPath(), resume=True, progress=False, callback=report)
        self.info(f"model written: {base}.weights.h5")

    def createOutputStep(self):
        from ..backend.models import read_card

        base = self._getExtraPath(self.modelName.get())
        model = DeepResModel(filename=base + ".weights.h5")
        model.setFromCard(read_card(base + ".json"))
        self._defineOutputs(outputModel=model)
        for ptr in list(self.inputStructures or []) + list(self.valStructures or []):
            self._defineSourceRelation(ptr.get(), model)

    # --------------------------- INFO ----------------------------------------
    def _validate(self):
        errors = []
        s, lo, hi = self.samplingRate.get(), self.resMin.get(), self.resMax.get()
        if not s or s <= 0:
            return ["Voxel size must be positive."]
        if lo < 2 * s:
            errors.append(f"Minimum resolution {lo:g} Å is beyond Nyquist for {s:g} Å/px "
                          f"(must be ≥ {2 * s:g} Å).")
        if hi <= lo:
            errors.append("Maximum resolution must be larger than the minimum.")
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", self.modelName.get() or ""):
            errors.append("Model name: use letters, digits, '_', '-' or '.' only.")
        if self.patch.get() < 2 * 6 + 4:
            errors.append("Patch size must be at least 16 px (6 px halo on each side).")
        for label, val in (("Epochs", self.epochs), ("Steps per epoch", self.stepsPerEpoch),
                           ("Batch size", self.batch), ("Validation maps", self.valMaps)):
            if val.get() is None or val.get() < 1:
                errors.append(f"{label} must be ≥ 1.")
        try:
            if not self._head():
                raise ValueError("empty")
        except ValueError:
            errors.append("Head layers: give integers separated by commas, e.g. 48,32.")
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
        return tuple(int(v) for v in (self.head.get() or "").split(",") if v.strip())

    def getHistoryFile(self):
        return self._getExtraPath(C.TRAIN_HISTORY)

    def _history(self):
        try:
            with open(self.getHistoryFile(), newline="", encoding="utf-8") as fh:
                return list(csv.DictReader(fh))
        except OSError:
            return []
