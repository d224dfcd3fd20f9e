from setuptools import find_packages, setup

setup(
    name="croft",
    version="0.1.0",
    description="Robust fine-tuning of CLIP (CRoFT, ICML 2024) with baselines, open-set and covariate-shift evaluation",
    packages=find_packages(include=["croft", "croft.*"]),
    package_data={"croft.clip": ["model_configs/*.json"]},
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
