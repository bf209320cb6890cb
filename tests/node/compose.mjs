// Apollo Federation 2 composition (@apollo/composition) of subgraphs given as JSON on stdin:
// [{"name": "...", "url": "...", "sdl": "..."}]. Prints {"errors": [...]} or {"supergraphSdl": "...",
// "hints": [...]} as one JSON object.
import { composeServices } from '@apollo/composition';
import { parse } from 'graphql';

let input = '';
for await (const chunk of process.stdin) input += chunk;
const services = JSON.parse(input).map(({ name, url, sdl }) => ({ name, url, typeDefs: parse(sdl) }));
const result = composeServices(services);
if (result.errors) {
  process.stdout.write(JSON.stringify({ errors: result.errors.map((e) => e.message) }));
} else {
  process.stdout.write(
    JSON.stringify({ supergraphSdl: result.supergraphSdl, hints: result.hints.map((h) => h.toString()) }),
  );
}
