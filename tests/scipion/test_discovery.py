"""Scipion finds the plugin through its entry point, with all protocols, viewers, wizards,
objects, citations and templates; forms are complete; the backend stays free of pyworkflow."""
import configparser
import json
import os
import subprocess
import sys

import pytest

OUR_PROTOCOLS = {"ProtDeepResEstimate", "ProtDeepResSimulate", "ProtDeepResTrain",
                 "ProtDeepResSharpening"}
OUR_VIEWERS = {"DeepResEstimateViewer", "DeepResSimulateViewer", "DeepResTrainViewer",
               "DeepResSharpeningViewer"}


def test_entry_point_registered():
    from importlib.metadata import entry_points

    eps = {ep.name: ep.value for ep in entry_points(group="pyworkflow.plugin")}
    assert eps.get("deepres_plugin") == "deepres_plugin"


def test_domain_lists_protocols_viewers_objects_wizards():
    from pwem import Domain

    protocols = Domain.getProtocols()
    assert OUR_PROTOCOLS <= set(protocols)
    for name in OUR_PROTOCOLS:
        assert protocols[name]._package.__name__ == "deepres_plugin"
        assert protocols[name]._label  # a class without its own _label is a base class
    assert OUR_VIEWERS <= set(Domain.getViewers())
    assert "DeepResModel" in Domain.getObjects()
    assert "DeepResColorScaleWizard" in Domain.getWizards()
    from deepres_plugin.protocols import ProtDeepResEstimate
    from deepres_plugin.viewers import DeepResEstimateViewer

    found = Domain.findViewers(ProtDeepResEstimate(), "tkinter")
    assert DeepResEstimateViewer in found


def test_plugin_class_and_variables():
    import pwem
    from pwem import Domain

    mod = Domain.getPluginModule("deepres_plugin")
    assert issubclass(mod.Plugin, pwem.Plugin)
    weights = mod.Plugin.getVar("DEEPRES_WEIGHTS")
    assert weights.endswith(os.path.join("backend", "weights"))
    assert mod.Plugin.getHome() == weights
    bib = mod._bibtex["RamirezAportela2019"]
    assert bib["doi"] == "10.1107/S2052252519011692" and bib["journal"] == "IUCrJ"
    assert bib["pages"] == "1054--1063" and bib["year"] == "2019"


def test_templates_found():
    from pwem import Domain

    mod = Domain.getPluginModule("deepres_plugin")
    names = sorted(t.name for t in mod._pluginInstance.getTemplates())
    assert names == ["deepres_map_to_resolution", "deepres_model_to_resolution"]


@pytest.mark.parametrize("name", sorted(OUR_PROTOCOLS))
def test_every_param_has_label_and_help(name):
    import pyworkflow.protocol.params as params
    from pwem import Domain

    prot = Domain.getProtocols()[name]()
    for pname, param in prot.getDefinition().iterParams():
        if isinstance(param, (params.Line, params.Group)) or param.condition.get() == "False":
            continue  # layout elements; hidden GPU params are shown in the Run section
        assert param.label.get(), f"{name}.{pname} has no label"
        assert param.help.get(), f"{name}.{pname} has no help"
    assert prot.getCitations() and "RamirezAportela2019" in prot._citations()


def test_protocols_conf_parses_and_names_exist():
    from pwem import Domain

    path = os.path.join(os.path.dirname(__import__("deepres_plugin").__file__),
                        "protocols.conf")
    cp = configparser.RawConfigParser(comment_prefixes=";")
    cp.optionxform = str
    cp.read(path)
    values = []

    def walk(items):
        for it in items:
            if it["tag"] == "protocol":
                values.append(it["value"])
            walk(it.get("children", []))

    for key, text in cp.items("PROTOCOLS"):
        walk(json.loads(text))
    known = set(Domain.getProtocols())
    assert OUR_PROTOCOLS <= set(values) and set(values) <= known


def test_backend_and_cli_do_not_import_pyworkflow():
    code = ("import sys, deepres_plugin, deepres_plugin.backend.volume, "
            "deepres_plugin.backend.simulate, deepres_plugin.constants; "
            "bad = [m for m in ('pyworkflow', 'pwem', 'tensorflow', 'keras') if m in sys.modules];"
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == ""
