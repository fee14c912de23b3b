"""Per-residue views of a ProtDeepResEstimate run with an atomic model (a mixin of
DeepResEstimateViewer): the resolution along the sequence and the model coloured by residue
in ChimeraX, both in the viewer's colour scale, written under extra/ (constants.py names)."""
import pyworkflow.protocol.params as params
from pwem.viewers import ChimeraView

from .. import constants as C
from .common import hex_palette, png_view


class ResidueViews:
    """Adds the 'Atomic model' group; needs the host viewer's _guard, _range and colour scale."""

    def _defineResidueParams(self, form):
        group = form.addGroup("Atomic model")
        group.addParam("displayResidues", params.LabelParam,
                       label="Show resolution along the sequence",
                       help="Runs with an atomic model: each residue's median local resolution "
                            "(points in the colour scale below) and its 25-75 %% band, one "
                            "panel per chain; residues without a mask voxel ticked in grey. "
                            "Written to extra/%s." % C.VIEW_RESIDUES)
        group.addParam("displayResidueChimera", params.LabelParam,
                       label="Show the model coloured by residue in ChimeraX",
                       help="Writes extra/%s: the annotated model (median in the B-factor "
                            "column) coloured with the colour scale below, key in Å, residues "
                            "without a value grey." % C.VIEW_RESIDUE_CHIMERAX)

    def _residueActions(self):
        return {"displayResidues": self._showResidues,
                "displayResidueChimera": self._showResidueChimera}

    def _showResidues(self, paramName=None):
        from ..backend import residues

        if not self.protocol.hasAttribute("outputAtomStruct"):
            return [self._noModel()]
        path = self.protocol._getExtraPath(C.VIEW_RESIDUES)
        return self._guard(lambda: [png_view(residues.plot_png(
            residues.read_csv(self.protocol._getExtraPath(C.ESTIMATE_RESIDUE_CSV)), path,
            self._cmap(), self._range(),
            f"Local resolution per residue ({self.protocol.getRunName()})"),
            "Resolution per residue")])

    def _showResidueChimera(self, paramName=None):
        from ..backend import residues

        if not self.protocol.hasAttribute("outputAtomStruct"):
            return [self._noModel()]
        path = self.protocol._getExtraPath(C.VIEW_RESIDUE_CHIMERAX)
        palette = hex_palette(self.colorMap.get(), self.intervals.get())
        return self._guard(lambda: [ChimeraView(residues.write_chimerax(
            path, self.protocol.getResidueModelFile(), self._range(), palette=palette))])

    def _noModel(self):
        return self.errorMessage("This run had no atomic model: set 'Atomic model' in the "
                                 "protocol form to get per-residue values.", "DeepRes viewer")
