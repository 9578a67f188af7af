"""Packaging for hear_suite (distribution name ``hear-suite``).

``weights/`` sits at the top of the repository and is shipped inside the wheel as the package
``hear_suite.weights`` so ``load_model()`` finds the default weights from any directory.
"""
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
about = {}
exec((HERE / "hear_suite" / "version.py").read_text(), about)

setup(
    name="hear-suite",
    version=about["__version__"],
    description="Audio embedding models (KW-MLP, bag-of-codes, AST) as HEAR benchmark plugins",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.9",
    packages=find_packages(include=["hear_suite", "hear_suite.*"]) + ["hear_suite.weights"],
    package_dir={"hear_suite.weights": "weights"},
    package_data={"hear_suite.weights": ["*.pt", "README.md"],
                  "hear_suite.ast": ["recipe_labels.json"]},
    install_requires=[
        "torch>=1.13",
        "nnAudio>=0.3.2",
        "numpy>=1.21",
        "scipy>=1.7",
        "soundfile>=0.10",
        "tqdm>=4.50",
        "matplotlib>=3.3",
        "PyYAML>=5.1",
        "scikit-learn>=1.0",
    ],
    extras_require={
        # The evaluation stack, as in requirements-eval.txt; heareval and hearvalidator
        # themselves must then come with --no-deps (their own pins cannot resolve).
        "eval": [
            "tensorflow-cpu>=2.10",
            "pytorch-lightning>=1.6,<2",
            "setuptools<81",
            "click",
            "dcase-util",
            "intervaltree",
            "more-itertools",
            "pandas",
            "nvidia-ml-py",
            "python-slugify",
            "sed-eval",
            "torchinfo",
        ],
        # Hugging Face AST checkpoints (model.safetensors): hear_suite.ast reads and writes them
        "hf": ["safetensors>=0.3"],
        # transformers: the independent oracle of the published-AST tests (no download)
        "test": ["pytest>=7", "safetensors>=0.3", "transformers>=4.30"],
    },
    entry_points={"console_scripts": ["hear-suite=hear_suite.cli:main"]},
)
