"""The one thing pyproject.toml cannot say: Stalk's folders under one import package, `stalk`.

The repo keeps the layout it was designed with (panel/, embedded/, assets/); everything installs as
`stalk.*`, so no generic top-level name (`panel`, `embedded`) reaches site-packages. Everything else
is in pyproject.toml.
"""

from setuptools import find_packages, setup

PACKAGE_DIR = {
    "stalk": "src/stalk",  # the package root: public API, `python -m stalk` (src/: never importable from the repo root)
    "stalk.panel": "panel",
    "stalk.embedded": "embedded",
    "stalk.embedded.demo.fixtures": "assets/demo",
}


def packages() -> list[str]:
    found = ["stalk"]
    for prefix, folder in PACKAGE_DIR.items():
        if prefix != "stalk":
            found += [prefix] + [f"{prefix}.{sub}" for sub in find_packages(folder)]
    return sorted(set(found))


setup(package_dir=PACKAGE_DIR, packages=packages())
