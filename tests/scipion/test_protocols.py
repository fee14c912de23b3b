"""Real Scipion projects under plain pytest: Simulate, Train (tiny) → Estimate with the trained
model, Estimate with the shipped weights, and the _validate messages for bad inputs."""
import json
import os

import numpy as np
import pytest
from pyworkflow.tests import BaseTest, setupTestProject
from pyworkflow.viewer import MessageView

import scipion_helpers as H
from deepres_plugin import constants as C
from deepres_plugin.protocols import ProtDeepResEstimate, ProtDeepResSimulate, ProtDeepResTrain
from deepres_plugin.viewers import DeepResEstimateViewer


class TestSimulate(BaseTest):
    """1MOL (two chains) simulated with chain A at 3 Å and chain B at 6 Å."""

    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        cls.path = H.structure("1mol")
        cls.pdb = H.import_structure(cls, cls.path)
        cls.sim = cls.newProtocol(ProtDeepResSimulate, inputStructure=cls.pdb, samplingRate=1.0,
                                  resolutionMode=1, resolution=5.0, chainResolutions="A:3, B:6",
                                  noise=0.0)
        cls.launchProtocol(cls.sim)

    def test_outputs_grid_and_origin(self):
        import gemmi

        vols = [self.sim.outputVolume, self.sim.outputTruth, self.sim.outputMask]
        data, sampling, origin = H.read_mrc(vols[0].getFileName())
        for vol in vols:
            self.assertAlmostEqual(vol.getSamplingRate(), 1.0)
            np.testing.assert_allclose(H.shifts(vol), origin, atol=1e-4)
            d, s, o = H.read_mrc(vol.getFileName())
            self.assertEqual(d.shape, data.shape)
            self.assertAlmostEqual(s, 1.0, places=5)
        # the box centre, in model coordinates, is the centre of the atoms' bounding box
        st = gemmi.read_structure(self.path)
        pos = np.array([cra.atom.pos.tolist() for cra in st[0].all()])
        centre = np.array(origin) + np.array(data.shape[::-1]) * 1.0 / 2
        np.testing.assert_allclose(centre, (pos.max(0) + pos.min(0)) / 2, atol=1e-3)

    def test_truth_values_per_chain(self):
        import gemmi

        truth, _, origin = H.read_mrc(self.sim.outputTruth.getFileName())
        mask, _, _ = H.read_mrc(self.sim.outputMask.getFileName())
        self.assertEqual(sorted(np.unique(truth).tolist()), [0.0, 3.0, 6.0])
        np.testing.assert_array_equal(truth > 0, mask > 0.5)
        st = gemmi.read_structure(self.path)
        for chain, want in (("A", 3.0), ("B", 6.0)):
            xyz = np.array([a.pos.tolist() for res in st[0][chain] for a in res])
            idx = np.rint((xyz - np.array(origin)) / 1.0).astype(int)
            vals = truth[idx[:, 2], idx[:, 1], idx[:, 0]]
            self.assertGreater(np.mean(vals == want), 0.95, chain)
        with open(self.sim._getExtraPath(C.SIM_JSON)) as fh:
            self.assertEqual(json.load(fh)["groups"], {"A": 3.0, "B": 6.0})
        self.assertIn("A: 3 Å, B: 6 Å", " ".join(self.sim.summary()))

    def test_validate_messages(self):
        bad = self.newProtocol(ProtDeepResSimulate, inputStructure=self.pdb, samplingRate=2.0,
                               resolution=3.0)
        self.assertTrue(any("beyond Nyquist" in e and "≥ 4 Å" in e for e in bad.validate()))
        bad = self.newProtocol(ProtDeepResSimulate, inputStructure=self.pdb, resolutionMode=1,
                               chainResolutions="A3")
        self.assertTrue(any("bad chain resolution 'A3'" in e for e in bad.validate()))
        ok = self.newProtocol(ProtDeepResSimulate, inputStructure=self.pdb, resolutionMode=1,
                              chainResolutions="A:3;B:4.5")
        self.assertEqual(ok.validate(), [])


