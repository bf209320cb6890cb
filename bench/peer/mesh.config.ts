// The peer of bench/peer_gateway.py: GraphQL Mesh composes the five REST systems of bench/systems.py
// (s1..s5, `GET /<s>/customers?ids=a,b` -> {"data": [{"id": "a", "value": "s1-a"}]}) into one
// supergraph, served by Hive Gateway (gateway.config.ts). The systems' base URL comes from
// SYSTEMS_URL, so this is composed at bench time: `SYSTEMS_URL=http://127.0.0.1:PORT npx mesh-compose -o supergraph.graphql`.
import { defineConfig } from '@graphql-mesh/compose-cli';
import { loadJSONSchemaSubgraph } from '@omnigraph/json-schema';

const base = process.env.SYSTEMS_URL;
if (!base) {
  throw new Error('SYSTEMS_URL is not set (the base URL of bench/systems.py)');
}
const systems = ['s1', 's2', 's3', 's4', 's5'];

export const composeConfig = defineConfig({
  subgraphs: systems.map(s => ({
    sourceHandler: loadJSONSchemaSubgraph(s, {
      endpoint: `${base}/${s}`,
      operations: [
        {
          type: 'Query',
          field: `${s}Customers`,
          path: '/customers',
          method: 'GET',
          argTypeMap: { ids: { type: 'array', items: { type: 'string' } } },
          requiredArgs: ['ids'],
          queryParamArgMap: { ids: 'ids' },
          queryStringOptionsByParam: { ids: { arrayFormat: 'comma' } },
          responseSchema: {
            type: 'object',
            title: `${s.toUpperCase()}Page`,
            properties: {
              data: {
                type: 'array',
                items: {
                  type: 'object',
                  title: `${s.toUpperCase()}Record`,
                  properties: { id: { type: 'string' }, value: { type: 'string' } },
                  required: ['id', 'value'],
                },
              },
            },
            required: ['data'],
          },
        },
      ],
    }),
  })),
  // One unified root field: `customer(id)` (resolved to `{ id }` by gateway.config.ts, as the hub's
  // golden record gives the id), each system's part delegated to that system in a batch
  // (`keysArg`/`valueKeyField`: one call per system per request, the five concurrently).
  additionalTypeDefs: /* GraphQL */ `
    type Customer {
      id: ID!
${systems
  .map(
    s => `      ${s}: ${s.toUpperCase()}Record
        @resolveTo(
          sourceName: "${s}"
          sourceTypeName: "Query"
          sourceFieldName: "${s}Customers"
          keyField: "id"
          keysArg: "ids"
          result: "data"
          valueKeyField: "id"
        )`,
  )
  .join('\n')}
    }
    extend type Query {
      customer(id: ID!): Customer
    }
  `,
});
