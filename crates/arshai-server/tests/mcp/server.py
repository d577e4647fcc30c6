"""An MCP server for arshai's tests, written with the official Python `mcp` SDK.

Usage: server.py stdio | server.py http PORT

Tools: `add` (two integers), `whoami` (this process's id, to tell a restarted server from
the first), `fail` (a tool error), `crash` (the process exits in the middle of the call)
and `hang` (never answers).

With `ARSHAI_MCP_GENERATIONS=PATH`, the server counts its starts in that file, a restarted
server (any start after the first) lists `multiply` and no longer `fail`, and the tool
`learn` adds `multiply` and sends `notifications/tools/list_changed`.
"""

import os
import sys
import threading
import time

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("arshai-test")


@server.tool(description="Adds two integers.")
def add(a: int, b: int) -> str:
    return f"{a} + {b} = {a + b}"


@server.tool(description="Tells this server process's id.")
def whoami() -> str:
    return f"pid {os.getpid()}"


def multiply(a: int, b: int) -> str:
    return f"{a} * {b} = {a * b}"


GENERATIONS = os.environ.get("ARSHAI_MCP_GENERATIONS")


def generation() -> int:
    """This start's number (0 for the first) in the file ARSHAI_MCP_GENERATIONS names."""
    path = GENERATIONS
    if not path:
        return 0
    try:
        with open(path) as file:
            started = int(file.read().strip() or "0")
    except FileNotFoundError:
        started = 0
    with open(path, "w") as file:
        file.write(str(started + 1))
    return started


if generation() == 0:

    @server.tool(description="Always fails.")
    def fail(reason: str) -> str:
        raise ToolError(f"refused: {reason}")

else:
    server.add_tool(multiply, description="Multiplies two integers.")


async def learn(ctx: Context) -> str:
    server.add_tool(multiply, description="Multiplies two integers.")
    await ctx.session.send_tool_list_changed()
    return "learned multiply"


if GENERATIONS:
    server.add_tool(learn, description="Adds the tool `multiply` and says the tool list changed.")


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
