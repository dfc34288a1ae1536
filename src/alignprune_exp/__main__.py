"""``python -m alignprune_exp ...``: the same Hydra task as ``alignprune-train`` and ``train.py``."""

from alignprune_exp.cli import main

if __name__ == "__main__":
    main()
