"""Wizards of the DeepRes plugin: pwem's colour-scale dialog for the local-resolution viewer
(lowest / highest Å, intervals and colour map)."""
from pwem.wizards import ColorScaleWizardBase

from .viewers import DeepResEstimateViewer, DeepResSharpeningViewer


class DeepResColorScaleWizard(ColorScaleWizardBase):
    _targets = ColorScaleWizardBase.defineTargets(DeepResEstimateViewer,
                                                  DeepResSharpeningViewer)
