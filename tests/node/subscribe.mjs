// The graphql-ws reference client (with ws) subscribing to the hub: node subscribe.mjs <ws-url> <token>
// <query> <variables-json> [count]. The credential goes in connectionParams, as browsers send it.
// Prints one JSON line per event: {"event": "connected"}, {"event": "next", "payload": ...},
// {"event": "error", ...}, {"event": "closed", "code": ...}; exits after `count` next messages (default 2).
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const [url, token, query, variables, count = '2'] = process.argv.slice(2);
const print = (line) => process.stdout.write(`${JSON.stringify(line)}\n`);
const client = createClient({
  url,
  webSocketImpl: WebSocket,
  connectionParams: token ? { authorization: `Bearer ${token}` } : {},
  retryAttempts: 0,
  lazy: true,
  on: {
    connected: () => print({ event: 'connected' }),
    closed: (event) => print({ event: 'closed', code: event.code, reason: event.reason }),
  },
});
let received = 0;
await new Promise((resolve) => {
  client.subscribe(
    { query, variables: JSON.parse(variables) },
    {
      next: (payload) => {
        print({ event: 'next', payload });
        received += 1;
        if (received >= Number(count)) resolve();
      },
      error: (error) => {
        const detail = Array.isArray(error) ? error : { code: error?.code, reason: error?.reason, message: error?.message };
        print({ event: 'error', error: detail });
        resolve();
      },
      complete: () => resolve(),
    },
  );
});
await client.dispose();
