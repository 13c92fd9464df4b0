"""Package layout that pyproject.toml cannot express on its own.

``resources/`` (bundled model weights, icons, sample portraits) stays at the top of the
repository, where the app, the tests and the PyInstaller spec find it in a checkout.  A wheel
carries it as the data-only package ``triface_studio._resources`` so that an installed app finds
it beside its code (``triface_studio.resources.resources_dir()`` looks in both places).  Every
other setting lives in pyproject.toml.
"""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["triface_studio", "triface_studio.*"]) + ["triface_studio._resources"],
    package_dir={"triface_studio._resources": "resources"},
    package_data={"triface_studio": ["py.typed"], "triface_studio._resources": ["**/*"]},
    exclude_package_data={"triface_studio._resources": ["**/__pycache__/*", "**/*.pyc"]},
)
