"""Plots: DVC-style plot definitions (``spec``) and the data a plot page draws (``data``)."""
