"""The executor of every operation: strawberry's, without the reference cycle graphql-core puts in it.

graphql-core (3.3) gives each executor `async_helpers`, a tuple of the executor's own bound methods, and
keeps it on the executor: a cycle. Everything an operation made hangs off that executor (the request,
the hub's Context, its loaders, the customer views) and so waited for Python's cyclic collector instead of
being freed by reference counting as soon as the answer was sent: about 126 objects a request, a young
collection every few dozen requests (10 ms each) and an older one every few hundred (40-70 ms), on the
request path. Here the helpers reach the executor through a weak reference, and an operation's objects
are freed when it ends (bench/RESULTS.md, ninth session).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Sequence
from typing import Any

from graphql.type import definition
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from hub.waiting import retrieve

# graphql-core 3.3's; an older one has no helpers, and no cycle to break
HELPERS: Any = getattr(definition, "GraphQLResolveInfoHelpers", None)
if HELPERS is not None:
    from graphql.pyutils.gather_with_cancel import gather_with_cancel


class Executor(StrawberryGraphQLCoreExecutionContext):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if HELPERS is None or getattr(self, "async_helpers", None) is None:
            return
        ref = weakref.ref(self)

        def track(values: Sequence[Any]) -> None:
            executor = ref()
            if executor is not None:
                executor.track_async_work(values)
            else:  # the operation is over: still settle the work, and read its outcome
                for value in values:
                    if asyncio.isfuture(value) or asyncio.iscoroutine(value):
                        asyncio.ensure_future(value).add_done_callback(retrieve)

        def gather(values: Sequence[Awaitable[Any]]) -> Awaitable[list[Any]]:
            executor = ref()
            if executor is None:  # only a resolver that outlived its operation gets here
                return gather_with_cancel(*values)  # what gather_async_work does
            return executor.gather_async_work(values)

        self.async_helpers = HELPERS(gather=gather, track=track)
