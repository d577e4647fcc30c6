"""Drives the server with the official OpenAI Python SDK, unchanged.

Run by tests/openai_sdk.rs: `python openai_sdk.py BASE_URL`. The first call that reaches the
upstream gets a stream that breaks after a few chunks (scripted by the Rust side); every
later call gets the fake upstream's echo. Any failed assertion exits non-zero.
"""

import sys

import openai
from openai import OpenAI

client = OpenAI(base_url=sys.argv[1], api_key="unused", max_retries=0, timeout=30)
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
assert completion.choices[0].message.content == "echo: Hello there", completion
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
assert text == "echo: Hello there", text
assert chunks[-1].choices == [] and chunks[-1].usage == completion.usage, chunks[-1]

# 5. Memory through X-Conversation-Id.
for message in ["My name is Ada.", "What is my name?"]:
    client.chat.completions.create(
        model="assistant",
        messages=[{"role": "user", "content": message}],
        extra_headers={"X-Conversation-Id": "sdk-1"},
    )

# 6. Errors become the SDK's typed exceptions.
try:
    client.chat.completions.create(model="nobody", messages=hello)
    raise AssertionError("an unknown model did not raise")
except openai.NotFoundError as error:
    assert error.status_code == 404 and error.code == "model_not_found", error
try:
    client.chat.completions.create(model="assistant", messages=hello, n=2)
    raise AssertionError("n=2 did not raise")
except openai.BadRequestError as error:
    assert error.param == "n", error

print("the OpenAI SDK", openai.__version__, "works unchanged")
