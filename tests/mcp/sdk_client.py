"""The official MCP Python SDK (PyPI `mcp`) against `askgate mcp`.

Run by tests/it/mcp.rs, which starts an askgate server with tokens and
passes ASKGATE_BIN, ASKGATE_URL, ASKGATE_AGENT_TOKEN and ASKGATE_HUMAN_TOKEN.
The SDK's stdio client starts `askgate mcp`, lists its tools and calls them,
while this script answers as the human through the askgate HTTP API; it
calls Claude Code's permission prompt tool with a progress callback and
sees progress arrive while the human has not answered; then it cancels a call the way the SDK does (cancelling the awaiting task sends
`notifications/cancelled`) and checks that the prompt on the server became
`cancelled`. Every wait has a deadline; nothing sleeps to wait for anything.
"""

import json
import os
import sys
import urllib.request

import anyio
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

ASKGATE = os.environ["ASKGATE_BIN"]
URL = os.environ["ASKGATE_URL"]
AGENT = os.environ["ASKGATE_AGENT_TOKEN"]
HUMAN = os.environ["ASKGATE_HUMAN_TOKEN"]
SESSION = "sdk"
STEP = 10  # seconds any one step may take

checks = []


def check(what, condition, detail=""):
    if not condition:
        raise AssertionError(f"{what}: {detail}")
    checks.append(what)
    print(f"ok: {what}", flush=True)


def http(method, path, body=None, token=HUMAN):
    """One call to the askgate server; returns the JSON answer."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(URL + path, data=data, method=method)
    request.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=STEP) as reply:
            return json.load(reply)
    except urllib.error.HTTPError as error:
        return json.load(error)


async def call(method, path, body=None, token=HUMAN):
    return await anyio.to_thread.run_sync(lambda: http(method, path, body, token))


async def pending(kind):
    """The head of the session's queue once one is there (a long-poll)."""
    since = 0
    with anyio.fail_after(STEP):
        while True:
            poll = await call("GET", f"/api/{kind}/pending?session_id={SESSION}&since={since}&wait=5")
            if poll["pending"] is not None:
                return poll["pending"]
            since = poll["version"]


async def respond(kind, head, answer):
    field = {"clarify": "response", "approval": "choice"}[kind]
    body = {"session_id": SESSION, f"{kind}_id": head[f"{kind}_id"], field: answer}
    reply = await call("POST", f"/api/{kind}/respond", body)
    check(f"the human answered {kind} with {answer!r}", reply.get("ok") is True, reply)


async def outcome(kind, prompt_id):
    """The outcome the server keeps, collected as the agent would."""
    path = f"/api/{kind}/wait?session_id={SESSION}&{kind}_id={prompt_id}&timeout=5"
    return await call("GET", path, token=AGENT)


def text(result):
    return "".join(block.text for block in result.content if block.type == "text")


async def in_background(task_group, coroutine):
    """Starts `coroutine`; returns a box whose "result" it fills."""
    box = {}

    async def run():
        box["result"] = await coroutine

    task_group.start_soon(run)
    return box


