"""Package list for setuptools: the packages under src/ plus the top-level conf/ as ``alignprune_exp.conf``.

Metadata and package data live in pyproject.toml; this list needs code because the config tree lives
outside src/ (the project's layout) and must still ship in every wheel, groups included. Editable installs
leave it out: they keep setuptools' plain ``src`` path entry (which Hydra's plugin scan of the
``hydra_plugins`` namespace needs) and read the checkout's conf/ directly (alignprune_exp.config.paths).
"""

import sys
from pathlib import Path

from setuptools import find_namespace_packages, setup

EDITABLE = bool({"editable_wheel", "develop"} & set(sys.argv[1:]))
CONF = Path(__file__).resolve().parent / "conf"
CONF_PACKAGES = ["alignprune_exp.conf"] + sorted(
    ".".join(("alignprune_exp.conf", *d.relative_to(CONF).parts))
    for d in CONF.rglob("*") if d.is_dir() and d.name != "__pycache__"
)
SRC_PACKAGES = find_namespace_packages("src", include=["alignprune_exp", "alignprune_exp.*", "hydra_plugins.*"],
                                       exclude=["*.__pycache__"])

setup(
    packages=SRC_PACKAGES + ([] if EDITABLE else CONF_PACKAGES),
    package_dir={"": "src", **({} if EDITABLE else {"alignprune_exp.conf": "conf"})},
)