class TestTrainThenEstimate(BaseTest):
    """A tiny training run (1 epoch, 3 steps, 4 channels) gives a DeepResModel that the Estimate
    protocol accepts; the estimate keeps the input's grid, voxel size and origin."""

    ORIGIN = (-12.5, 3.0, 40.25)

    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        pdb = H.import_structure(cls, H.structure("5pti"))
        cls.train = cls.newProtocol(  # one imported structure + one through the file pattern
            ProtDeepResTrain, modelName="tiny", epochs=1, stepsPerEpoch=3, batch=2, patch=24,
            channels=4, lastChannels=4, head="8", valMaps=1, numberOfThreads=2, calibrationMaps=4,
            structureFiles=H.structure("1a8o").replace("1a8o.cif", "1a8?.cif"))
        cls.train.inputStructures.append(pdb)
        cls.launchProtocol(cls.train)
        mpath, _, _ = H.simulate_map("5pti", cls.getOutputPath("maps"), 5.0)
        cls.vol = H.import_volume(cls, mpath, 1.0, origin=cls.ORIGIN)

    def test_trained_model_output(self):
        model = self.train.outputModel
        self.assertTrue(model.exists())
        self.assertEqual(model.getModelName(), "tiny")
        self.assertEqual(model.getResolutionRange(), (2.5, 13.0))
        with open(self.train.getHistoryFile()) as fh:
            self.assertEqual(len(fh.read().strip().splitlines()), 2)  # header + 1 epoch
        self.assertTrue(os.path.isfile(self.train._getExtraPath(C.TRAIN_LOSS_PNG)))
        log = open(self.train.getStdoutLog()).read()
        self.assertIn("epoch 1/1: loss", log)
        self.assertIn("training on 1 structure(s), validating on 1: 5pti.cif.gz", log)
        card = json.load(open(model.getCardFile()))
        self.assertEqual(card["train_ids"], ["1a8o"])  # 2 structures: 1 held out (the last)
        self.assertEqual(card["val_ids"], ["5pti"])
        self.assertEqual(card["calibration"]["maps"], 4)
        self.assertEqual(card["calibration"]["structures"], ["1a8o"])

    def test_estimate_with_trained_model_keeps_grid(self):
        est = self.newProtocol(ProtDeepResEstimate, inputVolume=self.vol,
                               modelChoice=C.MODEL_TRAINED, trainedModel=self.train.outputModel)
        self.launchProtocol(est)
        out = est.outputResolution
        self.assertAlmostEqual(out.getSamplingRate(), 1.0)
        np.testing.assert_allclose(H.shifts(out), H.shifts(self.vol))
        np.testing.assert_allclose(H.shifts(out), self.ORIGIN)
        res, s_out, o_out = H.read_mrc(out.getFileName())
        src, s_in, _ = H.read_mrc(self.vol.getFileName())
        np.testing.assert_allclose(o_out, self.ORIGIN, atol=1e-3)  # header too
        self.assertEqual(res.shape, src.shape)
        self.assertAlmostEqual(s_out, s_in, places=5)
        inside = res[res > 0]
        self.assertGreater(inside.size, 1000)
        self.assertTrue(2.5 - 1e-3 <= inside.min() and inside.max() <= 13.0 + 1e-3)
        self.assertTrue(est.hasAttribute("outputMask"))  # no mask given: auto-mask output
        mask, _, _ = H.read_mrc(est.outputMask.getFileName())
        np.testing.assert_array_equal(mask > 0.5, res > 0)
        stats = est.getStats()
        self.assertAlmostEqual(stats["median"], float(np.median(inside)), places=3)
        self.assertIn("Model: tiny (calibrated)", " ".join(est.summary()))

    def test_scipion_sampling_wins_over_header(self):
        vol = H.import_volume(self, self.vol.getFileName(), 1.1)  # header says 1.0 Å/px
        est = self.newProtocol(ProtDeepResEstimate, inputVolume=vol,
                               modelChoice=C.MODEL_TRAINED, trainedModel=self.train.outputModel)
        self.launchProtocol(est)
        _, s_out, _ = H.read_mrc(est.outputResolution.getFileName())
        self.assertAlmostEqual(s_out, 1.1, places=4)
        self.assertAlmostEqual(est.outputResolution.getSamplingRate(), 1.1)
        self.assertAlmostEqual(H.read_mrc(est._getExtraPath("input_map.mrc"))[1], 1.1, places=4)
        self.assertIn("differs from Scipion's", open(est.getStdoutLog()).read())

    def test_validate_messages(self):
        def errors(**kw):
            return " | ".join(self.newProtocol(ProtDeepResEstimate, **kw).validate())

        self.assertIn("needs a map sampled at ≤ 0.75",
                      errors(inputVolume=self.vol, modelChoice=C.MODEL_HIGH))
        self.assertIn("Choose a trained model",
                      errors(inputVolume=self.vol, modelChoice=C.MODEL_TRAINED))
        coarse = H.import_volume(self, self.vol.getFileName(), 7.0)
        self.assertIn("too coarse", errors(inputVolume=coarse, modelChoice=C.MODEL_TRAINED,
                                           trainedModel=self.train.outputModel))
        small, _, _ = H.simulate_map("1a8o", self.getOutputPath("maps"), 5.0)
        mask = H.import_mask(self, small, 1.0)
        self.assertIn("Mask box", errors(inputVolume=self.vol, mask=mask,
                                         modelChoice=C.MODEL_TRAINED,
                                         trainedModel=self.train.outputModel))
        no_mask = self.newProtocol(ProtDeepResEstimate, inputVolume=self.vol)
        self.assertIn("automatic mask", " ".join(no_mask.warnings()))
        bad_train = self.newProtocol(ProtDeepResTrain, samplingRate=1.5, resMin=2.5,
                                     modelName="a b", head="x", structureFiles="/nowhere/*.cif")
        msg = " | ".join(bad_train.validate())
        for text in ("beyond Nyquist", "Model name", "Head layers", "nothing matches",
                     "No training structures"):
            self.assertIn(text, msg)


