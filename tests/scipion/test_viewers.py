"""Every viewer action, headless (Agg): it writes its PNG / ChimeraX script under the run's
extra/ and returns the matching Scipion view."""
import os

import matplotlib.image as mpimg
import numpy as np
from pwem.viewers import ChimeraView, EmPlotter
from pyworkflow.tests import BaseTest, setupTestProject
from pyworkflow.viewer import MessageView, TextView

import scipion_helpers as H
from deepres_plugin import constants as C
from deepres_plugin.protocols import ProtDeepResEstimate, ProtDeepResSimulate, ProtDeepResTrain
from deepres_plugin.viewers import (DeepResEstimateViewer, DeepResSimulateViewer,
                                    DeepResTrainViewer)
from deepres_plugin.wizards import DeepResColorScaleWizard


def picture(test, path, min_size=(200, 200)):
    """The PNG exists, is big enough and not blank."""
    img = mpimg.imread(path)
    test.assertGreaterEqual(img.shape[0], min_size[0])
    test.assertGreaterEqual(img.shape[1], min_size[1])
    test.assertGreater(float(img[..., :3].std()), 0.02)
    return img


class TestViewers(BaseTest):
    """Simulate 5PTI (5 Å), train a tiny model, estimate (shipped model when present)."""

    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        pdb = H.import_structure(cls, H.structure("5pti"))
        cls.sim = cls.newProtocol(ProtDeepResSimulate, inputStructure=pdb, samplingRate=1.0,
                                  resolutionMode=1, resolution=4.0, chainResolutions="A:5")
        cls.launchProtocol(cls.sim)
        cls.train = cls.newProtocol(ProtDeepResTrain, modelName="tiny", epochs=1,
                                    stepsPerEpoch=2, batch=2, patch=24, channels=4,
                                    lastChannels=4, head="8", valMaps=1)
        cls.train.inputStructures.append(pdb)
        cls.launchProtocol(cls.train)
        kw = (dict(modelChoice=C.MODEL_STANDARD) if H.shipped_weights() else
              dict(modelChoice=C.MODEL_TRAINED, trainedModel=cls.train.outputModel))
        cls.est = cls.newProtocol(ProtDeepResEstimate, inputVolume=cls.sim.outputVolume,
                                  mask=cls.sim.outputMask, **kw)
        cls.launchProtocol(cls.est)

    def tearDown(self):
        import matplotlib.pyplot as plt

        plt.close("all")

    def viewer(self, cls, prot):
        v = cls(project=self.proj, protocol=prot)
        v.setProtocol(prot)
        return v

    def test_estimate_histogram(self):
        v = self.viewer(DeepResEstimateViewer, self.est)
        v.binWidth.set(0.1)
        views = v._getVisualizeDict()["displayHistogram"]()
        self.assertIsInstance(views[0], EmPlotter)
        picture(self, self.est._getExtraPath(C.VIEW_HISTOGRAM))

    def test_estimate_slices_grid_one_ortho(self):
        v = self.viewer(DeepResEstimateViewer, self.est)
        stats = self.est.getStats()
        self.assertAlmostEqual(v.lowest.get(), round(stats["p2_5"] - 0.05, 1))
        self.assertAlmostEqual(v.highest.get(), round(stats["p97_5"] + 0.05, 1))
        d = v._getVisualizeDict()
        for axis in (0, 1, 2):
            v.sliceAxis.set(axis)
            self.assertIsInstance(d["displaySlices"]()[0], EmPlotter)
            picture(self, self.est._getExtraPath(C.VIEW_SLICES.format(axis="xyz"[axis])))
        v.sliceAxis.set(0)
        v.sliceNumber.set(20)
        v.colorMap.set("viridis")
        self.assertIsInstance(d["displayOneSlice"]()[0], EmPlotter)
        picture(self, self.est._getExtraPath(C.VIEW_ONE_SLICE.format(axis="x", index=20)))
        v.sliceNumber.set(-1)
        d["displayOneSlice"]()
        centre = int(round(np.nonzero(H.read_mrc(self.est.outputResolution.getFileName())[0]
                                      > 0)[2].mean()))
        picture(self, self.est._getExtraPath(C.VIEW_ONE_SLICE.format(axis="x", index=centre)))
        d["displayOrthoSlices"]()
        picture(self, self.est._getExtraPath(C.VIEW_SLICES.format(axis="xyz")))
        v.sliceNumber.set(10_000)
        views = d["displayOneSlice"]()
        self.assertIsInstance(views[0], MessageView)
        self.assertIn("outside the map", views[0].getMessage())

    def test_estimate_chimerax_script(self):
        v = self.viewer(DeepResEstimateViewer, self.est)
        v.lowest.set(3.0)
        v.highest.set(9.0)
        v.intervals.set(5)
        v.colorMap.set("viridis")
        views = v._getVisualizeDict()["displayChimera"]()
        self.assertIsInstance(views[0], ChimeraView)
        path = self.est._getExtraPath(C.VIEW_CHIMERAX)
        text = open(path, encoding="utf-8").read()
        x, y, z = H.shifts(self.sim.outputVolume)
        self.assertIn(f"voxelSize 1.00000 origin {x:.4f},{y:.4f},{z:.4f}", text)
        self.assertIn(os.path.abspath(self.sim.outputVolume.getFileName()), text)
        self.assertIn(os.path.abspath(self.est.outputResolution.getFileName()), text)
        line = [ln for ln in text.splitlines() if ln.startswith("color sample #1 map #2")][0]
        self.assertTrue(line.endswith("range 3.00,9.00"), line)
        palette = line.split("palette ")[1].split(" ")[0].split(":")
        self.assertEqual(len(palette), 5)
        self.assertEqual(palette[0], "#440154")  # viridis starts dark purple
        key = [ln for ln in text.splitlines() if ln.startswith("key ")][0]
        self.assertIn("3.0Å", key)
        self.assertIn("9.0Å", key)

    def test_simulate_viewer(self):
        v = self.viewer(DeepResSimulateViewer, self.sim)
        v.sliceAxis.set(1)
        self.assertIsInstance(v._getVisualizeDict()["displayTruthVsMap"]()[0], EmPlotter)
        picture(self, self.sim._getExtraPath(C.VIEW_SIMULATION.format(axis="y")))
        self.assertIsInstance(v._getVisualizeDict()["displayChimera"]()[0], ChimeraView)
        text = open(self.sim._getExtraPath(C.VIEW_CHIMERAX), encoding="utf-8").read()
        self.assertIn("range 5.00,6.00", text)  # one chain at 5 Å: range widened by 1 Å

    def test_train_viewer(self):
        v = self.viewer(DeepResTrainViewer, self.train)
        self.assertIsInstance(v._getVisualizeDict()["displayLoss"]()[0], EmPlotter)
        picture(self, self.train._getExtraPath(C.VIEW_LOSS))
        views = v._getVisualizeDict()["displayHistory"]()
        self.assertIsInstance(views[0], TextView)
        self.assertEqual(views[0].getFileList(), [self.train.getHistoryFile()])

    def test_colour_wizard_targets_viewer(self):
        targets = dict(DeepResColorScaleWizard._targets)
        self.assertEqual(sorted(targets[DeepResEstimateViewer]),
                         ["colorMap", "highest", "intervals", "lowest"])
