"""Packaging for destination-scarf, an Airbyte destination that imports records into Scarf."""

from setuptools import find_packages, setup

VERSION = "0.1.0"

setup(
    name="destination-scarf",
    version=VERSION,
    description="Airbyte destination connector: import records as events into Scarf (scarf.sh).",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(include=["destination_scarf", "destination_scarf.*"]),
    package_data={"destination_scarf": ["spec.json", "resources/*.json"]},
    install_requires=[
        "airbyte-cdk>=7.0,<8",
        "requests>=2.31",
        "jsonschema>=4.17",
        "orjson>=3.9",  # comes with airbyte-cdk; listed because the hot path uses it directly
    ],
    extras_require={
        # The emulator and the test suite live in this repo and are not shipped in the image.
        "tests": ["pytest>=8", "pyyaml>=6"],
    },
    entry_points={"console_scripts": ["destination-scarf=destination_scarf.run:run"]},
)
