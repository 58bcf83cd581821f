"""What every listener gets from Bolt's context: the acting user, their Texts, the Services.

Bolt injects a listener's arguments by name, context keys included, so a listener declares
`user: SlackUser, t: Texts, services: Services` beside Bolt's own `ack`, `body`, `client`… and
a test calls it with plain arguments. The user and their Texts are read here once per request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from slack_bolt.middleware.async_middleware import AsyncMiddleware
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from bot.slack.identity import acting_user

if TYPE_CHECKING:
    from bot.services import Services

# Context keys, and so the names of listener parameters (TEXTS_IN_CONTEXT is "t").
USER_IN_CONTEXT = "user"
SERVICES_IN_CONTEXT = "services"


class RequestScope(AsyncMiddleware):
    """Puts the Services, and for a request with a user that user and their Texts, into the
    context; a request without one (app_uninstalled, tokens_revoked) passes untouched.

    A subclass of Bolt's AsyncMiddleware rather than a function given to app.middleware: Bolt
    then calls it directly, without building the keyword arguments a function would get."""

    def __init__(self, services: Services) -> None:
        self._services = services
        self._language = services.language

    async def async_process(
        self,
        *,
        req: AsyncBoltRequest,
        resp: BoltResponse,
        next: Callable[[], Awaitable[BoltResponse]],  # Bolt passes it by this name
    ) -> BoltResponse | None:
        context = req.context
        context[SERVICES_IN_CONTEXT] = self._services
        user = acting_user(context, req.body)
        if user is not None:
            context[USER_IN_CONTEXT] = user
            # Slack waits 3 s for options and the search takes most of it: never wait for
            # Slack there. texts_for leaves the Texts in the context itself.
            await self._language.texts_for(
                user,
                client=context.client,
                context=context,
                wait=req.body.get("type") != "block_suggestion",
            )
        return await next()
