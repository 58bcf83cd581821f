"""Limits that keep one user from abusing the portal: recipients per e-mail and message size."""

from __future__ import annotations

import time

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.mail.compose import BODY_MAX_CHARS
from bot.slack import ids
from tests.fakes.bitrix24_portal import FakePortal
from tests.fakes.slack_api import FakeSlack
from tests.security.support import compose_payload, compose_values, count_rows, link
from tests.support.app import running_app


async def test_more_recipients_than_the_cap_are_refused_across_to_cc_and_bcc(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    """The cap counts To, Cc and Bcc together (each person once); over it nothing is queued."""
    async with running_app(engine=engine, slack=slack, b24mail_max_recipients=3) as app:
        await link(app, portal)
        over = app.json(
            await app.interactive(
                compose_payload(
                    compose_values(
                        to="a@x.example, b@x.example", cc="c@x.example", bcc="d@x.example"
                    ),
                    view_id="VOVER",
                )
            )
        )
        queued_after_refusal = (await count_rows(engine))["outbox"]
        repeated = app.json(
            await app.interactive(
                compose_payload(
                    compose_values(
                        to="a@x.example, B@X.example", cc="A@x.example", bcc="c@x.example"
                    ),
                    view_id="VSAME",
                )
            )
        )
        rows = await count_rows(engine)
    assert "Too many recipients: 4 (at most 3 per e-mail)" in over["errors"][ids.TO_BLOCK]
    assert queued_after_refusal == 0
    assert repeated == {}  # three people, however often they are named
    assert rows["outbox"] == 1


async def test_an_oversized_body_gets_a_clear_inline_error_and_is_not_queued(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    """One character over BODY_MAX_CHARS, or most of a megabyte: the modal says how long and the
    cap (a request body over 1 MB is refused with 413 before it is read, see test_hostile_bodies)."""
    async with running_app(engine=engine, slack=slack) as app:
        await link(app, portal)
        answers = []
        for view_id, length in (("VJUST", BODY_MAX_CHARS + 1), ("VHUGE", 900_000)):
            # CPU time of this process (the app is served in it), not the wall clock: the work
            # of other processes on a busy machine does not count against Slack's 3 seconds.
            started = time.process_time()
            answers.append(
                app.json(
                    await app.interactive(
                        compose_payload(_with_body("x" * length), view_id=view_id)
                    )
                )
            )
            assert time.process_time() - started < 2.5, "the ack must stay inside Slack's 3 seconds"
        at_cap = app.json(
            await app.interactive(compose_payload(_with_body("y" * BODY_MAX_CHARS), view_id="VCAP"))
        )
        rows = await count_rows(engine)
    just_over, huge = (answer["errors"][ids.BODY_BLOCK] for answer in answers)
    assert f"too long ({BODY_MAX_CHARS + 1} characters, at most {BODY_MAX_CHARS})" in just_over
    assert f"too long (900000 characters, at most {BODY_MAX_CHARS})" in huge
    assert at_cap == {}
    assert rows["outbox"] == 1


def _with_body(text: str) -> dict[str, object]:
    values = compose_values()
    values[ids.BODY_BLOCK] = {
        ids.BODY_ACTION: {
            "type": "rich_text_input",
            "rich_text_value": {
                "type": "rich_text",
                "elements": [
                    {"type": "rich_text_section", "elements": [{"type": "text", "text": text}]}
                ],
            },
        }
    }
    return values
