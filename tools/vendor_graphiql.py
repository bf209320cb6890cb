"""Copy GraphiQL's built assets from npm into the hub (hub/api/static/graphiql), so its page works offline.

    npm ci --prefix tests/node        # the versions tests/node/package-lock.json pins
    .venv/bin/python tools/vendor_graphiql.py

To move to newer versions: change them in tests/node/package.json, `npm install --prefix tests/node`,
run this script, and commit package.json, package-lock.json and hub/api/static/graphiql together
(tests/ecosystem/test_graphiql_offline.py checks the copies against tests/node). The page itself
(graphiql.html) and its script (hub-graphiql.js) are the hub's own and are not touched.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NODE_MODULES = ROOT / "tests" / "node" / "node_modules"
TARGET = ROOT / "hub" / "api" / "static" / "graphiql"

# package -> (file in the package, name served at /graphql/assets/<name>)
FILES: dict[str, list[tuple[str, str]]] = {
    "react": [("umd/react.production.min.js", "react.production.min.js")],
    "react-dom": [("umd/react-dom.production.min.js", "react-dom.production.min.js")],
    # graphiql's UMD build bundles graphql, codemirror and graphql-ws (subscriptions).
    "graphiql": [("graphiql.min.js", "graphiql.min.js"), ("graphiql.min.css", "graphiql.min.css")],
    "@graphiql/plugin-explorer": [
        ("dist/index.umd.js", "plugin-explorer.umd.js"),
        ("dist/style.css", "plugin-explorer.css"),
    ],
}
# Where a package ships no license file of its own, the one of the repository it is built from.
LICENSE_FROM = {"@graphiql/plugin-explorer": "graphiql"}


def _without_source_map(text: str) -> str:
    """The source maps are not vendored: no reference to them (a browser would ask for them)."""
    marks = ("//# sourceMappingURL", "/*# sourceMappingURL")
    return "".join(line for line in text.splitlines(keepends=True) if not line.lstrip().startswith(marks))


def main() -> int:
    if not NODE_MODULES.is_dir():
        print(f"{NODE_MODULES} is missing: run `npm ci --prefix tests/node` first", file=sys.stderr)
        return 1
    TARGET.mkdir(parents=True, exist_ok=True)
    versions: dict[str, dict[str, str]] = {}
    for package, files in FILES.items():
        folder = NODE_MODULES / package
        manifest = json.loads((folder / "package.json").read_text(encoding="utf-8"))
        license_folder = NODE_MODULES / LICENSE_FROM.get(package, package)
        license_name = f"LICENSE.{package.replace('@', '').replace('/', '-')}"
        shutil.copyfile(license_folder / "LICENSE", TARGET / license_name)
        for source, name in files:
            text = (folder / source).read_text(encoding="utf-8")
            (TARGET / name).write_text(_without_source_map(text), encoding="utf-8")
        versions[package] = {
            "version": manifest["version"],
            "license": manifest.get("license", "see the license file"),
            "licenseFile": license_name,
            "files": ", ".join(name for _, name in files),
        }
    (TARGET / "VENDORED.json").write_text(json.dumps(versions, indent=2) + "\n", encoding="utf-8")
    listed = ", ".join(f"{p} {v['version']}" for p, v in versions.items())
    print(f"vendored {listed} into {TARGET}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
