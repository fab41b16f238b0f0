"""What a run shows: importance, plots and report.md.

``insights`` computes what the search teaches (importance, the skip question),
``plots`` and ``insight_plots`` draw the figures, ``markdown`` writes the text,
``rebuild`` assembles report.md from everything a run directory holds.
"""
