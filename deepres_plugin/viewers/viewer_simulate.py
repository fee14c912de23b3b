"""Viewer of ProtDeepResSimulate: slices of the simulated map next to the true-resolution map,
and both in ChimeraX (surface coloured by the true resolution)."""
import numpy as np
import pyworkflow.protocol.params as params
from pwem.viewers import ChimeraView
from pyworkflow.viewer import DESKTOP_TKINTER, ProtocolViewer

from .. import constants as C
from ..protocols import ProtDeepResSimulate
from .common import png_view, scipion_volume

AXES = ["x", "y", "z"]
_AXIS_INDEX = {"z": 0, "y": 1, "x": 2}


def truth_vs_map_png(map_data, truth, axis, index, path, title=""):
    """Two panels: the map slice (grey) and the true resolution (Å, coloured inside the mask)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    a = _AXIS_INDEX[axis]
    if not 0 <= index < map_data.shape[a]:
        raise IndexError(f"slice {axis}={index} is outside the map (0..{map_data.shape[a] - 1})")
    m2, t2 = np.take(map_data, index, axis=a), np.take(truth, index, axis=a)
    values = np.unique(truth[truth > 0])
    fig = Figure(figsize=(9.0, 4.4))
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.add_subplot(121), fig.add_subplot(122)
    ax1.imshow(m2, cmap="gray", origin="lower", interpolation="nearest")
    ax1.set_title(f"simulated map, {axis} = {index}")
    ax2.imshow(m2, cmap="gray", origin="lower", interpolation="nearest")
    lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    im = ax2.imshow(np.ma.masked_where(t2 <= 0, t2), cmap=C.DEFAULT_COLORMAP, vmin=lo,
                    vmax=hi, origin="lower", interpolation="nearest", alpha=0.85)
    ax2.set_title("true resolution (inside the mask)")
    for ax in (ax1, ax2):
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(im, ax=ax2, label="Resolution (Å)", shrink=0.85,
                 ticks=values if 0 < values.size <= 8 else None)
    if title:
        fig.suptitle(title)
    from ..backend.volume import atomic_path

    with atomic_path(path, ".png") as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return path


class DeepResSimulateViewer(ProtocolViewer):
    """Simulated map vs its true local resolution."""

    _label = "DeepRes simulation viewer"
    _targets = [ProtDeepResSimulate]
    _environments = [DESKTOP_TKINTER]

    def _defineParams(self, form):
        form.addSection(label="Visualization")
        form.addParam("sliceAxis", params.EnumParam, default=2, choices=AXES,
                      display=params.EnumParam.DISPLAY_HLIST, label="Slice axis",
                      help="Axis perpendicular to the slice.")
        form.addParam("sliceNumber", params.IntParam, default=-1, label="Slice index",
                      help="0-based index along the axis; -1 = the centre of the box.")
        form.addParam("displayTruthVsMap", params.LabelParam,
                      label="Show map and true resolution",
                      help="The simulated map slice and, next to it, the true resolution of "
                           "each voxel inside the mask (extra/%s)." %
                           C.VIEW_SIMULATION.format(axis="<axis>"))
        form.addParam("displayChimera", params.LabelParam,
                      label="Show in ChimeraX",
                      help="Simulated map surface coloured by the true resolution, with "
                           "Scipion's voxel size and origin (extra/%s)." % C.VIEW_CHIMERAX)

    def _getVisualizeDict(self):
        return {"displayTruthVsMap": self._showTruthVsMap, "displayChimera": self._showChimera}

    def _showTruthVsMap(self, paramName=None):
        vol = scipion_volume(self.protocol.outputVolume)
        truth = scipion_volume(self.protocol.outputTruth, "truth map")
        axis = AXES[self.sliceAxis.get()]
        index = self.sliceNumber.get()
        if index is None or index < 0:
            index = vol.data.shape[_AXIS_INDEX[axis]] // 2
        path = self.protocol._getExtraPath(C.VIEW_SIMULATION.format(axis=axis))
        try:
            truth_vs_map_png(vol.data, truth.data, axis, index, path,
                             title=self.protocol.getRunName())
        except IndexError as exc:
            return [self.errorMessage(str(exc), "DeepRes viewer")]
        return [png_view(path, "Simulated map and true resolution")]

    def _showChimera(self, paramName=None):
        from ..backend import report

        vol = scipion_volume(self.protocol.outputVolume)
        truth = scipion_volume(self.protocol.outputTruth, "truth map")
        inside = truth.data[truth.data > 0]
        lo, hi = (float(inside.min()), float(inside.max())) if inside.size else (0.0, 1.0)
        path = self.protocol._getExtraPath(C.VIEW_CHIMERAX)
        report.write_chimerax(path, vol.path, truth.path, vol, (lo, hi), mask=truth.data > 0)
        return [ChimeraView(path)]