@pytest.mark.skipif(not H.shipped_weights(), reason="shipped weights not in the package yet")
class TestEstimateShipped(BaseTest):
    """Shipped `standard` model on a simulated 5 Å map (noise 0.08) of a val structure."""

    ORIGIN = (10.0, -20.0, 5.5)

    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        mpath, kpath, _ = H.simulate_map("3so6", cls.getOutputPath("maps"), 5.0)
        cls.vol = H.import_volume(cls, mpath, 1.0, origin=cls.ORIGIN)
        cls.mask = H.import_mask(cls, kpath, 1.0)
        cls.est = cls.newProtocol(ProtDeepResEstimate, inputVolume=cls.vol, mask=cls.mask)
        cls.launchProtocol(cls.est)

    def test_median_close_to_truth(self):
        median = self.est.getStats()["median"]
        self.assertLess(abs(median - 5.0), 0.5, median)
        self.assertFalse(self.est.hasAttribute("outputMask"))
        # a single map: the outputs of old (no set output, serial steps by default)
        self.assertFalse(self.est.isSet() or self.est.hasAttribute("outputResolutions"))
        self.assertEqual(self.est.numberOfThreads.get(), 1)

    def test_grid_sampling_origin(self):
        out = self.est.outputResolution
        self.assertAlmostEqual(out.getSamplingRate(), self.vol.getSamplingRate())
        np.testing.assert_allclose(H.shifts(out), H.shifts(self.vol))
        res, s, origin = H.read_mrc(out.getFileName())
        mask, _, _ = H.read_mrc(self.mask.getFileName())
        np.testing.assert_array_equal(res > 0, mask > 0.5)
        self.assertAlmostEqual(s, 1.0, places=5)
        for name in (C.ESTIMATE_HISTOGRAM, C.ESTIMATE_SLICES, C.ESTIMATE_CHIMERAX):
            self.assertTrue(os.path.getsize(self.est._getExtraPath(name)) > 100, name)

    def test_uncertainty_outputs(self):
        """'Estimate the uncertainty?' → outputSpread (Å, on the input grid and origin, > 0
        exactly inside the mask) and outputOutOfDistribution; 9 copies are refused."""
        too_many = self.newProtocol(ProtDeepResEstimate, inputVolume=self.vol, mask=self.mask,
                                    uncertainty=True, ttaCopies=9)
        self.assertIn("2 to 8 copies", " ".join(too_many.validate()))
        est = self.newProtocol(ProtDeepResEstimate, inputVolume=self.vol, mask=self.mask,
                               uncertainty=True, ttaCopies=2)
        self.launchProtocol(est)
        spread, s, _ = H.read_mrc(est.outputSpread.getFileName())
        mask, _, _ = H.read_mrc(self.mask.getFileName())
        np.testing.assert_array_equal(spread > 0, mask > 0.5)
        self.assertAlmostEqual(s, 1.0, places=5)
        np.testing.assert_allclose(H.shifts(est.outputSpread), H.shifts(self.vol))
        # the spread of a 5 Å map: a fraction of an Å to a few Å, not 0 and not 10
        median = float(np.median(spread[mask > 0.5]))
        self.assertTrue(0.2 < median < 3.0, median)
        ood, _, _ = H.read_mrc(est.outputOutOfDistribution.getFileName())
        self.assertTrue(set(np.unique(ood)) <= {0.0, 1.0})
        self.assertFalse(ood[mask <= 0.5].any())
        self.assertEqual(est._readJson()["uncertainty"]["copies"], 2)
        self.assertIn("Spread (2 copies", " ".join(est.summary()))
        # the viewer shows it (its own PNG); a run without uncertainty says what to do
        for prot in (est, self.est):
            v = DeepResEstimateViewer(project=self.proj, protocol=prot)
            v.setProtocol(prot)
            views = v._getVisualizeDict()["displaySpread"]()
            if prot is est:
                self.assertGreater(os.path.getsize(est._getExtraPath(C.VIEW_SPREAD)), 10_000)
                self.assertNotIsInstance(views[0], MessageView)
            else:
                self.assertIsInstance(views[0], MessageView)
                self.assertIn("Estimate the uncertainty?", views[0].getMessage())
        # the resolution map is the plain estimate, whatever the copies
        np.testing.assert_allclose(H.read_mrc(est.outputResolution.getFileName())[0],
                                   H.read_mrc(self.est.outputResolution.getFileName())[0],
                                   atol=1e-4)
