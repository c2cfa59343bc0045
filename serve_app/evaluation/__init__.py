"""Offline evaluation of the judges on RM-Bench, JudgeBench, HelpSteer3 and best-of-N sets.

``records`` reads the benchmark files, ``metrics`` applies each benchmark's scoring rule to the judges' verdicts,
``report`` writes the Markdown report and its plots.
"""
