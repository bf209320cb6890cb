// Hive Gateway serving the supergraph composed from mesh.config.ts.
// PEER_RESPONSE_CACHE_TTL_MS > 0 turns on the response cache (whole answers by document and
// variables, one global session: no auth here, as on the hub's side), else there is none.
import { defineConfig } from '@graphql-hive/gateway';

const ttl = Number(process.env.PEER_RESPONSE_CACHE_TTL_MS ?? '0');

export const gatewayConfig = defineConfig({
  additionalResolvers: {
    Query: {
      customer: (_root: unknown, args: { id: string }) => ({ id: args.id }),
    },
  },
  ...(ttl > 0 ? { responseCaching: { session: () => null, ttl } } : {}),
});
