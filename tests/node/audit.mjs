// The GraphQL-over-HTTP spec's server audit (graphql-http's auditServer) against a running hub.
// Usage: node audit.mjs <url> [token]; prints one JSON array of {id, name, status, reason}.
import { auditServer } from 'graphql-http';

const [url, token] = process.argv.slice(2);
const fetchFn = (input, init = {}) => {
  const headers = new Headers(init.headers);
  if (token) headers.set('authorization', `Bearer ${token}`);
  return fetch(input, { ...init, headers });
};
const results = await auditServer({ url, fetchFn });
const out = [];
for (const r of results) {
  const entry = { id: r.id, name: r.name, status: r.status };
  if (r.status !== 'ok') {
    entry.reason = r.reason;
    try {
      entry.response = { status: r.response.status, headers: Object.fromEntries(r.response.headers), body: await r.response.text() };
    } catch {
      // the body was read by the audit already
    }
  }
  out.push(entry);
}
process.stdout.write(JSON.stringify(out));
