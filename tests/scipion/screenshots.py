"""Make the Scipion screenshots of wiki/Scipion.md (needs an X display, e.g. Xvfb).

    Xvfb :99 -screen 0 1600x1200x24 &
    DISPLAY=:99 .venv/bin/python tests/scipion/screenshots.py wiki/img

Builds a throw-away project (import 1MOL → simulate chain A at 3 Å, chain B at 6 Å → DeepRes),
grabs the Estimate and Train forms, the estimate viewer form and the project window (one
subprocess per window: pyworkflow's Tk image cache does not survive a destroyed root), and
copies the PNGs the viewer actions write. Uses the shipped `standard` model; without it, a tiny
model trained on the spot (pictures then show a flat, meaningless resolution)."""
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PROJECT = "DeepResDemo"
CHILD = "DEEPRES_SHOTS_CHILD"
if not os.environ.get(CHILD):
    spec = importlib.util.spec_from_file_location("root_conftest", REPO / "conftest.py")
    env = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(env)  # Scipion variables set before pyworkflow is imported
sys.path.insert(0, str(Path(__file__).resolve().parent))

import scipion_helpers as H  # noqa: E402


class Runner:
    """Just enough of BaseTest for the helpers: a project and launchProtocol."""

    def __init__(self, name):
        from pyworkflow.project import Manager

        self.proj = Manager().createProject(name)
        os.chdir(self.proj.path)

    def newProtocol(self, cls, **kw):
        return self.proj.newProtocol(cls, **kw)

    def launchProtocol(self, prot):
        self.proj.launchProtocol(prot, wait=True)
        assert prot.isFinished(), prot.getErrorMessage()
        return prot


def build(out):
    """Run the demo workflow; copy the PNGs written by the viewer actions to ``out``."""
    from deepres_plugin import constants as C
    from deepres_plugin.protocols import (ProtDeepResEstimate, ProtDeepResSimulate,
                                          ProtDeepResTrain)
    from deepres_plugin.viewers import DeepResEstimateViewer, DeepResSimulateViewer

    run = Runner(PROJECT)
    pdb = H.import_structure(run, H.structure("1mol"))
    sim = run.launchProtocol(run.newProtocol(
        ProtDeepResSimulate, inputStructure=pdb, samplingRate=1.0, resolutionMode=1,
        resolution=4.0, chainResolutions="A:3, B:6", noise=0.08))
    if H.shipped_weights():
        model = dict(modelChoice=C.MODEL_AUTO)
    else:
        print("shipped weights missing: training a tiny model (pictures are not meaningful)")
        train = run.newProtocol(ProtDeepResTrain, modelName="tiny", epochs=1, stepsPerEpoch=2,
                                patch=24, channels=4, lastChannels=4, head="8", valMaps=1)
        train.inputStructures.append(pdb)
        run.launchProtocol(train)
        model = dict(modelChoice=C.MODEL_TRAINED, trainedModel=train.outputModel)
    est = run.launchProtocol(run.newProtocol(
        ProtDeepResEstimate, inputVolume=sim.outputVolume, mask=sim.outputMask, **model))
    viewer = DeepResEstimateViewer(project=run.proj, protocol=est)
    viewer.setProtocol(est)
    d = viewer._getVisualizeDict()
    for key in ("displayHistogram", "displaySlices", "displayChimera"):
        d[key]()
    for name, dst in ((C.VIEW_HISTOGRAM, "scipion_view_histogram.png"),
                      (C.VIEW_SLICES.format(axis="z"), "scipion_view_slices.png")):
        shutil.copy(est._getExtraPath(name), out / dst)
    sv = DeepResSimulateViewer(project=run.proj, protocol=sim)
    sv.setProtocol(sim)
    sv._getVisualizeDict()["displayTruthVsMap"]()
    shutil.copy(sim._getExtraPath(C.VIEW_SIMULATION.format(axis="z")),
                out / "scipion_view_simulation.png")
    print("estimate:", " ".join(est.summary()))
    import numpy as np

    truth = H.read_mrc(sim.outputTruth.getFileName())[0]
    res = H.read_mrc(est.outputResolution.getFileName())[0]
    for value in np.unique(truth[truth > 0]):
        sel = (truth == value) & (res > 0)
        print(f"true {value:g} Å: DeepRes median {np.median(res[sel]):.2f} Å "
              f"({sel.sum()} voxels)")


