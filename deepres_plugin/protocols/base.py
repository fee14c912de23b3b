"""What the DeepRes protocols share: the base class :class:`ProtDeepResBase` (GPU params and
CUDA_VISIBLE_DEVICES, the model choice, Scipion's voxel size and origin winning over a file
header, output volumes with the input's sampling and origin) and light file helpers. No
protocol imports another; all import this module. Light: no TensorFlow (backend modules are
imported inside the methods that need them)."""
import os
from contextlib import contextmanager

import pyworkflow.protocol.params as params
from pwem.objects import Transform, Volume
from pwem.protocols import EMProtocol

from .. import constants as C


def clean_path(fn):
    """Scipion file names may carry a ':mrc' format suffix; the backend wants the path."""
    fn = fn or ""
    return fn[:-4] if fn.endswith(":mrc") else fn


def object_path(obj):
    """Absolute path of a Scipion object's file (without ':mrc'); '' for None."""
    return os.path.abspath(clean_path(obj.getFileName())) if obj is not None else ""


def mrc_header(path):
    """(shape z,y,x, voxel size Å) of an MRC file, memory-mapped; None if unreadable."""
    import mrcfile

    try:
        with mrcfile.mmap(path, mode="r", permissive=True) as mrc:
            return tuple(int(v) for v in mrc.data.shape), float(mrc.voxel_size.x)
    except Exception:  # unreadable / not MRC: the backend reports it properly at run time
        return None


def read_card(name_or_path):
    """The JSON model card (dict) of 'auto', a shipped model or a trained ``<base>``; None if
    missing (backend/registry.py: $DEEPRES_WEIGHTS first)."""
    from ..backend.registry import card_data  # numpy only, no TensorFlow

    return card_data(name_or_path)


@contextmanager
def scipion_frame():
    """Say where Scipion puts a map's frame when an atomic model is refused for not sitting
    in the map (backend.residues.PlacementError)."""
    from ..backend.residues import PlacementError

    try:
        yield
    except PlacementError as exc:
        raise PlacementError(f"{exc} In Scipion the map's frame is its origin as set at import "
                             "('Set origin of coordinates').") from None


def make_origin(shifts) -> Transform:
    """A Scipion origin (Transform) with these x, y, z shifts in Å (= the MRC header origin)."""
    t = Transform()
    t.setShifts(*(float(v) for v in shifts))
    return t


class ProtDeepResBase(EMProtocol):
    """Base of the DeepRes protocols (no ``_label``: Scipion does not list it)."""

    # --------------------------- FORM ----------------------------------------
    def _defineGpuParams(self, form, what="Run the network"):
        form.addHidden(params.USE_GPU, params.BooleanParam, default=True,
                       label="Use GPU", help=f"{what} on a GPU when one is visible.")
        form.addHidden(params.GPU_LIST, params.StringParam, default="0",
                       label="GPU IDs", help="GPUs TensorFlow may use (CUDA_VISIBLE_DEVICES).")

    def _defineModelParams(self, form, label, help):
        """``modelChoice`` (auto/standard/high/coarse/trained) and ``trainedModel``."""
        form.addParam("modelChoice", params.EnumParam, default=C.MODEL_AUTO,
                      choices=C.MODEL_CHOICES, label=label, help=help)
        form.addParam("trainedModel", params.PointerParam, pointerClass="DeepResModel",
                      condition="modelChoice == %d" % C.MODEL_TRAINED, allowsNull=True,
                      label="Trained model",
                      help="A model produced by the DeepRes train protocol.")

    # --------------------------- STEPS ---------------------------------------
    def _setDevices(self):
        """Expose only the chosen GPUs (or none) to TensorFlow, before it is imported (inside
        the step: never at insert time). Process-wide: parallel steps share them; a GPU listed
        twice (two step slots on it) is exposed once."""
        gpus = dict.fromkeys(map(str, self.getGpuList()))
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(gpus) if self.useGpu.get() else "-1"

    def _modelArg(self):
        """'auto' / 'standard' / 'high' / 'coarse' or the trained model's base path (a str:
        step argument)."""
        choice = self.modelChoice.get()
        if choice == C.MODEL_TRAINED:
            model = self.trainedModel.get()
            return os.path.abspath(model.getBase()) if model is not None else ""
        return C.MODEL_CHOICES[choice]

    def _withSampling(self, path, sampling, name, what="map", origin=None):
        """The file itself ('' stays ''), or a copy extra/``name`` when its header voxel size
        disagrees with Scipion's (Scipion's value wins, as everywhere in Scipion); ``origin``
        (x, y, z Å): also when the header puts voxel 0 elsewhere (an atomic model uses
        Scipion's frame)."""
        if not path:
            return path
        from ..backend.report import grid_origin
        from ..backend.volume import read_volume, write_volume

        vol = read_volume(path, what)
        moved = origin is not None and not all(
            abs(a - b) <= 1e-3 for a, b in zip(grid_origin(vol), origin))
        resampled = abs(vol.sampling - sampling) > 1e-3 * sampling
        if not (resampled or moved):
            return path
        if moved:
            self.info(f"{what} header puts voxel 0 at {grid_origin(vol)} Å, Scipion at "
                      f"{tuple(origin)} Å: using Scipion's (copy in extra/{name})")
            vol.origin, vol.nstart = tuple(origin), (0, 0, 0)
        if resampled:
            self.warning(f"{what} header voxel size {vol.sampling:.4f} Å differs from "
                         f"Scipion's {sampling:.4f} Å: using Scipion's (copy in extra/{name})")
        vol.sampling = float(sampling)
        vol.header_extra.pop("cella", None)  # else write_volume would copy the file's cell back
        return write_volume(self._getExtraPath(name), vol)

    def _outputVolume(self, filename, sampling, origin, cls=Volume):
        """A Scipion volume of extra/``filename`` with this voxel size and origin (x, y, z Å)."""
        vol = cls()
        vol.setFileName(self._getExtraPath(filename))
        vol.setSamplingRate(sampling)
        vol.setOrigin(make_origin(origin))
        return vol

    def _inputGrid(self, pointer=None):
        """(voxel size, origin x, y, z Å) of the input volume, as Scipion has them."""
        vol = (pointer or self.inputVolume).get()
        return vol.getSamplingRate(), [float(v) for v in vol.getOrigin(force=True).getShifts()]
