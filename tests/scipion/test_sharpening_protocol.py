"""ProtDeepResSharpening in a real Scipion project: a simulated 3.5 Å map of 5PTI imported
with its two half maps (independent noise) and an origin, the atomic model, a B sweep; the
outputs keep the input grid; the viewer draws every view. Shipped `standard` weights when
present, else a tiny model trained here (plumbing only)."""
import csv
import json
import os

import numpy as np
from pwem.viewers import EmPlotter
from pyworkflow.tests import BaseTest, setupTestProject
from pyworkflow.viewer import MessageView, TextView

import scipion_helpers as H
from deepres_plugin import constants as C
from deepres_plugin.protocols import ProtDeepResSharpening, ProtDeepResTrain
from deepres_plugin.protocols.protocol_sharpening import HALVES_FROM_VOLUMES, HALVES_NONE
from deepres_plugin.viewers import DeepResSharpeningViewer


def write_halves(out_dir, seed=4):
    """5PTI at 3.5 Å: half maps = signal + independent noise (0.1 × max), map = their mean."""
    from deepres_plugin.backend.simulate import load_structure, simulate
    from deepres_plugin.backend.volume import Volume, write_volume

    sim = simulate(load_structure(H.structure("5pti")), 1.0, 3.5, padding=10)
    rng = np.random.default_rng(seed)
    sd = 0.1 * float(sim.map.max())
    h1, h2 = (sim.map + rng.normal(0, sd, sim.map.shape).astype(np.float32) for _ in (1, 2))
    grid = Volume(sim.map, 1.0)
    os.makedirs(out_dir, exist_ok=True)
    paths = {}
    for name, data in (("map", 0.5 * (h1 + h2)), ("half1", h1), ("half2", h2),
                       ("mask", sim.mask.astype(np.float32))):
        paths[name] = write_volume(os.path.join(out_dir, f"{name}.mrc"), grid, data)
    return paths, sim


