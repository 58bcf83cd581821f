"""The floor: a bare Bolt AsyncApp whose slash-command listener only acks, served the way
`b24mail serve` serves (Bolt's Starlette adapter, the same uvicorn settings).

Run by the ack benchmark as ``python -m bench._bare_bolt`` with PORT, SLACK_BOT_TOKEN,
SLACK_SIGNING_SECRET and SLACK_API_URL in the environment.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import uvicorn
from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from bot.runtime import uvicorn_options


def build() -> Starlette:
    client = AsyncWebClient(
        token=os.environ["SLACK_BOT_TOKEN"], base_url=os.environ["SLACK_API_URL"]
    )
    app = AsyncApp(
        client=client,
        signing_secret=os.environ["SLACK_SIGNING_SECRET"],
        process_before_response=True,
        logger=logging.getLogger("bare.bolt"),
    )

    @app.command("/b24mail")
    async def on_command(ack: Any) -> None:
        await ack()

    handler = AsyncSlackRequestHandler(app)

    async def events(request: Request) -> Response:
        return await handler.handle(request)

    async def healthz(_request: Request) -> Response:
        return PlainTextResponse("ok")

    return Starlette(
        routes=[
            Route("/slack/events", events, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )


def main() -> None:
    logging.basicConfig(level=logging.INFO)
    config = uvicorn.Config(
        build(), host="127.0.0.1", port=int(os.environ["PORT"]), **uvicorn_options()
    )
    # As `b24mail serve` does: the server's coroutine on asyncio's default loop.
    asyncio.run(uvicorn.Server(config).serve())


if __name__ == "__main__":
    main()
