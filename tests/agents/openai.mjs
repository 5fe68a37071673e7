// A scripted OpenAI Responses server on loopback for Codex: every request
// is recorded; a turn whose input has no function call output answers
// with one scripted `exec_command` call (streamed: response.created,
// output_item added and done, response.completed), every later turn with
// a short message that ends the run.

import { createServer } from 'node:http';

const sse = (events) => events.map((e) => `event: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`).join('');

/// Starts the server; `args` are the scripted call's arguments.
export async function startResponses(name, args) {
  const requests = [];
  const server = createServer((request, response) => {
    let body = '';
    request.on('data', (chunk) => { body += chunk; });
    request.on('end', () => {
      let parsed = null;
      try { parsed = JSON.parse(body); } catch { parsed = body; }
      requests.push({ path: request.url, body: parsed });
      const n = requests.length;
      const answered = body.includes('"function_call_output"');
      const item = answered
        ? { type: 'message', id: `msg_${n}`, role: 'assistant', status: 'completed',
            content: [{ type: 'output_text', text: 'Done.', annotations: [] }] }
        : { type: 'function_call', id: `fc_${n}`, call_id: `call_${n}`, name,
            arguments: JSON.stringify(args), status: 'completed' };
      const id = `resp_${n}`;
      response.writeHead(200, { 'content-type': 'text/event-stream' });
      response.end(sse([
        { type: 'response.created', response: { id } },
        { type: 'response.output_item.added', output_index: 0, item },
        { type: 'response.output_item.done', output_index: 0, item },
        { type: 'response.completed', response: { id, usage: { input_tokens: 5,
          input_tokens_details: null, output_tokens: 5, output_tokens_details: null, total_tokens: 10 } } },
      ]));
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    requests,
    /// The function call outputs Codex sent back, as text.
    toolResults: () => requests.flatMap((r) => (Array.isArray(r.body?.input) ? r.body.input : [])
      .filter((item) => item.type === 'function_call_output')
      .map((item) => typeof item.output === 'string' ? item.output : JSON.stringify(item.output))),
    close: () => new Promise((resolve) => { server.closeAllConnections?.(); server.close(resolve); }),
  };
}
