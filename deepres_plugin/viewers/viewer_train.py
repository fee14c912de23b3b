"""Viewer of ProtDeepResTrain: training and validation loss curves, and the history table."""
import pyworkflow.protocol.params as params
from pyworkflow.viewer import DESKTOP_TKINTER, ProtocolViewer

from .. import constants as C
from ..protocols import ProtDeepResTrain
from .common import png_view


class DeepResTrainViewer(ProtocolViewer):
    """Loss curves of a DeepRes training run (updated after every epoch while it runs)."""

    _label = "DeepRes training viewer"
    _targets = [ProtDeepResTrain]
    _environments = [DESKTOP_TKINTER]

    def _defineParams(self, form):
        form.addSection(label="Visualization")
        form.addParam("displayLoss", params.LabelParam, label="Show loss curves",
                      help="Training loss, validation loss and validation MAE (Å) per epoch "
                           "(extra/%s), from extra/%s." % (C.VIEW_LOSS, C.TRAIN_HISTORY))
        form.addParam("displayHistory", params.LabelParam, label="Show history table",
                      help="The per-epoch numbers (extra/%s)." % C.TRAIN_HISTORY)

    def _getVisualizeDict(self):
        return {"displayLoss": self._showLoss, "displayHistory": self._showHistory}

    def _showLoss(self, paramName=None):
        import os

        from ..backend.training import plot_history

        history = self.protocol.getHistoryFile()
        if not os.path.isfile(history):
            return [self.errorMessage("No epoch finished yet: no history to plot.",
                                      "DeepRes viewer")]
        path = plot_history(history, self.protocol._getExtraPath(C.VIEW_LOSS))
        return [png_view(path, "DeepRes training")]

    def _showHistory(self, paramName=None):
        return [self.textView([self.protocol.getHistoryFile()], "DeepRes training history")]
