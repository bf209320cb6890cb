// The hub's GraphiQL page: queries and mutations over HTTP, subscriptions over graphql-transport-ws,
// both with the headers the user enters in the headers pane (e.g. {"Authorization": "Bearer mkh_…"}):
// GraphiQL sends them as HTTP headers, and as the websocket's connection_init payload, where the hub
// reads its credential. Everything this page loads comes from the hub (hub.api.graphiql).
(function () {
  "use strict";

  const EXAMPLE_QUERY = `# MarkITing Hub
#
# With authentication on, put your key in the Headers pane below:
#   {"Authorization": "Bearer mkh_…"}
#
# Run: Ctrl-Enter. Completion: Ctrl-Space. Docs: the book icon.

query Customer($id: ID!) {
  customer(id: $id) {
    id
    name
    segments { id name }
    nextBestActions(channel: WEBSITE) { offerId title score }
  }
}
`;

  const parameters = {};
  for (const entry of window.location.search.slice(1).split("&")) {
    const eq = entry.indexOf("=");
    if (eq >= 0) {
      parameters[decodeURIComponent(entry.slice(0, eq))] = decodeURIComponent(entry.slice(eq + 1));
    }
  }

  function updateURL(data) {
    Object.assign(parameters, data);
    const search = Object.keys(parameters)
      .filter((key) => Boolean(parameters[key]))
      .map((key) => encodeURIComponent(key) + "=" + encodeURIComponent(parameters[key]))
      .join("&");
    history.replaceState(null, "", search ? "?" + search : window.location.pathname);
  }

  const fetchURL = window.location.href.split("?")[0];
  const subscriptionURL = (function () {
    const url = new URL(fetchURL);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    url.hash = "";
    return url.toString();
  })();

  const fetcher = GraphiQL.createFetcher({ url: fetchURL, subscriptionUrl: subscriptionURL });
  const explorer = GraphiQLPluginExplorer.explorerPlugin();

  function HubGraphiQL() {
    const [query, setQuery] = React.useState(parameters.q || EXAMPLE_QUERY);
    const [variables, setVariables] = React.useState(parameters.variables);
    return React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultEditorToolsVisibility: true,
      plugins: [explorer],
      query: query,
      variables: variables,
      // Headers hold credentials: never in the URL; kept in this browser's storage only when the user
      // turns that on in GraphiQL's settings.
      onEditQuery: (value) => {
        setQuery(value);
        updateURL({ q: value });
      },
      onEditVariables: (value) => {
        setVariables(value);
        updateURL({ variables: value });
      },
      inputValueDeprecation: true,
      isHeadersEditorEnabled: true,
    });
  }

  ReactDOM.createRoot(document.getElementById("graphiql")).render(React.createElement(HubGraphiQL));
})();
