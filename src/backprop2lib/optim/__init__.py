"""Step-size and stopping rules that any inner loop can use, batched over tasks."""

from .line_search import LineSearch, line_search
from .terminator import DynamicTerminator

__all__ = ["DynamicTerminator", "LineSearch", "line_search"]
