"""The HTML report and the job summary, built from the run's records: no pytest here.

    html.py         each test's evidence (numbers, per-prompt plot, examples), escaped
    header.py       the top of the report: summary grid, answers read, changes, data egress
    plots.py        matplotlib figures as PNG bytes
    job_summary.py  results/summary.md for a CI job summary

harness/plugin/html_hooks.py hands these to pytest-html; everything a model wrote is
escaped here.
"""