def grab(window, png, delay=3000):
    """Show a pyworkflow window, screenshot just that window after ``delay`` ms, quit."""
    from PIL import ImageGrab

    root = window.root

    def shot():
        root.update()
        x, y = root.winfo_rootx(), root.winfo_rooty()
        w = min(root.winfo_width(), root.winfo_screenwidth() - x)  # the part on screen
        h = min(root.winfo_height(), root.winfo_screenheight() - y)
        ImageGrab.grab(bbox=(x, y, x + w, y + h), xdisplay=os.environ["DISPLAY"]).save(png)
        print("wrote", png, f"{w}x{h}")
        root._root().destroy()  # the invisible tk.Tk() behind the Toplevel: ends mainloop

    root.after(delay, shot)
    window.show()


def shoot(kind, png):
    """Child process: open one window of the demo project and grab it."""
    import pyworkflow.gui.project  # noqa: F401  (before gui.form: avoids a circular import)
    from pyworkflow.gui.form import FormWindow
    from pyworkflow.project import Manager

    from deepres_plugin.protocols import ProtDeepResEstimate, ProtDeepResTrain
    from deepres_plugin.viewers import DeepResEstimateViewer

    from pwem import Domain

    Domain.getViewers()  # registers the plugin on the viewer classes (labels in the title)
    proj = Manager().loadProject(PROJECT)
    os.chdir(proj.path)
    runs = {p.getClassName(): p for p in proj.getRuns()}
    sim, est = runs["ProtDeepResSimulate"], runs["ProtDeepResEstimate"]
    if kind == "project":
        from pyworkflow.gui.project import ProjectWindow

        win = ProjectWindow(proj.path)

        def select():  # show the estimate run's summary in the bottom panel
            view = win.getViewWidget()
            view._selectItemProtocol(view.project.getProtocol(est.getObjId()))
            view.updateRunsGraph(True)

        win.root.after(2500, select)
        return grab(win, png, delay=5000)
    if kind == "estimate_form":
        prot = proj.newProtocol(ProtDeepResEstimate, inputVolume=sim.outputVolume,
                                mask=sim.outputMask)
    elif kind == "train_form":
        prot = proj.newProtocol(ProtDeepResTrain)
        prot.inputStructures.append(runs["ProtImportPdb"].outputPdb)
    else:  # the estimate viewer's form
        viewer = DeepResEstimateViewer(project=proj, protocol=est)
        viewer.setProtocol(est)
        keys = viewer._getVisualizeDict()
        return grab(FormWindow("Protocol Viewer: " + viewer.getClassName(), viewer,
                               viewer._viewAll, None, visualizeMode=True,
                               visualizeDict={k: viewer._visualizeParam for k in keys}), png)
    return grab(FormWindow("Protocol Run: " + prot.getClassLabel(), prot, lambda *a: None,
                           None), png)


def main(out_dir):
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    build(out)
    for kind in ("estimate_form", "train_form", "viewer", "project"):
        subprocess.run([sys.executable, __file__, "--grab", kind,
                        str(out / f"scipion_{kind}.png")], check=True, timeout=300,
                       env=dict(os.environ, **{CHILD: "1"}))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--grab"]:
        shoot(sys.argv[2], sys.argv[3])
    else:
        try:
            main(sys.argv[1] if len(sys.argv) > 1 else str(REPO / "wiki" / "img"))
        finally:
            shutil.rmtree(env._ROOT, ignore_errors=True)
