"""The official `openai` and `openai-agents` Python SDKs, unchanged, against the server's
Responses API (run by crates/arshai-server/tests/responses_api.rs with the server's /v1
URL as the only argument; the fake upstream's replies are scripted there, in order)."""

import asyncio
import sys

from openai import AsyncOpenAI, OpenAI
from pydantic import BaseModel

base_url = sys.argv[1]
client = OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=60)

# Plain.
plain = client.responses.create(model="assistant", input="Hello")
assert plain.status == "completed", plain
assert plain.output_text == "Plain answer.", plain

# Streamed, through the SDK's stream helper (it checks the events' order as it
# accumulates them).
with client.responses.stream(model="assistant", input="Stream please") as stream:
    deltas = [event.delta for event in stream if event.type == "response.output_text.delta"]
    final = stream.get_final_response()
assert "".join(deltas) == "Streamed answer.", deltas
assert final.output_text == "Streamed answer.", final
assert final.usage is not None and final.usage.total_tokens > 0, final

# A function tool round trip, continued with previous_response_id.
tools = [
    {
        "type": "function",
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
        "strict": True,
    }
]
asked = client.responses.create(model="assistant", input="Weather in Paris?", tools=tools)
calls = [item for item in asked.output if item.type == "function_call"]
assert len(calls) == 1 and calls[0].name == "get_weather", asked
assert calls[0].arguments == '{"city":"Paris"}', calls[0]
answered = client.responses.create(
    model="assistant",
    previous_response_id=asked.id,
    tools=tools,
    input=[{"type": "function_call_output", "call_id": calls[0].call_id, "output": "sunny"}],
)
assert answered.output_text == "It is sunny in Paris.", answered

# The conversation goes on from the latest response.
later = client.responses.create(
    model="assistant", previous_response_id=answered.id, input="My name is Ada. Who am I?"
)
assert later.output_text == "Your name is Ada.", later
assert later.previous_response_id == answered.id, later

# Any stored response can be retrieved.
retrieved = client.responses.retrieve(answered.id)
assert retrieved.id == answered.id and retrieved.output_text == "It is sunny in Paris.", retrieved

# openai-agents with its default transport (the Responses API): a function tool and a
# structured output type.
from agents import (  # noqa: E402
    Agent,
    Runner,
    function_tool,
    set_default_openai_client,
    set_tracing_disabled,
)


class Sum(BaseModel):
    answer: int
    explanation: str


@function_tool
def add(a: int, b: int) -> int:
    """Adds two numbers."""
    return a + b


set_tracing_disabled(True)
set_default_openai_client(
    AsyncOpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=60),
    use_for_tracing=False,
)
agent = Agent(
    name="math", model="assistant", instructions="Add.", tools=[add], output_type=Sum
)


async def run_agent():
    # One event loop for both runs: the client's connections belong to it.
    result = await Runner.run(agent, "What is 2 + 3?")
    assert isinstance(result.final_output, Sum), result.final_output
    assert result.final_output.answer == 5, result.final_output
    # The same agent, streamed.
    run = Runner.run_streamed(agent, "And 2 + 3 again?")
    kinds = [event.type async for event in run.stream_events()]
    assert "raw_response_event" in kinds, kinds
    assert isinstance(run.final_output, Sum) and run.final_output.answer == 5, run.final_output


asyncio.run(run_agent())

print("responses sdk ok")
