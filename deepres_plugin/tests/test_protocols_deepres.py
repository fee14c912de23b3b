"""Real Scipion projects with the DeepRes protocols, on data made in code (seconds each):

- TestDeepResSimulateEstimate: atomic model (4-helix bundle, one resolution per chain) →
  pwem import → DeepRes simulate → DeepRes estimate with the shipped `standard` model.
- TestDeepResEstimateImported: a simulated map imported with pwem's ProtImportVolumes at a
  non-zero origin, estimated without a mask (automatic mask). (Form validation messages are
  tested in tests/scipion/test_protocols.py.)

Run with Scipion's runner: ``scipion3 tests deepres_plugin.tests.test_protocols_deepres``."""
import os
import unittest

import numpy as np
from pyworkflow.tests import BaseTest, setupTestProject

from deepres_plugin import constants as C
from deepres_plugin.protocols import ProtDeepResEstimate, ProtDeepResSimulate
from deepres_plugin.tests import helpers as H

NO_WEIGHTS = "the shipped standard model is not in deepres_plugin/backend/weights"


@unittest.skipUnless(H.shipped_weights("standard"), NO_WEIGHTS)
class TestDeepResSimulateEstimate(BaseTest):
    """Bundle chains A–D at 3 / 4.5 / 6 / 8 Å, simulated and estimated inside Scipion."""

    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        model = H.bundle_model(cls.getOutputPath("data"))
        cls.pdb = H.import_structure(cls, model)
        chains = ", ".join(f"{k}:{v:g}" for k, v in H.BUNDLE_RESOLUTIONS.items())
        cls.sim = cls.newProtocol(ProtDeepResSimulate, inputStructure=cls.pdb, samplingRate=1.0,
                                  resolutionMode=1, chainResolutions=chains, noise=0.05)
        cls.launchProtocol(cls.sim)
        cls.est = cls.newProtocol(ProtDeepResEstimate, inputVolume=cls.sim.outputVolume,
                                  mask=cls.sim.outputMask, modelChoice=C.MODEL_STANDARD)
        cls.launchProtocol(cls.est)

    def test_simulated_outputs(self):
        data, _, origin = H.read_mrc(self.sim.outputVolume.getFileName())
        truth, _, _ = H.read_mrc(self.sim.outputTruth.getFileName())
        mask, _, _ = H.read_mrc(self.sim.outputMask.getFileName())
        for vol in (self.sim.outputVolume, self.sim.outputTruth, self.sim.outputMask):
            self.assertAlmostEqual(vol.getSamplingRate(), 1.0)
            np.testing.assert_allclose(H.shifts(vol), origin, atol=1e-4)
        self.assertEqual(truth.shape, data.shape)
        self.assertEqual(sorted(np.unique(truth).tolist()), [0.0, 3.0, 4.5, 6.0, 8.0])
        np.testing.assert_array_equal(truth > 0, mask > 0.5)

    def test_estimate_keeps_grid_sampling_origin(self):
        out = self.est.outputResolution
        self.assertAlmostEqual(out.getSamplingRate(), 1.0)
        np.testing.assert_allclose(H.shifts(out), H.shifts(self.sim.outputVolume), atol=1e-4)
        res, sampling, origin = H.read_mrc(out.getFileName())
        src, _, src_origin = H.read_mrc(self.sim.outputVolume.getFileName())
        mask, _, _ = H.read_mrc(self.sim.outputMask.getFileName())
        self.assertEqual(res.shape, src.shape)
        self.assertAlmostEqual(sampling, 1.0, places=5)
        np.testing.assert_allclose(origin, src_origin, atol=1e-3)
        np.testing.assert_array_equal(res > 0, mask > 0.5)  # 0 outside the given mask
        self.assertFalse(self.est.hasAttribute("outputMask"))  # mask given: no auto-mask
        for name in (C.ESTIMATE_HISTOGRAM, C.ESTIMATE_SLICES, C.ESTIMATE_CHIMERAX):
            self.assertGreater(os.path.getsize(self.est._getExtraPath(name)), 100, name)

    def test_estimate_follows_the_true_resolution(self):
        res, _, _ = H.read_mrc(self.est.outputResolution.getFileName())
        truth, _, _ = H.read_mrc(self.sim.outputTruth.getFileName())
        medians = [float(np.median(res[truth == v])) for v in H.BUNDLE_RESOLUTIONS.values()]
        self.assertEqual(medians, sorted(medians), medians)  # A (3 Å) finest … D (8 Å) coarsest
        self.assertGreater(medians[-1] - medians[0], 1.5, medians)
        stats = self.est.getStats()
        inside = res[res > 0]
        self.assertAlmostEqual(stats["median"], float(np.median(inside)), places=3)
        self.assertTrue(3.0 < stats["median"] < 7.0, stats)
        summary = " ".join(self.est.summary())
        self.assertIn("Model: standard", summary)
        self.assertIn("Median resolution", summary)


@unittest.skipUnless(H.shipped_weights("standard"), NO_WEIGHTS)
class TestDeepResEstimateImported(BaseTest):
    """A uniform 5 Å bundle map imported at origin (-12.5, 3, 40.25) Å, estimated without mask."""

    ORIGIN = (-12.5, 3.0, 40.25)

    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        cls.map, cls.mask_file, _ = H.bundle_map(cls.getOutputPath("data"), 5.0, noise=0.08,
                                                 origin=cls.ORIGIN)
        cls.vol = H.import_volume(cls, cls.map, 1.0, origin=cls.ORIGIN)
        cls.est = cls.newProtocol(ProtDeepResEstimate, inputVolume=cls.vol,
                                  modelChoice=C.MODEL_STANDARD)
        cls.launchProtocol(cls.est)

    def test_auto_mask_and_origin(self):
        out = self.est.outputResolution
        np.testing.assert_allclose(H.shifts(out), self.ORIGIN, atol=1e-4)
        res, sampling, origin = H.read_mrc(out.getFileName())
        np.testing.assert_allclose(origin, self.ORIGIN, atol=1e-3)  # the MRC header too
        self.assertAlmostEqual(sampling, 1.0, places=5)
        self.assertTrue(self.est.hasAttribute("outputMask"))  # no mask given: auto-mask output
        mask, _, _ = H.read_mrc(self.est.outputMask.getFileName())
        np.testing.assert_array_equal(mask > 0.5, res > 0)
        self.assertGreater(int(np.count_nonzero(mask > 0.5)), 1000)
        self.assertIn("Automatic mask used", " ".join(self.est.summary()))
        self.assertTrue(3.5 < self.est.getStats()["median"] < 7.0, self.est.getStats())
