"""Viewer of ProtDeepResEstimate: histogram, coloured slices (grid / one / orthogonal) and
ChimeraX. Every action writes its file under the run's extra/ (fixed names in constants.py)
with backend/report, then shows it."""
import json

import pyworkflow.protocol.params as params
from pwem.viewers import ChimeraView, LocalResolutionViewer
from pwem.wizards import ColorScaleWizardBase
from pyworkflow.viewer import DESKTOP_TKINTER

from .. import constants as C
from ..protocols import ProtDeepResEstimate
from .common import colormap_or_default, hex_palette, png_view, scipion_volume

AXES = ["x", "y", "z"]


class DeepResEstimateViewer(LocalResolutionViewer):
    """Local resolution from DeepRes: histogram, coloured slices and a ChimeraX surface
    coloured by resolution (blue = better, red = worse with the default 'jet' scale)."""

    _label = "DeepRes local resolution viewer"
    _targets = [ProtDeepResEstimate]
    _environments = [DESKTOP_TKINTER]

    def _defineParams(self, form):
        lo, hi = self._defaultRange()
        form.addSection(label="Visualization")
        group = form.addGroup("Histogram")
        group.addParam("binWidth", params.FloatParam, default=0.25, label="Bin width (Å)",
                       help="Width of the histogram bins in Å.")
        group.addParam("displayHistogram", params.LabelParam,
                       label="Show resolution histogram",
                       help="Histogram of the resolution of the voxels inside the mask, "
                            "median marked.")
        group = form.addGroup("Coloured slices")
        group.addParam("sliceAxis", params.EnumParam, default=2, choices=AXES,
                       display=params.EnumParam.DISPLAY_HLIST, label="Slice axis",
                       help="Axis perpendicular to the slices.")
        group.addParam("displaySlices", params.LabelParam,
                       label="Show 4 slices along the axis",
                       help="A 2×2 grid of slices spread over the masked region: map in grey, "
                            "resolution coloured inside the mask, colour bar in Å.")
        group.addParam("sliceNumber", params.IntParam, default=-1, label="Slice index",
                       help="0-based index along the slice axis for 'Show one slice'; -1 = the "
                            "centre of the mask.")
        group.addParam("displayOneSlice", params.LabelParam, label="Show one slice",
                       help="The slice chosen above, larger.")
        group.addParam("displayOrthoSlices", params.LabelParam,
                       label="Show 3 orthogonal slices",
                       help="x, y and z slices through the centre of the mask.")
        group = form.addGroup("ChimeraX")
        group.addParam("displayChimera", params.LabelParam,
                       label="Show surface coloured by resolution in ChimeraX",
                       help="Writes extra/%s (map + resolution map with Scipion's voxel size "
                            "and origin, 'color sample' with the colour scale below, key in Å) "
                            "and opens it in ChimeraX." % C.VIEW_CHIMERAX)
        group = form.addGroup("Colour scale")
        ColorScaleWizardBase.defineColorScaleParams(group, defaultLowest=lo, defaultHighest=hi,
                                                    defaultIntervals=11,
                                                    defaultColorMap=C.DEFAULT_COLORMAP)

    def _getVisualizeDict(self):
        return {"displayHistogram": self._showHistogram,
                "displaySlices": self._showSlices,
                "displayOneSlice": self._showOneSlice,
                "displayOrthoSlices": self._showOrthoSlices,
                "displayChimera": self._showChimera}

    # --------------------------- ACTIONS -------------------------------------
    def _showHistogram(self, paramName=None):
        from ..backend import report

        res = self._resolution()
        path = self.protocol._getExtraPath(C.VIEW_HISTOGRAM)
        return self._guard(lambda: [png_view(report.histogram_png(
            res.data[res.data > 0], path, bin_width=self.binWidth.get()), "Resolution histogram")])

    def _showSlices(self, paramName=None):
        return self._slices(C.VIEW_SLICES.format(axis=self._axis()), grid=True)

    def _showOneSlice(self, paramName=None):
        index = self.sliceNumber.get()
        if index is None or index < 0:
            import numpy as np

            res = self._resolution()
            inside = np.nonzero(res.data > 0)[{"z": 0, "y": 1, "x": 2}[self._axis()]]
            index = int(round(float(inside.mean()))) if inside.size else 0
        name = C.VIEW_ONE_SLICE.format(axis=self._axis(), index=index)
        return self._slices(name, index=index)

    def _showOrthoSlices(self, paramName=None):
        return self._slices(C.VIEW_SLICES.format(axis="xyz"), ortho=True)

    def _showChimera(self, paramName=None):
        from ..backend import report
        from ..backend.volume import atomic_write_text

        vol = scipion_volume(self.protocol.inputVolume.get())
        res = self._resolution()
        palette = hex_palette(self.colorMap.get(), self.intervals.get())
        path = self.protocol._getExtraPath(C.VIEW_CHIMERAX)

        def write():
            text = report.chimerax_script(vol.path, res.path, vol, self._range(),
                                          palette=palette, mask=res.data > 0)
            atomic_write_text(path, text)
            return [ChimeraView(path)]

        return self._guard(write)

    # --------------------------- UTILS ---------------------------------------
    def _slices(self, name, grid=False, index=None, ortho=False):
        from ..backend import report

        vol = scipion_volume(self.protocol.inputVolume.get())
        res = self._resolution()
        lo, hi = self._range()
        path = self.protocol._getExtraPath(name)
        axis = "z" if ortho else self._axis()
        return self._guard(lambda: [png_view(report.slices_png(
            vol.data, res.data, res.data > 0, path, axis=axis, index=index, grid=grid,
            vmin=lo, vmax=hi, cmap=colormap_or_default(self.colorMap.get()),
            title=f"DeepRes local resolution ({self.protocol.getRunName()})"), "Slices")])

    def _guard(self, make):
        """Run an action; bad settings (e.g. slice out of range) → an error message view."""
        from ..backend.volume import InputError

        try:
            return make()
        except InputError as exc:
            return [self.errorMessage(str(exc), "DeepRes viewer")]

    def _axis(self):
        return AXES[self.sliceAxis.get()]

    def _range(self):
        lo, hi = float(self.lowest.get()), float(self.highest.get())
        if lo == hi:  # the wizard's convention: equal limits = use the data range
            return self._defaultRange()
        return min(lo, hi), max(lo, hi)

    def _resolution(self):
        return scipion_volume(self.protocol.outputResolution, "resolution map")

    def _defaultRange(self):
        """2.5-97.5 % of the resolution inside the mask, from the run's JSON (0.1 Å steps)."""
        try:
            with open(self.protocol._getExtraPath(C.ESTIMATE_JSON), encoding="utf-8") as fh:
                s = json.load(fh)["stats"]
            return round(s["p2_5"] - 0.05, 1), round(s["p97_5"] + 0.05, 1)
        except (OSError, ValueError, KeyError):
            return 2.5, 13.0
