"""Drives the server with the official OpenAI Python SDK (major 3), unchanged.

Run by tests/openai_sdk.rs: `python openai_sdk.py BASE_URL KEY LIMITED_KEY RATED_KEY`, where
KEY may use every agent, LIMITED_KEY only another agent and RATED_KEY one request a minute.
The Rust side scripts the fake upstream's replies in the order of the calls below and checks
what the upstream received; this script checks what the SDK got back. Any failed assertion
exits non-zero.
"""

import json
import sys

import openai
from openai import OpenAI
from pydantic import BaseModel

base_url, key, limited_key, rated_key = sys.argv[1:5]
assert openai.__version__.startswith("3."), openai.__version__


def client_with(api_key):
    return OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=30)


client = client_with(key)
hello = [{"role": "user", "content": "Hello there"}]

# 1. A failure after the stream started surfaces as the SDK's APIError.
try:
    for _ in client.chat.completions.create(model="assistant", messages=hello, stream=True):
        pass
    raise AssertionError("the broken stream did not raise")
except openai.APIError as error:
    assert not isinstance(error, openai.APIStatusError), error
    print("mid-stream error:", error.message)

# 2. Models.
assert [m.id for m in client.models.list()] == ["assistant"]
assert client.models.retrieve("assistant").owned_by == "arshai"

# 3. A completion.
completion = client.chat.completions.create(model="assistant", messages=hello)
assert completion.object == "chat.completion"
assert completion.choices[0].message.content == "Plain answer.", completion
assert completion.choices[0].finish_reason == "stop"
assert completion.usage.total_tokens == (
    completion.usage.prompt_tokens + completion.usage.completion_tokens
)

# 4. Streaming with usage, through the SDK's own SSE decoder.
chunks = list(
    client.chat.completions.create(
        model="assistant",
        messages=hello,
        stream=True,
        stream_options={"include_usage": True},
    )
)
text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
assert text == "Streamed answer here.", text
finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
assert finishes == ["stop"], finishes
usage = chunks[-1].usage
assert chunks[-1].choices == [] and usage.completion_tokens > 0, chunks[-1]
assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens, usage

# 5. Memory through X-Conversation-Id.
for message, answer in [("My name is Ada.", "Hello Ada."), ("What is my name?", "Your name is Ada.")]:
    reply = client.chat.completions.create(
        model="assistant",
        messages=[{"role": "user", "content": message}],
        extra_headers={"X-Conversation-Id": "sdk-1"},
    )
    assert reply.choices[0].message.content == answer, reply


# 6. Structured output: parse() sends the Pydantic model as a json_schema response_format
# and parses the answer back into it.
class Weather(BaseModel):
    city: str
    temperature_c: int


parsed = client.chat.completions.parse(
    model="assistant",
    messages=[{"role": "user", "content": "Weather in Oslo as JSON"}],
    response_format=Weather,
)
weather = parsed.choices[0].message.parsed
assert weather == Weather(city="Oslo", temperature_c=21), parsed

# 7. A client tool round trip: the call ends the turn, the result continues it.
tools = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]
question = [{"role": "user", "content": "Weather in Oslo?"}]
first = client.chat.completions.create(model="assistant", messages=question, tools=tools)
choice = first.choices[0]
assert choice.finish_reason == "tool_calls", first
assert choice.message.content is None, first
(call,) = choice.message.tool_calls
assert call.type == "function" and call.function.name == "get_weather", call
assert json.loads(call.function.arguments) == {"city": "Oslo"}, call
follow_up = question + [
    choice.message.model_dump(exclude_none=True),
    {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21C"},
]
second = client.chat.completions.create(model="assistant", messages=follow_up, tools=tools)
assert second.choices[0].message.content == "Sunny in Oslo.", second
assert second.choices[0].finish_reason == "stop", second
print("tool call id:", call.id)

# 8. n=2: two independent choices, indexed 0 and 1.
two = client.chat.completions.create(model="assistant", messages=hello, n=2)
assert [c.index for c in two.choices] == [0, 1], two
assert sorted(c.message.content for c in two.choices) == ["first", "second"], two

# 9. stop reaches the upstream (checked by the Rust side).
stopped = client.chat.completions.create(model="assistant", messages=hello, stop=["END", "STOP"])
assert stopped.choices[0].message.content == "Stopped answer.", stopped

# 10. Every error is the SDK's typed exception, in OpenAI's shape.
def expect(exception, call, **fields):
    try:
        call()
    except exception as error:
        for name, value in fields.items():
            assert getattr(error, name) == value, (name, error, error.body)
        return error
    raise AssertionError(f"{exception.__name__} was not raised")


expect(
    openai.BadRequestError,
    lambda: client.chat.completions.create(model="assistant", messages=hello, reasoning_effort="high"),
    status_code=400,
    param="reasoning_effort",
    type="invalid_request_error",
)
expect(
    openai.BadRequestError,
    lambda: client.chat.completions.create(model="assistant", messages=hello, n=2, stream=True),
    status_code=400,
    param="n",
)
expect(
    openai.AuthenticationError,
    lambda: client_with("not-a-key").chat.completions.create(model="assistant", messages=hello),
    status_code=401,
)
expect(
    openai.PermissionDeniedError,
    lambda: client_with(limited_key).chat.completions.create(model="assistant", messages=hello),
    status_code=403,
)
expect(
    openai.NotFoundError,
    lambda: client.chat.completions.create(model="nobody", messages=hello),
    status_code=404,
    code="model_not_found",
)
rated = client_with(rated_key)
within = rated.chat.completions.create(model="assistant", messages=hello)
assert within.choices[0].message.content == "Within the limit.", within
limited = expect(
    openai.RateLimitError,
    lambda: rated.chat.completions.create(model="assistant", messages=hello),
    status_code=429,
)
assert limited.response.headers.get("retry-after"), limited.response.headers

print("the OpenAI SDK", openai.__version__, "works unchanged")
