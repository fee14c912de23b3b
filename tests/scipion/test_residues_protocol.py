"""ProtDeepResEstimate with an atomic model in a real Scipion project: the demo's 4-helix bundle
(chains at 3, 4.5, 6 and 8 Å) moved by (30, -12, 7) Å and its map imported with the origin that
overlays it; the annotated AtomStruct output, the summary, the viewer's per-residue plot and
ChimeraX script; the same map imported without that origin (Scipion centres it) is refused."""
import csv
import os

import numpy as np
import pytest
from pwem.viewers import ChimeraView, EmPlotter
from pyworkflow.tests import BaseTest, setupTestProject
from pyworkflow.viewer import MessageView

import scipion_helpers as H
from deepres_plugin import constants as C
from deepres_plugin.protocols import ProtDeepResEstimate
from deepres_plugin.tests.helpers import bundle_map
from deepres_plugin.viewers import DeepResEstimateViewer
from test_viewers import picture


@pytest.mark.skipif(not H.shipped_weights(), reason="shipped weights not in the package yet")
class TestEstimateWithAtoms(BaseTest):

    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        import gemmi

        out = cls.getOutputPath("bundle")
        shift = np.array([30.0, -12.0, 7.0])  # away from the centred box Scipion would assume
        origin = np.array(H.read_mrc(bundle_map(out)[0])[2]) + shift
        cls.paths = bundle_map(out, origin=origin)
        st = gemmi.read_structure(os.path.join(out, "bundle.cif"))
        for cra in st[0].all():
            cra.atom.pos = gemmi.Position(*(np.array(cra.atom.pos.tolist()) + shift))
        st.make_mmcif_document().write_file(os.path.join(out, "moved.cif"))
        cls.vol = H.import_volume(cls, cls.paths[0], 1.0, origin=origin)
        cls.mask = H.import_mask(cls, cls.paths[1], 1.0)
        cls.pdb = H.import_structure(cls, os.path.join(out, "moved.cif"))
        cls.est = cls.newProtocol(ProtDeepResEstimate, inputVolume=cls.vol, mask=cls.mask,
                                  inputStructure=cls.pdb, modelChoice=C.MODEL_STANDARD)
        cls.launchProtocol(cls.est)

    def test_annotated_structure_output(self):
        import gemmi

        atoms = self.est.outputAtomStruct
        self.assertTrue(atoms.getFileName().endswith("resolution_residues.cif"))
        with open(self.est._getExtraPath(C.ESTIMATE_RESIDUE_CSV)) as fh:
            rows = list(csv.DictReader(fh))
        self.assertEqual(len(rows), 56)
        st = gemmi.read_structure(atoms.getFileName())
        bs = [r[0].b_iso for ch in st[0] for r in ch]
        np.testing.assert_allclose(bs, [float(r["median"]) for r in rows], atol=0.006)
        res, _, _ = H.read_mrc(self.est.outputResolution.getFileName())
        truth, _, _ = H.read_mrc(self.paths[2])
        per_chain = []
        for chain, t in zip("ABCD", (3.0, 4.5, 6.0, 8.0)):
            med = np.median([float(r["median"]) for r in rows if r["chain"] == chain])
            self.assertLess(abs(med - np.median(res[truth == t])), 0.25, chain)
            per_chain.append(med)
        self.assertTrue(np.all(np.diff(per_chain) > 0.5), per_chain)
        self.assertIn("Per residue (56 residues, 0 without mask voxel)",
                      " ".join(self.est.summary()))
        for name in (C.ESTIMATE_RESIDUE_PLOT, C.ESTIMATE_RESIDUE_CHIMERAX):
            self.assertGreater(os.path.getsize(self.est._getExtraPath(name)), 100, name)

    def test_viewer_residue_plot_and_chimerax(self):
        v = DeepResEstimateViewer(project=self.proj, protocol=self.est)
        v.setProtocol(self.est)
        v.colorMap.set("plasma")
        d = v._getVisualizeDict()
        self.assertIsInstance(d["displayResidues"]()[0], EmPlotter)
        picture(self, self.est._getExtraPath(C.VIEW_RESIDUES), (400, 600))
        self.assertIsInstance(d["displayResidueChimera"]()[0], ChimeraView)
        with open(self.est._getExtraPath(C.VIEW_RESIDUE_CHIMERAX)) as fh:
            text = fh.read()
        self.assertIn('open "resolution_residues.cif"', text)
        self.assertIn("color byattribute bfactor #1 palette ", text)
        self.assertIn("#0d0887", text)  # plasma's first colour

    def test_model_outside_scipion_frame_refused(self):
        centred = H.import_volume(self, self.paths[0], 1.0)  # Scipion centres the box
        est = self.newProtocol(ProtDeepResEstimate, inputVolume=centred, mask=self.mask,
                               inputStructure=self.pdb, modelChoice=C.MODEL_STANDARD)
        with self.assertRaises(Exception):
            self.launchProtocol(est)
        self.assertIn("origin as set at import", est.getErrorMessage())
        self.assertFalse(est.hasAttribute("outputAtomStruct"))
        v = DeepResEstimateViewer(project=self.proj, protocol=est)
        v.setProtocol(est)
        self.assertIsInstance(v._getVisualizeDict()["displayResidues"]()[0], MessageView)
