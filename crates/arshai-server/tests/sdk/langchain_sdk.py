"""Drives the server with LangChain's ChatOpenAI (langchain-openai on the OpenAI SDK 3).

Run by tests/openai_sdk.rs: `python langchain_sdk.py BASE_URL`. The Rust side scripts the fake
upstream's replies in the order of the calls below and checks what it received. Any failed
assertion exits non-zero.
"""

import sys

import langchain_openai
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

llm = ChatOpenAI(base_url=sys.argv[1], api_key="unused", model="assistant", max_retries=0, timeout=30)


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return "sunny, 21C"


class Weather(BaseModel):
    """The weather in a city."""

    city: str
    temperature_c: int


# 1. bind_tools: the model's call comes back as tool_calls; the result continues the turn.
with_tools = llm.bind_tools([get_weather])
question = HumanMessage("Weather in Oslo?")
called = with_tools.invoke([question])
assert [(c["name"], c["args"]) for c in called.tool_calls] == [("get_weather", {"city": "Oslo"})], called
result = ToolMessage(get_weather.invoke(called.tool_calls[0]["args"]), tool_call_id=called.tool_calls[0]["id"])
answer = with_tools.invoke([question, called, result])
assert answer.content == "Sunny in Oslo.", answer
assert answer.tool_calls == [], answer
print("tool call id:", called.tool_calls[0]["id"])

# 2. with_structured_output, by its default method (json_schema in this version) and by
# function calling: both give back the typed object.
default = llm.with_structured_output(Weather).invoke("Weather in Oslo as JSON")
assert default == Weather(city="Oslo", temperature_c=21), default
by_tool = llm.with_structured_output(Weather, method="function_calling").invoke("Weather in Bergen")
assert by_tool == Weather(city="Bergen", temperature_c=12), by_tool

print("langchain-openai", langchain_openai.__version__ if hasattr(langchain_openai, "__version__") else "", "works unchanged")
