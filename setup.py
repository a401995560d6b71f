"""Map the top-level code folders onto one import name.

The code lives in folders named by what they do (see DESIGN.md): ``models/``, ``inference/`` and
``generation/``; they install as ``wattscape.models``, ``wattscape.inference`` and
``wattscape.generation``, never as bare top-level ``models``.  Everything else is in pyproject.toml.
"""

from setuptools import find_namespace_packages, setup

ROOTS = {
    "wattscape": "wattscape",
    "wattscape.models": "models",
    "wattscape.inference": "inference",
    "wattscape.generation": "generation",
}

packages: list[str] = []
package_dir: dict[str, str] = {}
for name, folder in ROOTS.items():
    package_dir[name] = folder
    packages.append(name)
    # namespace discovery so data folders (demo data, scenarios, shipped posterior) ship as package data
    packages += [f"{name}.{sub}" for sub in find_namespace_packages(folder, exclude=["*__pycache__*"])]

setup(packages=sorted(set(packages)), package_dir=package_dir)
