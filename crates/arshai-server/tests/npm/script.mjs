// Drives the server with the official `openai` npm package, unchanged.
//
// Run by tests/openai_npm.rs: `node script.mjs BASE_URL`, with OPENAI_NPM_DIR naming the
// directory `npm ci` installed this package.json into. The Rust side scripts the fake
// upstream's replies in the order of the calls below and checks what it received. Any failed
// assertion exits non-zero.
import assert from "node:assert/strict";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const dir = process.env.OPENAI_NPM_DIR;
assert.ok(dir, "OPENAI_NPM_DIR names the npm install");
const { default: OpenAI, NotFoundError } = await import(
  pathToFileURL(join(dir, "node_modules", "openai", "index.mjs")).href
);
const client = new OpenAI({ baseURL: process.argv[2], apiKey: "unused", maxRetries: 0, timeout: 30_000 });
const hello = [{ role: "user", content: "Hello there" }];

// 1. A completion.
const completion = await client.chat.completions.create({ model: "assistant", messages: hello });
assert.equal(completion.object, "chat.completion");
assert.equal(completion.choices[0].message.content, "Plain answer.");
assert.equal(completion.choices[0].finish_reason, "stop");
assert.equal(
  completion.usage.total_tokens,
  completion.usage.prompt_tokens + completion.usage.completion_tokens,
);

// 2. Streaming with usage, through the package's own SSE decoder.
const stream = await client.chat.completions.create({
  model: "assistant",
  messages: hello,
  stream: true,
  stream_options: { include_usage: true },
});
let text = "";
let last;
for await (const chunk of stream) {
  text += chunk.choices[0]?.delta?.content ?? "";
  last = chunk;
}
assert.equal(text, "Streamed answer here.");
assert.deepEqual(last.choices, []);
assert.ok(last.usage.completion_tokens > 0, JSON.stringify(last));

// 3. A client tool round trip: the call ends the turn, the result continues it.
const tools = [
  {
    type: "function",
    function: {
      name: "get_weather",
      description: "The weather in a city",
      parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
    },
  },
];
const question = [{ role: "user", content: "Weather in Oslo?" }];
const first = await client.chat.completions.create({ model: "assistant", messages: question, tools });
const choice = first.choices[0];
assert.equal(choice.finish_reason, "tool_calls", JSON.stringify(first));
assert.equal(choice.message.tool_calls.length, 1);
const call = choice.message.tool_calls[0];
assert.equal(call.function.name, "get_weather");
assert.deepEqual(JSON.parse(call.function.arguments), { city: "Oslo" });
const second = await client.chat.completions.create({
  model: "assistant",
  tools,
  messages: [...question, choice.message, { role: "tool", tool_call_id: call.id, content: "sunny, 21C" }],
});
assert.equal(second.choices[0].message.content, "Sunny in Oslo.");
console.log(`tool call id: ${call.id}`);

// 4. A typed error.
await assert.rejects(
  client.chat.completions.create({ model: "nobody", messages: hello }),
  (error) => error instanceof NotFoundError && error.status === 404 && error.code === "model_not_found",
);

console.log(`the openai npm package ${OpenAI.VERSION ?? ""} works unchanged`);
