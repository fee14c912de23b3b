"""DeepRes: local resolution of cryo-EM maps with a 3-D CNN, as a Scipion plugin and a CLI.

Scipion finds this package through the ``pyworkflow.plugin`` entry point and reads its
``Plugin`` class. ``Plugin`` is built on first access (PEP 562 module ``__getattr__``) so that
``import deepres_plugin.backend...`` and the ``deepres`` CLI never import pyworkflow/pwem.
"""
import os

__version__ = "0.1.0"

_PLUGIN_CLASS = None


def _make_plugin_class():
    """Define the pwem Plugin subclass (imports pwem; called only when Scipion asks)."""
    import pwem

    from .constants import DEEPRES_WEIGHTS_VAR, WEIGHTS_DIR

    class Plugin(pwem.Plugin):
        """DeepRes plugin: no binaries to install, the trained weights ship in the package."""

        _url = "https://doi.org/10.1107/S2052252519011692"
        _homeVar = DEEPRES_WEIGHTS_VAR
        _pathVars = [DEEPRES_WEIGHTS_VAR]
        _supportedVersions = [__version__]

        @classmethod
        def _defineVariables(cls):
            cls._defineVar(DEEPRES_WEIGHTS_VAR, WEIGHTS_DIR,
                           description="Folder with the shipped DeepRes weights "
                                       "(standard/high .weights.h5 + .json model cards).")

        @classmethod
        def defineBinaries(cls, env):
            """Nothing to build: the package is pure Python and carries its weights."""

        @classmethod
        def getEnviron(cls):
            """Environment for protocol steps: the caller's, unchanged."""
            return dict(os.environ)

    Plugin.__module__ = __name__
    Plugin.__qualname__ = "Plugin"
    return Plugin


def __getattr__(name):
    global _PLUGIN_CLASS
    if name == "Plugin":
        if _PLUGIN_CLASS is None:
            _PLUGIN_CLASS = _make_plugin_class()
        return _PLUGIN_CLASS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals().keys()) + ["Plugin"])
