"""Per-trial figures and the colours they share with the MLflow runs.

    profile_records.py  the gradient profile in forms MLflow can compare (a metric by steps back, a table)
    profile_svg.py      every trial's gradient profile as a small SVG, without matplotlib
    trial_plots.py      a trial's PNG figures and tables (matplotlib: import it directly)
    colours.py          the colour of each health verdict
"""
from tracking.figures.colours import HEALTH_COLOURS, health_colour
from tracking.figures.profile_svg import write_profile_svg

__all__ = ["HEALTH_COLOURS", "health_colour", "write_profile_svg"]
