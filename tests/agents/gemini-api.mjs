// A scripted Gemini API server on loopback for Gemini CLI: every request
// is recorded; `streamGenerateContent` answers a turn without a function
// response with one scripted function call (SSE, `alt=sse`), every later
// turn with a short text; `generateContent` (Gemini CLI's own routing and
// helper calls) gets a small JSON answer.

import { createServer } from 'node:http';

const usage = { promptTokenCount: 5, candidatesTokenCount: 5, totalTokenCount: 10 };

function candidate(parts) {
  return { candidates: [{ content: { role: 'model', parts }, finishReason: 'STOP', index: 0 }],
    usageMetadata: usage };
}

/// Starts the server; the scripted call is `{name, args}`.
export async function startGemini(call) {
  const requests = [];
  const server = createServer((request, response) => {
    let body = '';
    request.on('data', (chunk) => { body += chunk; });
    request.on('end', () => {
      let parsed = null;
      try { parsed = JSON.parse(body); } catch { parsed = body; }
      requests.push({ path: request.url, body: parsed });
      if (!request.url.includes(':streamGenerateContent')) {
        const text = JSON.stringify({ complexity_reasoning: 'simple', complexity_score: 10,
          reasoning: 'simple', model_choice: 'flash', next_speaker: 'user' });
        response.writeHead(200, { 'content-type': 'application/json' });
        response.end(JSON.stringify(candidate([{ text }])));
        return;
      }
      const answered = body.includes('"functionResponse"');
      const parts = answered ? [{ text: 'Done.' }] : [{ functionCall: call }];
      response.writeHead(200, { 'content-type': 'text/event-stream' });
      response.end(`data: ${JSON.stringify(candidate(parts))}\n\n`);
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    requests,
    /// The function responses Gemini CLI sent back, as text.
    toolResults: () => requests.flatMap((r) => (r.body?.contents ?? []).flatMap((c) => c.parts ?? []))
      .filter((part) => part.functionResponse).map((part) => JSON.stringify(part.functionResponse)),
    close: () => new Promise((resolve) => { server.closeAllConnections?.(); server.close(resolve); }),
  };
}
