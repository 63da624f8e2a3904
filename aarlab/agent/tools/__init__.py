"""The researcher's tools: plain functions registered with ``@tool``; importing this package registers them.

- in the sandbox: ``bash``, ``python``, ``read_file``, ``write_file``, ``edit_file``, ``list_files``;
- background jobs in the sandbox: ``job_start``, ``job_list``, ``job_output``, ``job_wait``, ``job_kill``;
- at the lab, with the agent's token: ``submit_predictions``, ``leaderboard``, ``forum_post``, ``forum_read``,
  ``forum_reply``, ``forum_search``, ``snapshot_publish``, ``snapshot_fetch``;
- in the harness: ``consult`` (ask an advisor model) and ``finish`` (end the research).
"""

from aarlab.agent.tools import _job_tools, _lab_tools, _meta_tools, _sandbox_tools  # noqa: F401  (registers the tools)
from aarlab.agent.tools._registry import (
    Tool,
    ToolContext,
    ToolError,
    check_arguments,
    get_tools,
    json_schema,
    parse_docstring,
    registered_tools,
    tool,
    tool_spec,
)

__all__ = [
    "Tool",
    "ToolContext",
    "ToolError",
    "check_arguments",
    "get_tools",
    "json_schema",
    "parse_docstring",
    "registered_tools",
    "tool",
    "tool_spec",
]
