"""Reporting: reading results rows and run folders, the paper-layout tables, plots."""
