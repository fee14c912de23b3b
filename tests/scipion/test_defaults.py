"""One parameter layer: `deepres train`'s defaults, the Scipion train form's defaults and
backend/config.TrainConfig agree; both front ends read the presets, the model registry and the
chain syntax from the backend."""
from dataclasses import asdict, fields

import pytest

from deepres_plugin.backend import config

# what a front end sets itself: the Scipion form names its model and runs ≥ 1 thread
FRONT_END_OWN = {"name", "threads", "command", "structures", "val_structures"}


def _cli_config(*argv):
    from deepres_plugin.cli import build_parser
    from deepres_plugin.cli.train import config_from_args

    return config_from_args(build_parser().parse_args(["train", "-o", "out", *argv]))


def _compare(cfg, skip=()):
    want = asdict(config.TrainConfig())
    got = asdict(cfg)
    diff = {k: (got[k], want[k]) for k in want if k not in skip and got[k] != want[k]}
    assert diff == {}


def test_cli_defaults_are_the_backend_defaults():
    _compare(_cli_config(), skip={"command"})


def test_scipion_form_defaults_are_the_backend_defaults():
    from deepres_plugin.protocols import ProtDeepResTrain

    prot = ProtDeepResTrain()
    _compare(prot._config(prot.modelName.get()), skip=FRONT_END_OWN)
    assert prot._config(prot.modelName.get()).errors() == []


def test_every_field_is_reachable_from_both_front_ends():
    """Each TrainConfig field (but the free-form extras) has a CLI option and a form param."""
    from deepres_plugin.protocols import ProtDeepResTrain

    changed = {"epochs": 3, "steps_per_epoch": 7, "batch": 2, "patch": 32, "channels": 8,
               "last_channels": 12, "head": (16, 8), "noise_max": 0.05, "noise_ref": "local",
               "clean_fraction": 0.5, "noise_input": True, "noise_colour": False,
               "global_b_fraction": 0.1, "mask_input": False, "lr": 5e-4, "ema": 0.9,
               "seed": 9, "val_maps": 2, "calibration_maps": 0, "init": "standard",
               "sampling": 2.0, "res_min": 5.0, "res_max": 25.0}
    cli = _cli_config("--name", "coarse", "--epochs", "3", "--steps", "7", "--batch", "2",
                      "--patch", "32", "--channels", "8", "--last-channels", "12",
                      "--head", "16,8", "--noise-max", "0.05", "--noise-ref", "local",
                      "--clean-fraction", "0.5", "--noise-input", "--white-noise",
                      "--global-b-fraction", "0.1", "--no-mask-input", "--lr", "5e-4",
                      "--ema", "0.9", "--seed", "9", "--val-maps", "2",
                      "--calibration-maps", "0", "--init", "standard")
    prot = ProtDeepResTrain()
    for attr, value in (("epochs", 3), ("stepsPerEpoch", 7), ("batch", 2), ("patch", 32),
                        ("channels", 8), ("lastChannels", 12), ("head", "16,8"),
                        ("noiseMax", 0.05), ("noiseRef", 1), ("cleanFraction", 0.5),
                        ("noiseInput", True), ("colouredNoise", False),
                        ("globalBFraction", 0.1), ("maskInput", False),
                        ("learningRate", 5e-4), ("ema", 0.9), ("seed", 9), ("valMaps", 2),
                        ("calibrationMaps", 0), ("initModel", "standard"),
                        ("samplingRate", 2.0), ("resMin", 5.0), ("resMax", 25.0)):
        getattr(prot, attr).set(value)
    scipion = prot._config("coarse")
    untouched = FRONT_END_OWN | {"extra_recipe"}
    assert set(changed) | untouched == {f.name for f in fields(config.TrainConfig)}
    for name, value in changed.items():
        assert getattr(cli, name) == value, name
        assert getattr(scipion, name) == value, name


def test_presets_fill_the_cli_and_bad_settings_are_refused():
    for name, p in config.PRESETS.items():
        cfg = _cli_config("--name", name)
        assert (cfg.sampling, cfg.res_min, cfg.res_max) == (p.sampling, p.res_min, p.res_max)
    with pytest.raises(config.InputError, match="not a preset"):
        _cli_config("--name", "mine")
    with pytest.raises(config.InputError, match="beyond Nyquist"):
        _cli_config("--res-min", "1.5")
    assert config.PRESETS["high"] == config.Preset(0.5, 1.5, 6.0)
    assert config.PRESETS["coarse"] == config.Preset(2.0, 5.0, 25.0)


def test_dense_spec_defaults_are_the_shipped_architecture():
    from deepres_plugin.backend import registry

    spec = asdict(config.DenseSpec())
    for name in registry.available():
        card = registry.read_card(registry.weights_paths(name)[1])
        assert {k: v for k, v in asdict(card.dense_spec()).items() if k != "noise_input"} == \
            {k: v for k, v in spec.items() if k != "noise_input"}, name


def test_chain_syntax_both_ways():
    assert config.parse_chain_resolutions("A=3,B=4.5") == {"A": 3.0, "B": 4.5}
    assert config.parse_chain_resolutions("A:3; B:4.5") == {"A": 3.0, "B": 4.5}
    assert config.chain_resolutions(["A", "B"], 7, "A:3") == {"A": 3.0, "B": 7.0}
    for bad in ("A3", "A=x", "=3", ""):
        with pytest.raises(config.InputError):
            config.parse_chain_resolutions(bad)
    with pytest.raises(config.InputError, match="chain\\(s\\) X not in the model"):
        config.chain_resolutions(["A"], 7, "X=3")


def test_deepres_weights_is_honoured(tmp_path, monkeypatch):
    import shutil

    from deepres_plugin.backend import registry

    name = registry.available()[0]
    for path in registry.weights_paths(name):
        shutil.copy(path, tmp_path)
    monkeypatch.setenv("DEEPRES_WEIGHTS", str(tmp_path))
    assert registry.weights_paths(name)[0] == str(tmp_path / f"{name}.weights.h5")
    assert registry.card_data(name)["name"] == name
