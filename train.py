"""Train one configured run (or a sweep with -m): python train.py pruner=infobatch_das noise=sym0.5"""

from alignprune_exp.cli import main

if __name__ == "__main__":
    main()