class TestSharpening(BaseTest):
    ORIGIN = None  # set in setUpClass: the model's coordinates (the model must overlay)

    @classmethod
    def setUpClass(cls):
        from pwem.protocols import ProtImportVolumes

        setupTestProject(cls)
        paths, cls.simulation = write_halves(cls.getOutputPath("maps"))
        cls.ORIGIN = cls.simulation.origin
        imp = cls.newProtocol(ProtImportVolumes, filesPath=paths["map"], samplingRate=1.0,
                              setHalfMaps=True, half1map=paths["half1"],
                              half2map=paths["half2"], setOrigCoord=True,
                              x=-cls.ORIGIN[0], y=-cls.ORIGIN[1], z=-cls.ORIGIN[2])
        cls.launchProtocol(imp)
        cls.vol = imp.outputVolume
        cls.mask = H.import_mask(cls, paths["mask"], 1.0)
        cls.pdb = H.import_structure(cls, H.structure("5pti"))
        if H.shipped_weights():
            kw = dict(modelChoice=C.MODEL_STANDARD)
        else:
            train = cls.newProtocol(ProtDeepResTrain, modelName="tiny", epochs=1,
                                    stepsPerEpoch=2, batch=2, patch=24, channels=4,
                                    lastChannels=4, head="8", valMaps=1)
            train.inputStructures.append(cls.pdb)
            cls.launchProtocol(train)
            kw = dict(modelChoice=C.MODEL_TRAINED, trainedModel=train.outputModel)
        cls.model_kw = kw
        cls.prot = cls.newProtocol(ProtDeepResSharpening, inputVolume=cls.vol, mask=cls.mask,
                                   inputStructure=cls.pdb, bRange="-100:0:50", **kw)
        cls.launchProtocol(cls.prot)

    def test_outputs_on_input_grid(self):
        from deepres_plugin.backend.sharpening import sharpen

        self.assertTrue(self.vol.hasHalfMaps())
        d = self.prot.getResult()
        for out in (self.prot.outputVolume, self.prot.outputLocalFSC):
            self.assertAlmostEqual(out.getSamplingRate(), 1.0)
            np.testing.assert_allclose(H.shifts(out), H.shifts(self.vol), atol=1e-4)
            data, s, origin = H.read_mrc(out.getFileName())
            self.assertEqual(data.shape, self.simulation.map.shape)
            # with an atomic model Scipion's origin wins over the file header (the model's frame)
            np.testing.assert_allclose(origin, self.ORIGIN, atol=1e-3)
        sharp, _, _ = H.read_mrc(self.prot.outputVolume.getFileName())
        src, _, _ = H.read_mrc(self.vol.getFileName())
        np.testing.assert_allclose(sharp, sharpen(src, 1.0, d["best_b"], d["lowpass"]),
                                   atol=1e-4 * float(np.abs(src).max()))
        lf, _, _ = H.read_mrc(self.prot.outputLocalFSC.getFileName())
        mask, _, _ = H.read_mrc(self.mask.getFileName())
        np.testing.assert_array_equal(lf > 0, mask > 0.5)
        self.assertAlmostEqual(float(np.median(lf[mask > 0.5])), d["localfsc"]["p50"], places=3)
        self.assertTrue(2.0 < d["localfsc"]["p50"] < 5.0)

    def test_table_json_summary(self):
        d = self.prot.getResult()
        self.assertEqual(d["bfactors"], [0.0, -50.0, -100.0])
        self.assertEqual(len(d["cc"]), 3)
        self.assertTrue(all(0.5 < cc <= 1.0 for cc in d["cc"]))  # model overlays the map
        with open(self.prot._getExtraPath("sharpening.csv")) as fh:
            rows = list(csv.DictReader(fh))
        self.assertEqual([float(r["b_factor"]) for r in rows], d["bfactors"])
        summary = " ".join(self.prot.summary())
        self.assertIn("Local FSC (0.5) 20th percentile", summary)
        self.assertIn("Output map sharpened with B = %.1f" % d["best_b"], summary)
        self.assertIn("Model–map CC is highest", summary)
        self.assertIn("[RamirezAportela2019]", " ".join(self.prot.methods()))
        self.assertEqual(d["met"], d["recommended_b"] is not None)
        self.assertEqual(self.prot.outputVolume._deepres_bfactor.get(), d["best_b"])

    def test_half_maps_as_two_volumes_and_validation(self):
        h1 = H.import_volume(self, self.vol.getHalfMaps(asList=True)[0], 1.0)
        h2 = H.import_volume(self, self.vol.getHalfMaps(asList=True)[1], 1.0)
        plain = H.import_volume(self, self.vol.getFileName(), 1.0)

        def errors(**kw):
            return " | ".join(self.newProtocol(ProtDeepResSharpening, **kw).validate())

        self.assertIn("has no half maps", errors(inputVolume=plain, **self.model_kw))
        self.assertIn("Only one half map", errors(inputVolume=plain,
                                                  halvesFrom=HALVES_FROM_VOLUMES, half1=h1,
                                                  **self.model_kw))
        self.assertIn("step must be > 0", errors(inputVolume=self.vol, bRange="-100:0:0",
                                                 **self.model_kw))
        small, _, _ = H.simulate_map("1a8o", self.getOutputPath("small"), 5.0)
        other = H.import_volume(self, small, 1.0)
        self.assertIn("Half map 2 box", errors(inputVolume=plain, halvesFrom=HALVES_FROM_VOLUMES,
                                               half1=h1, half2=other, **self.model_kw))
        prot = self.newProtocol(ProtDeepResSharpening, inputVolume=plain,
                                halvesFrom=HALVES_FROM_VOLUMES, half1=h1, half2=h2, bRange="0",
                                **self.model_kw)
        self.assertEqual(prot.validate(), [])
        self.assertIn("automatic mask", " ".join(prot.warnings()))
        self.launchProtocol(prot)
        d = prot.getResult()
        self.assertEqual(d["bfactors"], [0.0])
        self.assertFalse(d["met"])
        self.assertTrue(os.path.isfile(prot._getExtraPath("mask.mrc")))
        ref = self.prot.getResult()["localfsc"]["p50"]
        self.assertLess(abs(d["localfsc"]["p50"] - ref), 1.0)  # auto mask vs given mask

    def test_atomic_model_as_reference_without_half_maps(self):
        """A map without half maps + its atomic model: the local FSC of the map vs the model is
        the reference; the outputs keep the input grid; a map imported without the model's
        origin is refused with the Scipion hint."""
        plain = H.import_volume(self, self.vol.getFileName(), 1.0, origin=self.ORIGIN)

        def protocol(**kw):
            return self.newProtocol(ProtDeepResSharpening, mask=self.mask, **self.model_kw, **kw)

        self.assertIn("or give an atomic model", " | ".join(protocol(inputVolume=plain)
                                                             .validate()))
        both = protocol(inputVolume=self.vol, inputStructure=self.pdb, halvesFrom=HALVES_NONE)
        self.assertEqual(both._halfPaths(), ["", ""])
        prot = protocol(inputVolume=plain, inputStructure=self.pdb, bRange="-50,0")
        self.assertEqual(prot.validate(), [])
        self.assertIn("against the atomic model", " ".join(prot.warnings()))
        self.launchProtocol(prot)
        d = prot.getResult()
        self.assertEqual(d["reference"], "model")
        self.assertIsNone(d["half1"])
        self.assertEqual(d["bfactors"], [0.0, -50.0])
        self.assertTrue(2.5 < d["localfsc"]["p50"] < 4.5)
        self.assertIn("map vs atomic model", " ".join(prot.summary()))
        self.assertIn("the map vs the atomic model", " ".join(prot.methods()))
        for out in (prot.outputVolume, prot.outputLocalFSC):
            np.testing.assert_allclose(H.shifts(out), H.shifts(plain), atol=1e-4)
        lf, _, _ = H.read_mrc(prot.outputLocalFSC.getFileName())
        mask, _, _ = H.read_mrc(self.mask.getFileName())
        self.assertAlmostEqual(float(np.median(lf[mask > 0.5])), d["localfsc"]["p50"], places=3)
        centred = H.import_volume(self, self.vol.getFileName(), 1.0)  # Scipion centres the box
        bad = protocol(inputVolume=centred, inputStructure=self.pdb, bRange="0")
        with self.assertRaises(Exception):
            self.launchProtocol(bad)
        self.assertIn("origin as set at import", bad.getErrorMessage())

    def test_viewer_actions(self):
        import matplotlib.image as mpimg

        v = DeepResSharpeningViewer(project=self.proj, protocol=self.prot)
        v.setProtocol(self.prot)
        d = v._getVisualizeDict()
        self.assertIsInstance(d["displayPlot"]()[0], EmPlotter)
        self.assertIsInstance(d["displayTable"]()[0], TextView)
        msg = d["displayRecommendation"]()[0]
        self.assertIsInstance(msg, MessageView)
        self.assertIn("B = ", DeepResSharpeningViewer.recommendation(self.prot.getResult()))
        for key, name in (("displayDeepResSlices", "view_sharpened_deepres_slices.png"),
                          ("displayLocalFSCSlices", "view_localfsc_slices.png")):
            self.assertIsInstance(d[key]()[0], EmPlotter)
            img = mpimg.imread(self.prot._getExtraPath(name))
            self.assertGreater(img.shape[1], 300)
            self.assertGreater(float(img[..., :3].std()), 0.02)
        lo, hi = v._range()
        self.assertLess(lo, hi)
        res = self.prot.getResult()
        self.assertLessEqual(lo, res["localfsc"]["p5"])
        with open(self.prot._getExtraPath("sharpening.json")) as fh:
            self.assertEqual(json.load(fh)["bfactors"], res["bfactors"])
