"""Scipion objects of the DeepRes plugin."""
import os

import pyworkflow.object as pwobj
from pwem.objects import EMObject

WEIGHTS_SUFFIX = ".weights.h5"
CARD_SUFFIX = ".json"


class DeepResModel(EMObject):
    """A trained DeepRes model: ``<base>.weights.h5`` plus its ``<base>.json`` model card.

    Produced by ProtDeepResTrain, consumed by ProtDeepResEstimate ("trained model")."""

    def __init__(self, filename=None, **kwargs):
        EMObject.__init__(self, **kwargs)
        self._filename = pwobj.String(filename)  # the .weights.h5 file
        self._modelName = pwobj.String()
        self._samplingRate = pwobj.Float()  # Å/px the model works at
        self._resMin = pwobj.Float()  # Å, lower end of the trained range
        self._resMax = pwobj.Float()  # Å, upper end

    def getFileName(self):
        return self._filename.get()

    def setFileName(self, filename):
        self._filename.set(filename)

    def getBase(self):
        """Path without the ``.weights.h5`` suffix (what the backend accepts as a model)."""
        fn = self.getFileName() or ""
        return fn[:-len(WEIGHTS_SUFFIX)] if fn.endswith(WEIGHTS_SUFFIX) else fn

    def getCardFile(self):
        return self.getBase() + CARD_SUFFIX

    def getFiles(self):
        return {self.getFileName(), self.getCardFile()}

    def exists(self):
        return os.path.isfile(self.getFileName() or "") and os.path.isfile(self.getCardFile())

    def getModelName(self):
        return self._modelName.get()

    def getSamplingRate(self):
        return self._samplingRate.get()

    def getResolutionRange(self):
        return self._resMin.get(), self._resMax.get()

    def setFromCard(self, card):
        """Copy name, sampling and range from a backend ModelCard."""
        self._modelName.set(card.name)
        self._samplingRate.set(float(card.sampling))
        self._resMin.set(float(card.res_min))
        self._resMax.set(float(card.res_max))

    def __str__(self):
        lo, hi = self.getResolutionRange()
        if self.getSamplingRate() is None:
            return "DeepResModel (empty)"
        return (f"DeepResModel {self.getModelName()} ({self.getSamplingRate():.2f} Å/px, "
                f"{lo:.1f}-{hi:.1f} Å)")
