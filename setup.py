import os

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))


class BuildPyWithConfigs(build_py):
    """Also copy the repository's configs/ into the built package as croft/configs.

    git keeps one copy (configs/); a plain ``pip install .`` then finds named grids and config files
    from any folder (croft/config/locate.py). The tree is copied whole: ``_BASE_`` paths are relative.
    """

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads the checkout's configs/ directly
        source = os.path.join(HERE, "configs")
        if not os.path.isdir(source):
            raise FileNotFoundError(f"setup.py: {source} not found; the package would ship without its configs")
        target = os.path.join(self.build_lib, "croft", "configs")
        for folder, _, files in os.walk(source):
            for name in sorted(files):
                if name.endswith((".yaml", ".yml")):
                    path = os.path.join(folder, name)
                    out = os.path.join(target, os.path.relpath(path, source))
                    self.mkpath(os.path.dirname(out))
                    self.copy_file(path, out)

setup(
    name="croft",
    version="0.1.0",
    description="Robust fine-tuning of CLIP (CRoFT, ICML 2024) with baselines, open-set and covariate-shift evaluation",
    packages=find_packages(include=["croft", "croft.*"]),
    package_data={"croft.clip": ["model_configs/*.json"]},
    cmdclass={"build_py": BuildPyWithConfigs},
    python_requires=">=3.9",
    install_requires=[
        "torch==2.14.1", "torchvision==0.29.1", "open-clip-torch>=3.0,<4", "yacs>=0.1.8", "ftfy>=6.1",
        "regex>=2023.0", "tqdm>=4.60", "scikit-learn>=1.3", "numpy>=1.24", "pillow>=9.0",
        "matplotlib>=3.7", "safetensors>=0.4",
    ],
    entry_points={"console_scripts": ["croft-train=croft.train:main", "croft-predict=croft.predict:main",
                                        "croft-sweep=croft.sweep.cli:main",
                                        # needs Dassl importable: README.md, "Using croft inside Dassl/CoOp"
                                        "croft-dassl=croft.dassl_bridge:main"]},
)
