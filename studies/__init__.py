"""The paper's experiments, one folder each; run one from the repository root with
``.venv/bin/python -m studies.run NAME --scale smoke|cpu|paper`` (see ``docs/studies.md``).
"""
