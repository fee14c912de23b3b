"""Viewer of ProtDeepResEstimate: histogram, coloured slices (grid / one / orthogonal) and
ChimeraX. Every action writes its file under the run's extra/ (fixed names in constants.py)
with backend/report, then shows it. A run on a set of maps: the summary table, and the same
views of one map chosen by id (files with the map's volNNN_ prefix)."""
import json
import os

import pyworkflow.protocol.params as params
from pwem.viewers import ChimeraView
from pyworkflow.viewer import DESKTOP_TKINTER, TextView

from .. import constants as C
from ..protocols import ProtDeepResEstimate
from ..protocols.protocol_estimate import SET_PREFIX
from .common import DeepResResolutionViewer, hex_palette, png_view, scipion_volume
from .viewer_residues import ResidueViews

AXES = ["x", "y", "z"]


class DeepResEstimateViewer(ResidueViews, DeepResResolutionViewer):
    """Local resolution from DeepRes: histogram, coloured slices and a ChimeraX surface
    coloured by resolution (dark = better, yellow = worse with the default 'viridis' scale;
    grey outside the mask)."""

    _label = "DeepRes local resolution viewer"
    _targets = [ProtDeepResEstimate]
    _environments = [DESKTOP_TKINTER]

    def _defineParams(self, form):
        form.addSection(label="Visualization")
        group = form.addGroup("Set of maps")
        group.addParam("mapId", params.IntParam, default=-1, label="Map id",
                       help="Runs on a set of maps: the id of the map the views below show "
                            "(column 'name' of the table: vol003 = id 3); -1 = the first.")
        group.addParam("displayTable", params.LabelParam, label="Show the summary table",
                       help="A set: extra/summary.csv (median, percentiles, clamp fraction, "
                            "model … per map). A single map: its resolution.json.")
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
        group = form.addGroup("Uncertainty")
        group.addParam("displaySpread", params.LabelParam,
                       label="Show the spread (3 orthogonal slices)",
                       help="Runs with 'Estimate the uncertainty?': the ±1 spread in Å "
                            "(outputSpread) coloured inside the mask over the map, through the "
                            "centre of the mask; its own colour range.")
        group = form.addGroup("ChimeraX")
        group.addParam("displayChimera", params.LabelParam,
                       label="Show surface coloured by resolution in ChimeraX",
                       help="Writes extra/%s (map + resolution map with Scipion's voxel size "
                            "and origin, paths relative to extra/, surface coloured with the "
                            "colour scale below inside the mask and grey outside, key in Å) "
                            "and opens it in ChimeraX." % C.VIEW_CHIMERAX)
        self._defineResidueParams(form)
        self._defineColourScale(form)

    def _getVisualizeDict(self):
        return {"displayTable": self._showTable,
                "displayHistogram": self._showHistogram,
                "displaySlices": self._showSlices,
                "displayOneSlice": self._showOneSlice,
                "displayOrthoSlices": self._showOrthoSlices,
                "displaySpread": self._showSpread,
                "displayChimera": self._showChimera, **self._residueActions()}

    # --------------------------- ACTIONS -------------------------------------
    def _showTable(self, paramName=None):
        from ..backend.batch import summary_paths

        if self.protocol.hasAttribute("outputResolutions"):
            return [TextView([summary_paths(self.protocol._getExtraPath())[0]],
                             "DeepRes summary")]
        return [TextView([self.protocol._getExtraPath(C.ESTIMATE_JSON)], "DeepRes result")]

    def _showHistogram(self, paramName=None):
        from ..backend import report

        def show():
            res = self._resolution()
            return [png_view(report.histogram_png(
                res.data[res.data > 0], self._extra(C.VIEW_HISTOGRAM),
                bin_width=self.binWidth.get(), cmap=self._cmap(), vrange=self._range(),
                clamp=self._clamp()), "Resolution histogram")]

        return self._guard(show)

    def _showSlices(self, paramName=None):
        return self._slices(C.VIEW_SLICES.format(axis=self._axis()), grid=True)

    def _showOneSlice(self, paramName=None):
        index = self.sliceNumber.get()
        if index is None or index < 0:
            import numpy as np

            res = self._guard(self._resolution)
            if isinstance(res, list):
                return res  # the error message
            inside = np.nonzero(res.data > 0)[{"z": 0, "y": 1, "x": 2}[self._axis()]]
            index = int(round(float(inside.mean()))) if inside.size else 0
        name = C.VIEW_ONE_SLICE.format(axis=self._axis(), index=index)
        return self._slices(name, index=index)

    def _showOrthoSlices(self, paramName=None):
        return self._slices(C.VIEW_SLICES.format(axis="xyz"), ortho=True)

    def _showSpread(self, paramName=None):
        from ..backend import report
        from ..backend.volume import read_volume

        def show():
            path = self._extra(C.ESTIMATE_SPREAD)
            if not os.path.isfile(path):
                return [self.errorMessage("This run did not estimate the uncertainty: run it "
                                          "with 'Estimate the uncertainty?' = Yes.",
                                          "DeepRes viewer")]
            vol, spread = scipion_volume(self._chosen()[0]), read_volume(path, "spread map")
            return [png_view(report.slices_png(
                vol.data, spread.data, spread.data > 0, self._extra(C.VIEW_SPREAD),
                cmap=self._cmap(), where=vol, label="Spread, ±1 (Å)",
                title=f"DeepRes spread ({self.protocol.getRunName()})"), "Spread")]

        return self._guard(show)

    def _showChimera(self, paramName=None):
        from ..backend import report

        palette = hex_palette(self.colorMap.get(), self.intervals.get())
        path = self._extra(C.VIEW_CHIMERAX)

        def write():
            vol, res = scipion_volume(self._chosen()[0]), self._resolution()
            report.write_chimerax(path, vol.path, res.path, vol, self._range(), palette=palette,
                                  mask=res.data > 0)
            return [ChimeraView(path)]

        return self._guard(write)

    # --------------------------- UTILS ---------------------------------------
    def _slices(self, name, grid=False, index=None, ortho=False):
        from ..backend import report

        lo, hi = self._range()
        axis = "z" if ortho else self._axis()

        def show():
            vol, res = scipion_volume(self._chosen()[0]), self._resolution()
            return [png_view(report.slices_png(
                vol.data, res.data, res.data > 0, self._extra(name), axis=axis, index=index,
                grid=grid, vmin=lo, vmax=hi, cmap=self._cmap(), where=vol,
                title=f"DeepRes local resolution ({self.protocol.getRunName()})"), "Slices")]

        return self._guard(show)

    def _guard(self, make):
        """Run an action; bad settings (e.g. slice out of range) → an error message view."""
        from ..backend.volume import InputError

        try:
            return make()
        except InputError as exc:
            return [self.errorMessage(str(exc), "DeepRes viewer")]

    def _axis(self):
        return AXES[self.sliceAxis.get()]

    def _clamp(self):
        """The run's clamp (floor, ceiling in Å) from its JSON, or None."""
        try:
            with open(self._extra(C.ESTIMATE_JSON), encoding="utf-8") as fh:
                return tuple(json.load(fh)["clamp"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _resolution(self):
        return scipion_volume(self._chosen()[1], "resolution map")

    def _chosen(self):
        """(input map, resolution map, extra/ prefix) to show: the run's, or for a set run
        the map with id ``mapId`` (the first for -1)."""
        from ..backend.volume import InputError

        prot = self.protocol
        if not prot.hasAttribute("outputResolutions"):
            return prot.inputVolume.get(), prot.outputResolution, ""
        ids = sorted(v.getObjId() for v in prot.outputResolutions.iterItems())
        want = self.mapId.get() if hasattr(self, "mapId") else -1  # not yet while building
        objId = ids[0] if want is None or want < 0 else want
        if objId not in ids:
            raise InputError(f"no map with id {objId} in this run (ids: "
                             f"{', '.join(map(str, ids))})")
        return (prot.inputVolume.get()[objId], prot.outputResolutions[objId],
                SET_PREFIX.format(objId))

    def _extra(self, name):
        """extra/``name`` of the map shown (prefixed for a set run)."""
        try:
            prefix = self._chosen()[2]
        except Exception:  # a bad map id: the action reports it
            prefix = ""
        return self.protocol._getExtraPath(prefix + name)

    def _defaultRange(self):
        """The run's colour range (2.5-97.5 % of the resolution inside the mask, 0.1 Å steps;
        the one of its pictures and script), from its JSON."""
        try:
            with open(self._extra(C.ESTIMATE_JSON), encoding="utf-8") as fh:
                d = json.load(fh)
            if "colour_map" in d:
                return tuple(d["colour_map"]["range"])
            s = d["stats"]  # runs made before the colour range was recorded
            return round(s["p2_5"] - 0.05, 1), round(s["p97_5"] + 0.05, 1)
        except (OSError, ValueError, KeyError, TypeError):
            return super()._defaultRange()
