"""attnlab.analysis: statistics, tables and plots for experiment reports.

Sits on the train/ floor: it may use metrics/ but nothing imports it from below.
"""
