"""Numbers to tables, plots and pages."""

from mmad.report.plots import heatmap_png
from mmad.report.tables import breakdown_to_markdown, table_to_dict, table_to_markdown

__all__ = ["breakdown_to_markdown", "heatmap_png", "table_to_dict", "table_to_markdown"]