async def main():
    server = StdioServerParameters(
        command=ASKGATE,
        # Progress every second, so a test sees it without a long wait.
        args=["mcp", "--server", URL, "--session", SESSION, "--progress-secs", "1"],
        env={"ASKGATE_TOKEN": AGENT},
    )
    async with stdio_client(server) as (read, write):
        async with ClientSession(read, write) as session:
            with anyio.fail_after(STEP):
                init = await session.initialize()
            check("initialize: the server is askgate", init.server_info.name == "askgate", init)
            check(
                f"initialize: MCP {init.protocol_version} agreed",
                init.protocol_version in ("2025-11-25", "2025-06-18"),
                init.protocol_version,
            )
            with anyio.fail_after(STEP):
                tools = (await session.list_tools()).tools
            by_name = {tool.name: tool for tool in tools}
            check(
                "tools/list: ask_human, request_approval and permission_prompt",
                sorted(by_name) == ["ask_human", "permission_prompt", "request_approval"],
                by_name,
            )
            check("ask_human needs a question", by_name["ask_human"].input_schema["required"] == ["question"])
            check(
                "request_approval has an output schema",
                by_name["request_approval"].output_schema["required"] == ["approved", "choice", "auto"],
            )

            # ask_human: the human picks a choice, the tool returns it.
            async with anyio.create_task_group() as group:
                asked = await in_background(
                    group,
                    session.call_tool("ask_human", {"question": "Which database?", "choices": ["postgres", "sqlite"]}),
                )
                head = await pending("clarify")
                check("the question reached the human with its choices", head["choices_offered"] == ["postgres", "sqlite"], head)
                await respond("clarify", head, "sqlite")
            result = asked["result"]
            check("ask_human returns the answer", (text(result), result.is_error) == ("sqlite", False), result)

            # request_approval, twice at once: approved once and denied.
            async with anyio.create_task_group() as group:
                first = await in_background(group, session.call_tool("request_approval", {"command": "make deploy"}))
                first_head = await pending("approval")
                second = await in_background(
                    group,
                    session.call_tool("request_approval", {"command": "rm -rf /", "description": "tidy up"}),
                )
                poll = None
                with anyio.fail_after(STEP):
                    while poll is None or poll["pending_count"] < 2:
                        since = 0 if poll is None else poll["version"]
                        poll = await call("GET", f"/api/approval/pending?session_id={SESSION}&since={since}&wait=5")
                check("two calls wait at once", poll["pending_count"] == 2, poll)
                await respond("approval", first_head, "once")
                await respond("approval", await pending("approval"), "deny")
            approved, denied = first["result"], second["result"]
            check(
                "request_approval: approved once, as structured content",
                approved.structured_content == {"approved": True, "choice": "once", "auto": False} and not approved.is_error,
                approved,
            )
            check(
                "request_approval: denied, and the text says not to run it",
                denied.structured_content["approved"] is False and "do not run" in text(denied),
                denied,
            )

            # An action with an edit and a note, a deny with its reason, a form.
            edit = {"type": "edit", "path": "config.toml", "edits": [{"old": "debug = false", "new": "debug = true"}]}
            edited = {"type": "edit", "path": "config.toml", "edits": [{"old": "debug = false", "new": "debug = 1"}]}
            async with anyio.create_task_group() as group:
                asked = await in_background(
                    group, session.call_tool("request_approval", {"action": edit, "reason": "to see the logs"})
                )
                head = await pending("approval")
                check("the action reached the human with its summary", head["action"] == edit and head["command"].startswith("edit config.toml"), head)
                body = {"session_id": SESSION, "approval_id": head["approval_id"], "choice": "once", "edited": edited, "note": "only this"}
                reply = await call("POST", "/api/approval/respond", body)
                check("the human approved an edit with a note", reply.get("ok") is True, reply)
            result = asked["result"]
            check(
                "request_approval: the edited action and the note, as structured content and text",
                result.structured_content == {"approved": True, "choice": "once", "auto": False, "edited": edited, "note": "only this"}
                and "instead" in text(result) and "only this" in text(result),
                result,
            )
            async with anyio.create_task_group() as group:
                asked = await in_background(group, session.call_tool("request_approval", {"command": "make deploy"}))
                head = await pending("approval")
                body = {"session_id": SESSION, "approval_id": head["approval_id"], "choice": "deny", "reason": "use the make target"}
                await call("POST", "/api/approval/respond", body)
            result = asked["result"]
            check(
                "request_approval: a deny's reason, as structured content and text",
                result.structured_content.get("reason") == "use the make target" and "use the make target" in text(result),
                result,
            )
            schema = {"type": "object", "properties": {"name": {"type": "string"}, "n": {"type": "integer"}}, "required": ["name"]}
            async with anyio.create_task_group() as group:
                asked = await in_background(group, session.call_tool("ask_human", {"question": "Which?", "schema": schema}))
                head = await pending("clarify")
                check("the form reached the human", head["schema"] == schema, head)
                body = {"session_id": SESSION, "clarify_id": head["clarify_id"], "response": {"name": "db", "n": 2}}
                await call("POST", "/api/clarify/respond", body)
            result = asked["result"]
            check("ask_human with a schema returns the JSON object", json.loads(text(result)) == {"name": "db", "n": 2}, result)

            # Claude Code's permission prompt tool, with a progress callback (the
            # SDK then sends a progressToken): progress while the human has not
            # answered, then the behavior JSON.
            progress = []
            twice = anyio.Event()

            async def on_progress(value, total, message):
                progress.append((value, message))
                if len(progress) >= 2:
                    twice.set()

            bash = {"command": "make deploy", "description": "Deploy"}
            arguments = {"tool_name": "Bash", "input": bash, "tool_use_id": "toolu_1"}
            async with anyio.create_task_group() as group:
                asked = await in_background(
                    group, session.call_tool("permission_prompt", arguments, progress_callback=on_progress)
                )
                head = await pending("approval")
                check("the tool call reached the human as a command", head["action"]["command"] == "make deploy", head)
                with anyio.fail_after(STEP):
                    await twice.wait()
                poll = await call("GET", f"/api/approval/pending?session_id={SESSION}")
                check("progress came while the human had not answered", poll["pending_count"] == 1, poll)
                await respond("approval", head, "once")
            check(
                "progress increased and said it waits for the human",
                progress[0][0] < progress[1][0] and all(m.startswith("waiting for the human (") for _, m in progress),
                progress,
            )
            result = asked["result"]
            check(
                "permission_prompt: allowed, the tool's input to run",
                json.loads(text(result)) == {"behavior": "allow", "updatedInput": bash} and not result.is_error,
                result,
            )

            # Cancelling the awaiting task makes the SDK send notifications/cancelled.
            with anyio.CancelScope() as scope:
                async with anyio.create_task_group() as group:
                    await in_background(group, session.call_tool("ask_human", {"question": "Never mind?"}))
                    head = await pending("clarify")
                    scope.cancel()
            ended = await outcome("clarify", head["clarify_id"])
            check("a cancelled call cancels its prompt on the server", ended.get("status") == "cancelled", ended)
            poll = await call("GET", f"/api/clarify/pending?session_id={SESSION}")
            check("and the human no longer sees it", poll["pending_count"] == 0, poll)

            # The session goes on after a cancellation.
            with anyio.fail_after(STEP):
                result = await session.call_tool("ask_human", {"question": "Quick?", "timeout_seconds": 1})
            check("an expired question is an error result that says so", result.is_error and "expired" in text(result), result)

    print(f"mcp sdk: all checks passed ({len(checks)})", flush=True)


if __name__ == "__main__":
    try:
        anyio.run(main)
    except BaseException as error:  # the whole story on stderr for the Rust side
        print(f"mcp sdk: FAILED: {error!r}", file=sys.stderr, flush=True)
        raise
