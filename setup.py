"""scipion-em-deepres: DeepRes local resolution as a Scipion plugin and a CLI."""
from setuptools import find_packages, setup

setup(
    name="scipion-em-deepres",
    version="0.1.0",
    description="DeepRes local resolution (3-D CNN) for cryo-EM maps: Scipion plugin and CLI",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="GPL-3.0-or-later",
    python_requires=">=3.11",
    packages=find_packages(include=["deepres_plugin", "deepres_plugin.*"]),
    include_package_data=True,
    package_data={
        "deepres_plugin": ["protocols.conf", "templates/*.json.template"],
        "deepres_plugin.backend": ["weights/*.weights.h5", "weights/*.json"],
    },
    install_requires=[
        "numpy",
        "scipy",
        "mrcfile",
        "gemmi",
        "matplotlib",
        "tqdm",
        "tensorflow",
        "scipion-pyworkflow>=3.11",
        "scipion-em>=3.11",
    ],
    # scipion-app: the `scipion3` launcher, for the tests that run Scipion as users do
    # (scipion3 tests / inspect / installp / template); same one resolve, no pins move
    extras_require={"test": ["pytest", "pytest-timeout", "scipion-app"]},
    entry_points={
        "console_scripts": ["deepres = deepres_plugin.cli:main"],
        "pyworkflow.plugin": ["deepres_plugin = deepres_plugin"],
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Bio-Informatics",
    ],
)
