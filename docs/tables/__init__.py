"""The renderers behind ``docs/regenerate.py``: every generated table and figure of the docs.

Each module owns the tables of one results page and maps a marker name to a function of
the repository root that returns the markdown (``TABLES``) or draws a figure
(``FIGURES``). ``pages`` finds the markers in the pages and rewrites what lies between
them. Only the standard library, NumPy, SciPy and Matplotlib: no TensorFlow, no training.
"""
