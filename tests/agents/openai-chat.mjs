// A scripted OpenAI Chat Completions server on loopback for hermes-agent
// (its `provider: custom` endpoint): every request is recorded; a turn
// with no tool message answers with one scripted tool call, every later
// turn with a short text that ends the run; streamed (`stream: true`, SSE
// chunks and `[DONE]`) or not, as asked. hermes-agent's probes of the
// endpoint (`/v1/models`, `/props`, ...) get a 404.

import { createServer } from 'node:http';

function reply(answered, call) {
  return answered
    ? { message: { role: 'assistant', content: 'Done.' }, finish: 'stop' }
    : { message: { role: 'assistant', content: null, tool_calls: [{ id: 'call_askgate_test_1', type: 'function',
        function: { name: call.name, arguments: JSON.stringify(call.args) } }] }, finish: 'tool_calls' };
}

const usage = { prompt_tokens: 5, completion_tokens: 5, total_tokens: 10 };

function chunks({ message, finish }) {
  const delta = message.tool_calls
    ? { role: 'assistant', tool_calls: message.tool_calls.map((call, index) => ({ index, ...call })) }
    : message;
  const chunk = (choice, extra = {}) => `data: ${JSON.stringify({ id: 'chatcmpl-test', object: 'chat.completion.chunk',
    created: 1, model: 'test-model', choices: [{ index: 0, ...choice }], ...extra })}\n\n`;
  return chunk({ delta, finish_reason: null }) + chunk({ delta: {}, finish_reason: finish }, { usage })
    + 'data: [DONE]\n\n';
}

/// Starts the server; the scripted call is `{name, args}`.
export async function startChat(call) {
  const requests = [];
  const server = createServer((request, response) => {
    let body = '';
    request.on('data', (chunk) => { body += chunk; });
    request.on('end', () => {
      let parsed = null;
      try { parsed = JSON.parse(body); } catch { parsed = body; }
      requests.push({ path: request.url, body: parsed });
      if (!request.url.endsWith('/chat/completions')) {
        response.writeHead(404, { 'content-type': 'application/json' });
        response.end('{}');
        return;
      }
      const answered = (parsed?.messages ?? []).some((m) => m.role === 'tool');
      const turn = reply(answered, call);
      if (parsed?.stream) {
        response.writeHead(200, { 'content-type': 'text/event-stream' });
        response.end(chunks(turn));
      } else {
        response.writeHead(200, { 'content-type': 'application/json' });
        response.end(JSON.stringify({ id: 'chatcmpl-test', object: 'chat.completion', created: 1, model: 'test-model',
          choices: [{ index: 0, message: turn.message, finish_reason: turn.finish }], usage }));
      }
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    requests,
    /// The tool messages hermes-agent sent back, as text.
    toolResults: () => requests.flatMap((r) => r.body?.messages ?? [])
      .filter((m) => m.role === 'tool')
      .map((m) => typeof m.content === 'string' ? m.content : JSON.stringify(m.content)),
    close: () => new Promise((resolve) => { server.closeAllConnections?.(); server.close(resolve); }),
  };
}
