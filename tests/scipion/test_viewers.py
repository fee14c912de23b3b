"""Every viewer action, headless (Agg): it writes its PNG / ChimeraX script under the run's
extra/ and returns the matching Scipion view."""
import os

import matplotlib.image as mpimg
import numpy as np
from matplotlib import colormaps
from matplotlib.colors import to_hex
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


def cmap_hex(name, n):
    """``n`` hex colours sampled evenly along a matplotlib colour map (expected palette)."""
    return [to_hex(colormaps[name](t)) for t in np.linspace(0.0, 1.0, n)]


def check_chimerax(test, path, map_obj, res_obj, lo, hi, colours):
    """The ChimeraX script at ``path``: map and resolution map opened by paths relative to the
    script's folder, both on the Scipion grid of ``map_obj``, a surface level from the map
    inside the mask (resolution > 0), outside-mask values set to 10000 in #3, and #1 coloured
    from #3 with stops ``colours`` evenly over ``lo``..``hi`` Å, then grey from 101 Å; the key
    shows the same colours labelled from ``lo`` to ``hi`` Å. Returns the script's text."""
    from deepres_plugin.backend import report

    text = open(path, encoding="utf-8").read()
    lines = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    here = os.path.dirname(os.path.abspath(path))
    opened = [ln.split('"')[1] for ln in lines if ln.startswith("open ")]
    test.assertEqual(len(opened), 2, lines)
    for rel, obj in zip(opened, (map_obj, res_obj)):
        test.assertFalse(os.path.isabs(rel), rel)
        test.assertTrue(os.path.samefile(os.path.join(here, rel), obj.getFileName()), rel)
    x, y, z = H.shifts(map_obj)
    grid = f"voxelSize {map_obj.getSamplingRate():.5f} origin {x:.4f},{y:.4f},{z:.4f}"
    surface = [ln for ln in lines if ln.startswith(f"volume #1 {grid} style surface level ")]
    test.assertEqual(len(surface), 1, lines)
    test.assertIn(f"volume #2 {grid}", lines)
    data, res = H.read_mrc(map_obj.getFileName())[0], H.read_mrc(res_obj.getFileName())[0]
    level = float(surface[0].split(" level ")[1])
    test.assertAlmostEqual(level / report.contour_level(data, res > 0), 1.0, delta=1e-5)
    test.assertGreater(np.mean(res[data > level] > 0), 0.5)  # the surface is masked density
    test.assertIn("volume threshold #2 minimum 0.001 set 10000 modelId #3", lines)
    colour = [ln for ln in lines if ln.startswith("color ")]
    test.assertEqual(len(colour), 1, lines)
    test.assertTrue(colour[0].startswith("color sample #1 map #3 palette "), colour[0])
    stops = [st.split(",") for st in colour[0].split(" palette ")[1].split(":")]
    values, got = [float(v) for v, _ in stops], [c for _, c in stops]
    want = list(np.linspace(lo, hi, len(colours))) + [100.0, 101.0]
    test.assertEqual(len(values), len(want), stops)
    for v, w in zip(values, want):
        test.assertAlmostEqual(v, w, delta=0.006)
    test.assertEqual(got, list(colours) + [colours[-1], "#b4b4b4"])  # no value: grey
    key = [ln for ln in lines if ln.startswith("key ")]
    test.assertEqual(len(key), 1, lines)
    entries = [e.split(":", 1) for e in key[0][4:].split(" pos ")[0].split()]
    test.assertEqual([c for c, _ in entries], list(colours))
    test.assertEqual(entries[0][1], f"{lo:.1f}Å")
    test.assertEqual(entries[-1][1], f"{hi:.1f}Å")
    return text


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
        path = self.est._getExtraPath(C.VIEW_CHIMERAX)
        show = v._getVisualizeDict()["displayChimera"]
        inp, res = self.sim.outputVolume, self.est.outputResolution
        # (lowest, highest, intervals, colour map) → (range, colours) the script must use
        for lowest, highest, n, cmap, lo, hi, colours in (
                (3.0, 9.0, 5, "viridis", 3.0, 9.0, cmap_hex("viridis", 5)),
                (7.5, 4.0, 7, "plasma", 4.0, 7.5, cmap_hex("plasma", 7)),  # swapped limits
                (5.0, 5.0, 3, "no such map", *v._defaultRange(), cmap_hex("viridis", 3))):
            v.lowest.set(lowest)
            v.highest.set(highest)
            v.intervals.set(n)
            v.colorMap.set(cmap)
            if os.path.exists(path):
                os.remove(path)
            views = show()
            self.assertIsInstance(views[0], ChimeraView)
            check_chimerax(self, path, inp, res, lo, hi, colours)
        self.assertEqual(cmap_hex("viridis", 5)[0], "#440154")  # viridis starts dark purple
        self.assertNotEqual(cmap_hex("plasma", 7), cmap_hex("viridis", 7))
        v.highest.set(120.0)  # ≥ 100 Å would be painted as 'no value': refused
        views = show()
        self.assertIsInstance(views[0], MessageView)
        self.assertIn("100", views[0].getMessage())

    def test_simulate_viewer(self):
        v = self.viewer(DeepResSimulateViewer, self.sim)
        v.sliceAxis.set(1)
        self.assertIsInstance(v._getVisualizeDict()["displayTruthVsMap"]()[0], EmPlotter)
        picture(self, self.sim._getExtraPath(C.VIEW_SIMULATION.format(axis="y")))
        self.assertIsInstance(v._getVisualizeDict()["displayChimera"]()[0], ChimeraView)
        # one chain at 5 Å: range widened by 1 Å; the default colour map, 9 stops
        check_chimerax(self, self.sim._getExtraPath(C.VIEW_CHIMERAX), self.sim.outputVolume,
                       self.sim.outputTruth, 5.0, 6.0, cmap_hex(C.DEFAULT_COLORMAP, 9))

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
