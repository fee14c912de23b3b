"""Scipion tests of the DeepRes plugin, where Scipion's own test runner looks for them.

    scipion3 tests --grep deepres --show                              # list them
    scipion3 tests deepres_plugin.tests.test_protocols_deepres        # run them

(`scipion` instead of `scipion3` in a pip-installed Scipion.) They are pyworkflow ``BaseTest``
classes with real projects (``setupTestProject``). Scipion's test DataSets are downloaded from
a server; these tests need none: their maps are simulated in code from an ideal 4-helix bundle
(:mod:`deepres_plugin.tests.helpers`), in seconds. The repository's pytest suite (top-level
``tests/``) covers much more and reuses the helpers here."""
