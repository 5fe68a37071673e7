// A scripted Anthropic Messages server on loopback for Claude Code: every
// request is recorded; the first turn answers with one scripted tool call
// (streamed as Claude Code expects: message_start, a tool_use block, its
// input as input_json_delta, message_delta with stop_reason tool_use,
// message_stop), every later turn with a short text that ends the run.

import { createServer } from 'node:http';

function frames(events) {
  return events.map(([type, data]) => `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`).join('');
}

function message(id, content, stopReason) {
  const start = ['message_start', { message: { id, type: 'message', role: 'assistant', model: 'claude-test',
    content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: 10, output_tokens: 1 } } }];
  const blocks = content.flatMap((block, index) => block.type === 'tool_use'
    ? [['content_block_start', { index, content_block: { type: 'tool_use', id: block.id, name: block.name, input: {} } }],
       ['content_block_delta', { index, delta: { type: 'input_json_delta', partial_json: JSON.stringify(block.input) } }],
       ['content_block_stop', { index }]]
    : [['content_block_start', { index, content_block: { type: 'text', text: '' } }],
       ['content_block_delta', { index, delta: { type: 'text_delta', text: block.text } }],
       ['content_block_stop', { index }]]);
  return frames([start, ...blocks,
    ['message_delta', { delta: { stop_reason: stopReason, stop_sequence: null }, usage: { output_tokens: 5 } }],
    ['message_stop', {}]]);
}

/// Starts the server; `toolCalls` is `{name, input}`, or a list of them
/// made one a turn (the turn is the number of tool results so far).
/// Returns its url, the recorded requests and `close`.
export async function startAnthropic(toolCalls) {
  const script = Array.isArray(toolCalls) ? toolCalls : [toolCalls];
  const requests = [];
  const server = createServer((request, response) => {
    let body = '';
    request.on('data', (chunk) => { body += chunk; });
    request.on('end', () => {
      let parsed = null;
      try { parsed = JSON.parse(body); } catch { parsed = body; }
      requests.push({ path: request.url, body: parsed });
      if (!request.url.startsWith('/v1/messages') || request.url.includes('count_tokens')) {
        response.writeHead(200, { 'content-type': 'application/json' });
        response.end(JSON.stringify({ input_tokens: 10 }));
        return;
      }
      const turn = (JSON.stringify(parsed?.messages ?? []).match(/"type":"tool_result"/g) ?? []).length;
      const asksForTools = Array.isArray(parsed?.tools) && parsed.tools.length > 0;
      let content, stop;
      if (asksForTools && turn < script.length) {
        content = [{ type: 'tool_use', id: `toolu_askgate_test_${turn + 1}`, ...script[turn] }];
        stop = 'tool_use';
      } else {
        content = [{ type: 'text', text: 'Done.' }];
        stop = 'end_turn';
      }
      if (parsed?.stream) {
        response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
        response.end(message(`msg_${requests.length}`, content, stop));
      } else {
        response.writeHead(200, { 'content-type': 'application/json' });
        response.end(JSON.stringify({ id: `msg_${requests.length}`, type: 'message', role: 'assistant',
          model: 'claude-test', content, stop_reason: stop, stop_sequence: null,
          usage: { input_tokens: 10, output_tokens: 5 } }));
      }
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${server.address().port}`;
  return {
    url, requests,
    /// The tool_result blocks Claude Code sent back, as text.
    toolResults: () => requests.flatMap((r) => (r.body?.messages ?? []).flatMap((m) =>
      Array.isArray(m.content) ? m.content.filter((b) => b.type === 'tool_result') : []))
      .map((b) => typeof b.content === 'string' ? b.content : JSON.stringify(b.content)),
    close: () => new Promise((resolve) => { server.closeAllConnections?.(); server.close(resolve); }),
  };
}
