"""Both workflow templates: found by Scipion, parameters filled as the template dialog does,
loaded into a new project with the pointers wired, and (with the shipped weights) run headless
end to end."""
import json
import os

import numpy as np
import pytest
from pyworkflow.project import Manager

import scipion_helpers as H


def plugin_templates():
    from pwem import Domain

    mod = Domain.getPluginModule("deepres_plugin")
    return {t.name: t for t in mod._pluginInstance.getTemplates()}


def filled(name, **values):
    """Template ``name`` with params set by alias; returns the written JSON workflow path."""
    t = plugin_templates()[name]
    t.replaceEnvVariables()  # what Scipion's template launcher does first: %(VAR)s, split at ~
    t.parseContent()
    for alias, value in values.items():
        assert t.setParamValue(alias, str(value)) >= 1, alias
    return t.createTemplateFile()


def load(tmp_name, path):
    """A new project with the workflow loaded: {template object.id: protocol}."""
    manager = Manager()
    if manager.hasProject(tmp_name):
        manager.deleteProject(tmp_name)
    project = manager.createProject(tmp_name)
    os.chdir(project.path)  # pyworkflow resolves run paths from the project folder
    prots = project.loadProtocols(path)
    os.remove(path)  # the template launcher's temporary workflow file
    return project, prots


def run_all(project, prots):
    for key in sorted(prots, key=int):
        prot = prots[key]
        project.launchProtocol(prot, wait=True)
        prot = project.getProtocol(prot.getObjId())
        assert prot.isFinished(), (prot.getRunName(), prot.getErrorMessage())
        prots[key] = prot
    return prots


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    out = tmp_path_factory.mktemp("maps")
    mpath, kpath, _ = H.simulate_map("3so6", str(out), 5.0)
    return {"map": mpath, "mask": kpath, "structure": H.structure("3so6")}


def test_map_template_loads_with_pointers(inputs):
    path = filled("deepres_map_to_resolution", map=inputs["map"], mask=inputs["mask"],
                  sampling=1.0)
    with open(path) as fh:
        wf = json.load(fh)
    assert wf[0]["filesPath"] == inputs["map"] and wf[0]["samplingRate"] == 1.0
    assert wf[1]["samplingRate"] == 1.0  # one alias fills both voxel-size fields
    project, prots = load("TplMapLoad", path)
    est = prots["4"]
    assert est.getClassName() == "ProtDeepResEstimate"
    assert est.inputVolume.getObjValue() is prots["2"]
    assert est.inputVolume.getExtended() == "outputVolume"
    assert est.mask.getObjValue() is prots["3"] and est.mask.getExtended() == "outputMask"


def test_model_template_loads_with_pointers(inputs):
    path = filled("deepres_model_to_resolution", structure=inputs["structure"],
                  resolution=6.0, sampling=1.0, noise=0.05)
    project, prots = load("TplModelLoad", path)
    sim, est = prots["3"], prots["4"]
    assert sim.getClassName() == "ProtDeepResSimulate"
    assert sim.resolution.get() == 6.0 and sim.noise.get() == 0.05
    assert sim.inputStructure.getObjValue() is prots["2"]
    assert est.inputVolume.getExtended() == "outputVolume"
    assert est.mask.getExtended() == "outputMask"


needs_weights = pytest.mark.skipif(not H.shipped_weights(),
                                   reason="shipped weights not in the package yet")


@needs_weights
def test_map_template_runs(inputs):
    path = filled("deepres_map_to_resolution", map=inputs["map"], mask=inputs["mask"],
                  sampling=1.0)
    project, prots = load("TplMapRun", path)
    prots = run_all(project, prots)
    est = prots["4"]
    assert abs(est.getStats()["median"] - 5.0) < 0.5
    res, s, _ = H.read_mrc(est.outputResolution.getFileName())
    mask, _, _ = H.read_mrc(inputs["mask"])
    np.testing.assert_array_equal(res > 0, mask > 0.5)
    assert s == pytest.approx(1.0)


@needs_weights
def test_model_template_runs(inputs):
    path = filled("deepres_model_to_resolution", structure=inputs["structure"],
                  resolution=5.0, sampling=1.0, noise=0.08)
    project, prots = load("TplModelRun", path)
    prots = run_all(project, prots)
    sim, est = prots["3"], prots["4"]
    assert abs(est.getStats()["median"] - 5.0) < 0.5
    np.testing.assert_allclose(H.shifts(est.outputResolution), H.shifts(sim.outputVolume))
    assert os.path.isfile(est._getExtraPath("resolution.json"))
