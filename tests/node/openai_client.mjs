// The official OpenAI Node client, used as an application uses it, against `llama-triton serve`.
// Usage: node openai_client.mjs BASE_URL API_KEY [chat]
// Prints one JSON object with what the client got; tests/python/test_serve_openai_node.py
// compares it with the CLI's greedy output.
import OpenAI, { AuthenticationError, BadRequestError } from "openai";

const [base, key, mode] = process.argv.slice(2);
const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: key, maxRetries: 0, timeout: 60000 });
const model = (await client.models.list()).data[0].id;
const prompt = "Once upon a time";
const out = { model };

const c = await client.completions.create({ model, prompt, max_tokens: 30, temperature: 0 });
out.completion = { text: c.choices[0].text, finish: c.choices[0].finish_reason, usage: c.usage, object: c.object };

let text = "", chunks = 0, usage = null, finish = null;
const stream = await client.completions.create({
  model, prompt, max_tokens: 30, temperature: 0, stream: true, stream_options: { include_usage: true },
});
for await (const ch of stream) {
  chunks++;
  if (ch.choices.length) {
    text += ch.choices[0].text;
    finish = ch.choices[0].finish_reason ?? finish;
  }
  if (ch.usage) usage = ch.usage;
}
out.completion_stream = { text, chunks, usage, finish };

try {
  await client.completions.create({ model, prompt, max_tokens: -1 });
} catch (e) {
  out.bad_request = { isBadRequest: e instanceof BadRequestError, status: e.status, param: e.param, type: e.type };
}
try {
  await new OpenAI({ baseURL: `${base}/v1`, apiKey: "wrong", maxRetries: 0 }).models.list();
} catch (e) {
  out.bad_key = { isAuth: e instanceof AuthenticationError, status: e.status };
}

if (mode === "chat") {
  const messages = [{ role: "system", content: "You tell short stories." }, { role: "user", content: "Tell me about a dog." }];
  const r = await client.chat.completions.create({ model, messages, max_tokens: 24, temperature: 0 });
  out.chat = { content: r.choices[0].message.content, role: r.choices[0].message.role, finish: r.choices[0].finish_reason, usage: r.usage, object: r.object };
  let content = "", role = null, cfinish = null;
  const cs = await client.chat.completions.create({ model, messages, max_tokens: 24, temperature: 0, stream: true });
  for await (const ch of cs) {
    const d = ch.choices[0]?.delta ?? {};
    if (d.role) role = d.role;
    if (d.content) content += d.content;
    cfinish = ch.choices[0]?.finish_reason ?? cfinish;
  }
  out.chat_stream = { content, role, finish: cfinish };
}
console.log(JSON.stringify(out));
