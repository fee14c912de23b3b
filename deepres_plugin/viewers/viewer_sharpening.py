"""Viewer of ProtDeepResSharpening: the B-sweep plot, the recommendation, the table, and
coloured slices of DeepRes (sharpened map at the recommended B) and of the local FSC."""
import pyworkflow.protocol.params as params
from pyworkflow.viewer import DESKTOP_TKINTER

from ..protocols.protocol_sharpening import ProtDeepResSharpening
from .common import DeepResResolutionViewer, png_view

VIEW_DEEPRES_SLICES = "view_sharpened_deepres_slices.png"
VIEW_LOCALFSC_SLICES = "view_localfsc_slices.png"


class DeepResSharpeningViewer(DeepResResolutionViewer):
    """B-factor sweep: DeepRes percentiles per B against the local FSC, the
    recommended B, the model–map CC, and coloured slices at the recommended B."""

    _label = "DeepRes sharpening viewer"
    _targets = [ProtDeepResSharpening]
    _environments = [DESKTOP_TKINTER]

    def _defineParams(self, form):
        form.addSection(label="Visualization")
        form.addParam("displayPlot", params.LabelParam, label="Show the B sweep plot",
                      help="DeepRes 5/20/50/80/95 % per B, the local-FSC 20 % line, the "
                           "recommended B and (with a model) the model–map CC.")
        form.addParam("displayRecommendation", params.LabelParam,
                      label="Show the recommended B", help="The recommendation in words.")
        form.addParam("displayTable", params.LabelParam, label="Show the table",
                      help="extra/sharpening.csv: one row per B.")
        form.addParam("displayDeepResSlices", params.LabelParam,
                      label="Show DeepRes slices at the recommended B",
                      help="3 orthogonal slices of the sharpened map with its DeepRes "
                           "resolution coloured inside the mask.")
        form.addParam("displayLocalFSCSlices", params.LabelParam,
                      label="Show local-FSC slices",
                      help="The same slices coloured by the local FSC (of the half maps, "
                           "or of the map vs the atomic model).")
        self._defineColourScale(form)

    def _getVisualizeDict(self):
        return {"displayPlot": self._showPlot,
                "displayRecommendation": self._showRecommendation,
                "displayTable": self._showTable,
                "displayDeepResSlices": lambda paramName=None: self._slices("deepres"),
                "displayLocalFSCSlices": lambda paramName=None: self._slices("localfsc")}

    def _showPlot(self, paramName=None):
        return [png_view(self._file("plot"), "B sweep")]

    def _showRecommendation(self, paramName=None):
        d = self.protocol.getResult()
        if not d:
            return [self.errorMessage("The sweep has not finished.", "DeepRes viewer")]
        return [self.infoMessage(self.recommendation(d), "Recommended B-factor")]

    def _showTable(self, paramName=None):
        return [self.textView([self._file("csv")], "B sweep table")]

    def _slices(self, which):
        from ..backend import report
        from ..backend.volume import InputError, read_volume

        d = self.protocol.getResult()
        ref = "the map vs the atomic model" if d.get("reference") == "model" else "the half maps"
        title = ("DeepRes of the map sharpened with B = %.1f Å²" % d.get("best_b", 0.0)
                 if which == "deepres" else f"Local FSC of {ref}")
        name = VIEW_DEEPRES_SLICES if which == "deepres" else VIEW_LOCALFSC_SLICES
        lo, hi = self._range()
        try:
            vol = read_volume(self._file("sharpened"), "sharpened map")
            res = read_volume(self._file(which), "resolution map")
            path = report.slices_png(vol.data, res.data, res.data > 0,
                                     self.protocol._getExtraPath(name), vmin=lo, vmax=hi,
                                     cmap=self._cmap(), title=title,
                                     where=vol)
        except InputError as exc:
            return [self.errorMessage(str(exc), "DeepRes viewer")]
        return [png_view(path, title)]

    @staticmethod
    def recommendation(d):
        """The recommendation in two lines (also used by the summary of the viewer)."""
        head = (f"Recommended B = {d['recommended_b']:.1f} Å²." if d.get("met") else
                f"No crossing in {d['bfactors'][-1]:g}..{d['bfactors'][0]:g} Å²; "
                f"output map at B = {d['best_b']:.1f} Å² (closest approach).")
        return head + "\n" + d.get("message", "")

    def _file(self, key):
        from ..backend.sharpening import FILES

        return self.protocol._getExtraPath(FILES[key])

    def _defaultRange(self):
        """Common scale for both slice views: from the smaller 5 % to the larger 95 %."""
        d = self.protocol.getResult() if self.protocol is not None else {}
        try:
            i = d["bfactors"].index(min(d["bfactors"], key=lambda b: abs(b - d["best_b"])))
            lo = min(d["deepres"]["p5"][i], d["localfsc"]["p5"])
            hi = max(d["deepres"]["p95"][i], d["localfsc"]["p95"])
            return round(lo - 0.05, 1), round(hi + 0.05, 1)
        except (KeyError, ValueError, TypeError):
            return super()._defaultRange()
