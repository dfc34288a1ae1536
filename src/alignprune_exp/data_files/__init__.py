"""Data files shipped with the package: the paper's reported results (paper_results.csv)."""
