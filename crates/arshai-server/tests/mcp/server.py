"""An MCP server for arshai's tests, written with the official Python `mcp` SDK.

Usage: server.py stdio | server.py http PORT

Tools: `add` (two integers), `whoami` (this process's id, to tell a restarted server from
the first), `fail` (a tool error), `crash` (the process exits in the middle of the call)
and `hang` (never answers).
"""

import os
import sys
import threading
import time

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("arshai-test")


@server.tool(description="Adds two integers.")
def add(a: int, b: int) -> str:
    return f"{a} + {b} = {a + b}"


@server.tool(description="Tells this server process's id.")
def whoami() -> str:
    return f"pid {os.getpid()}"


@server.tool(description="Always fails.")
def fail(reason: str) -> str:
    raise ToolError(f"refused: {reason}")


@server.tool(description="Exits the server process in the middle of the call.")
def crash() -> str:
    sys.stderr.flush()
    os._exit(3)


@server.tool(description="Never answers.")
def hang() -> str:
    time.sleep(3600)
    return "late"


def exit_with_parent() -> None:
    """Ends this process once its parent is gone: a test process that exits does not drop
    its agents, so a server blocked in `hang` would otherwise outlive it, orphaned."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


if __name__ == "__main__":
    exit_with_parent()
    if sys.argv[1:] == ["stdio"]:
        server.run()
    elif len(sys.argv) == 3 and sys.argv[1] == "http":
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        sys.exit("usage: server.py stdio | server.py http PORT")
