"""Tools a model may call while it inspects an image: zoom, reference, compare, expert, knowledge.

Each tool has a name, a JSON schema of its arguments (OpenAI function calling), validation that
turns bad arguments into a message for the model, and a result (text and images) with a one-line
summary for the record. `Toolbox` holds a run's tools; ``--strategy tools`` drives them.
"""

from mmad.tools.base import Tool, ToolContext, ToolResult
from mmad.tools.toolbox import TOOL_NAMES, Toolbox, parse_tool_names

__all__ = ["TOOL_NAMES", "Tool", "ToolContext", "ToolResult", "Toolbox", "parse_tool_names"]
