"""Drafts, signatures and templates: `/b24mail drafts | signature | templates`, the view_closed
that keeps a draft, and the compose modal's Template select."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from bot.identity import SlackUser
from bot.mail.errors import MailError
from bot.slack import ids
from bot.slack.blocks import modal, section
from bot.slack.drafting import (
    draft_content,
    draft_prefill,
    email_of,
    modal_wording,
    with_signature,
)
from bot.slack.errors import explain
from bot.slack.home_tab import refresh_home
from bot.slack.listeners.command_call import CommandCall
from bot.slack.metadata import ViewOrigin
from bot.slack.render.compose import Prefill, compose_modal
from bot.slack.render.connect import connect_prompt, escape_mrkdwn
from bot.slack.render.reply import field_block_ids
from bot.slack.render.writing import (
    drafts_blocks,
    signature_block_id,
    signature_modal,
    template_modal,
    templates_blocks,
)
from bot.slack.richtext import is_blank
from bot.slack.slack_calls import open_view_or_explain, reachable
from bot.slack.view_state import rich_text_value, selected_value, text_value
from bot.slack.wording import Texts

if TYPE_CHECKING:
    from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
    from slack_sdk.web.async_client import AsyncWebClient

    from bot.services import Services

log = logging.getLogger(__name__)


# --- drafts -----------------------------------------------------------------------------------


async def on_closed(
    ack: AsyncAck, view: dict[str, Any], user: SlackUser, services: Services
) -> None:
    """The compose or reply modal was closed: keep what was typed as a draft (nothing typed,
    or only the signature that was put there: nothing kept)."""
    await ack()
    origin = ViewOrigin.decode(view.get("private_metadata"))
    blocks = field_block_ids(view)
    sender = selected_value(view, blocks["from"], ids.FROM_ACTION)
    signature = await services.writing.signature_for(user, sender)
    content = draft_content(view, blocks, origin, signature=signature)
    await services.writing.keep_draft(user, content, draft_id=origin.draft_id)


async def show_drafts(call: CommandCall) -> None:
    drafts = await call.services.writing.drafts(call.user)
    days = int(call.services.writing.draft_retention.days)
    rows = [(draft.id, draft.updated_at, content) for draft, content in drafts]
    await call.ack(text=call.t("drafts.title"), blocks=drafts_blocks(call.t, rows, kept_days=days))


async def on_draft_open(
    ack: AsyncAck,
    body: dict[str, Any],
    action: dict[str, Any],
    client: AsyncWebClient,
    respond: AsyncRespond,
    user: SlackUser,
    t: Texts,
    services: Services,
) -> None:
    """Open (or Continue) a draft: the modal it was closed in, filled in as it was left."""
    await ack()
    draft_id = str(action.get("value", ""))
    try:
        content = await services.writing.draft(user, draft_id)
        link = await services.links.require(user)
    except MailError as exc:
        _tell(services, respond, explain(t, exc), "draft-open-refused")
        return
    prefill, origin, callback_id = draft_prefill(content)
    origin = origin.model_copy(update={"draft_id": draft_id})
    templates = await _template_choices(services, user) if callback_id == ids.COMPOSE_VIEW else []
    title_key, body_label_key = modal_wording(callback_id)
    view = compose_modal(
        t,
        senders=link.senders,
        prefill=prefill,
        private_metadata=origin.encode(),
        callback_id=callback_id,
        templates=templates,
        title_key=title_key,
        body_label_key=body_label_key,
    )
    services.background.spawn(
        open_view_or_explain(
            client=client, trigger_id=body["trigger_id"], view=view, respond=respond, t=t
        ),
        name="open-draft-modal",
    )


async def on_draft_fresh(
    ack: AsyncAck,
    body: dict[str, Any],
    action: dict[str, Any],
    client: AsyncWebClient,
    respond: AsyncRespond,
    user: SlackUser,
    t: Texts,
    services: Services,
) -> None:
    """Start fresh: a new compose modal; the draft is no longer offered by `/b24mail` but stays
    in `/b24mail drafts`."""
    await ack()
    await services.writing.set_aside(user, str(action.get("value", "")))
    link = await services.links.get(user)
    if link is None:
        _tell(services, respond, t("connect.prompt"), "fresh-not-linked", blocks=connect_prompt(t))
        return
    channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get(
        "channel_id"
    )
    view = await new_compose_view(services, t, user, link.senders, link.last_sender, channel)
    services.background.spawn(
        open_view_or_explain(
            client=client, trigger_id=body["trigger_id"], view=view, respond=respond, t=t
        ),
        name="open-fresh-modal",
    )


async def on_draft_discard(
    ack: AsyncAck,
    action: dict[str, Any],
    respond: AsyncRespond,
    user: SlackUser,
    t: Texts,
    services: Services,
) -> None:
    await ack()
    if await services.writing.discard(user, str(action.get("value", ""))):
        _tell(services, respond, t("drafts.discarded"), "draft-discarded")
    else:
        _tell(services, respond, t.error("draft_not_found"), "draft-discard-refused")


async def new_compose_view(
    services: Services,
    t: Texts,
    user: SlackUser,
    senders: list[dict[str, Any]],
    last_sender: str | None,
    channel_id: str | None,
    *,
    to: str = "",
) -> dict[str, Any]:
    """A new e-mail's modal: the last sender preselected, its signature in the body, and the
    user's templates to start from."""
    sender = email_of(last_sender) or (str(senders[0].get("email")) if senders else None)
    signature = await services.writing.signature_for(user, sender)
    prefill = Prefill(
        to=to,
        sender_email=sender,
        post_to=channel_id,
        body=with_signature(None, signature),
    )
    return compose_modal(
        t,
        senders=senders,
        prefill=prefill,
        private_metadata=ViewOrigin(channel_id=channel_id).encode(),
        templates=await _template_choices(services, user),
    )


# --- signatures -------------------------------------------------------------------------------


async def open_signature(call: CommandCall) -> None:
    """`/b24mail signature`: one field per sender address, filled with its signature."""
    if await call.services.links.get(call.user) is None:
        await call.ack(text=call.t("connect.prompt"), blocks=connect_prompt(call.t))
        return
    await call.ack()
    call.services.background.spawn(
        _open_signature_modal(call.services, call.client, call.user, call.t, call.trigger_id),
        name="open-signature-modal",
    )


async def on_signature_open(
    ack: AsyncAck,
    body: dict[str, Any],
    client: AsyncWebClient,
    user: SlackUser,
    t: Texts,
    services: Services,
) -> None:
    """The Home tab's "Edit signatures": the modal of `/b24mail signature`."""
    await ack()
    services.background.spawn(
        _open_signature_modal(services, client, user, t, body["trigger_id"]),
        name="open-signature-modal",
    )


async def _open_signature_modal(
    services: Services, client: AsyncWebClient, user: SlackUser, t: Texts, trigger_id: str
) -> None:
    link = await services.links.get(user)
    if link is None:
        refresh_home(services, client, user)  # unlinked meanwhile: the tab says so
        return
    view = signature_modal(
        t, senders=link.senders, signatures=await services.writing.signatures(user)
    )
    await open_view_or_explain(client=client, trigger_id=trigger_id, view=view, respond=None, t=t)


async def on_signature_submit(
    ack: AsyncAck,
    view: dict[str, Any],
    client: AsyncWebClient,
    user: SlackUser,
    t: Texts,
    services: Services,
) -> None:
    """Save every sender's signature as shown in the modal; an empty field removes it.

    The senders are read again from the link, in the modal's order: a field belongs to the
    address it was labelled with, and an address that is no longer the user's gets none."""
    link = await services.links.get(user)
    if link is None:
        await ack(response_action="errors", errors={signature_block_id(0): t("error.not_linked")})
        return
    saved = 0
    for index, sender in enumerate(link.senders[:20]):
        body = rich_text_value(view, signature_block_id(index), ids.BODY_ACTION)
        keep = body if body is not None and not is_blank(body) else None
        await services.writing.set_signature(user, str(sender.get("email", "")), keep)
        saved += keep is not None
    await ack(
        response_action="update",
        view=_done_modal(t, "signature.title", t.plural("signature.saved", saved)),
    )
    refresh_home(services, client, user)


# --- templates --------------------------------------------------------------------------------


async def show_templates(call: CommandCall) -> None:
    """`/b24mail templates`: the user's templates with Delete, and Add a template."""
    templates = await call.services.writing.templates(call.user)
    rows = [(tpl.id, tpl.name, tpl.subject) for tpl in templates]
    await call.ack(text=call.t("templates.title"), blocks=templates_blocks(call.t, rows))


async def on_template_add(
    ack: AsyncAck,
    body: dict[str, Any],
    client: AsyncWebClient,
    respond: AsyncRespond,
    t: Texts,
    services: Services,
) -> None:
    await ack()
    services.background.spawn(
        open_view_or_explain(
            client=client,
            trigger_id=body["trigger_id"],
            view=template_modal(t),
            respond=reachable(respond),
            t=t,
        ),
        name="open-template-modal",
    )


async def on_template_submit(
    ack: AsyncAck,
    view: dict[str, Any],
    client: AsyncWebClient,
    user: SlackUser,
    t: Texts,
    services: Services,
) -> None:
    name = text_value(view, ids.TEMPLATE_NAME_BLOCK, ids.TEMPLATE_NAME_ACTION)
    subject = " ".join(text_value(view, ids.SUBJECT_BLOCK, ids.SUBJECT_ACTION).split())
    body = rich_text_value(view, ids.BODY_BLOCK, ids.BODY_ACTION)
    errors: dict[str, str] = {}
    if not subject:
        errors[ids.SUBJECT_BLOCK] = t("validation.required")
    if body is None or is_blank(body):
        errors[ids.BODY_BLOCK] = t("validation.body_empty")
    if errors or body is None:
        await ack(response_action="errors", errors=errors)
        return
    problem = await services.writing.add_template(user, name=name, subject=subject, body=body)
    if problem is not None:
        await ack(
            response_action="errors", errors={ids.TEMPLATE_NAME_BLOCK: t(f"validation.{problem}")}
        )
        return
    shown = escape_mrkdwn(" ".join(name.split()))
    await ack(
        response_action="update",
        view=_done_modal(t, "templates.modal_title", t("templates.saved", name=shown)),
    )
    refresh_home(services, client, user)


async def on_template_delete(
    ack: AsyncAck,
    action: dict[str, Any],
    client: AsyncWebClient,
    respond: AsyncRespond,
    user: SlackUser,
    t: Texts,
    services: Services,
) -> None:
    """Delete a template (owner only), then show the list again in place of the old one."""
    await ack()
    try:
        template_id = int(str(action.get("value", "")))
        await services.writing.delete_template(user, template_id)
    except (ValueError, MailError):
        _tell(services, respond, t.error("template_not_found"), "template-delete-refused")
        return
    refresh_home(services, client, user)
    templates = await services.writing.templates(user)
    rows = [(tpl.id, tpl.name, tpl.subject) for tpl in templates]
    services.background.spawn(
        respond(
            text=t("templates.deleted"),
            blocks=templates_blocks(t, rows),
            response_type="ephemeral",
            replace_original=True,
        ),
        name="template-deleted",
    )


async def on_template_chosen(
    ack: AsyncAck,
    body: dict[str, Any],
    action: dict[str, Any],
    client: AsyncWebClient,
    user: SlackUser,
    t: Texts,
    services: Services,
) -> None:
    """A template chosen in the compose modal fills its subject and body (views.update).

    Slack keeps what was typed in a field across an update unless the field's block id
    changes, so the subject and body get new block ids; From, To, Cc, Bcc and the rest keep
    what the user typed. The body is the template followed by the sender's signature."""
    await ack()
    view = body.get("view") or {}
    try:
        template = await services.writing.template(
            user, int(str(action["selected_option"]["value"]))
        )
        link = await services.links.require(user)
    except (KeyError, TypeError, ValueError, MailError) as exc:
        log.info("template choice refused user=%s: %s", user.user_id, type(exc).__name__)
        return
    blocks = field_block_ids(view)
    sender = selected_value(view, blocks["from"], ids.FROM_ACTION)
    signature = await services.writing.signature_for(user, sender)
    prefill = Prefill(
        sender_email=sender,
        to=text_value(view, blocks["to"], ids.ADDRESSES_ACTION),
        cc=text_value(view, blocks["cc"], ids.ADDRESSES_ACTION),
        bcc=text_value(view, blocks["bcc"], ids.ADDRESSES_ACTION),
        subject=template.subject,
        body=with_signature(template.body, signature),
    )
    revision = f"t{template.id}-{str(view.get('hash', ''))[-6:]}"
    new_view = compose_modal(
        t,
        senders=link.senders,
        prefill=prefill,
        private_metadata=str(view.get("private_metadata") or ""),
        templates=await _template_choices(services, user),
        block_ids={
            "subject": f"{ids.SUBJECT_BLOCK}-{revision}",
            "body": f"{ids.BODY_BLOCK}-{revision}",
        },
    )
    services.background.spawn(_update_view(client, view, new_view), name="template-fill")


async def _update_view(client: AsyncWebClient, old: dict[str, Any], new: dict[str, Any]) -> None:
    from slack_sdk.errors import SlackApiError

    try:
        await client.views_update(view_id=old.get("id"), hash=old.get("hash"), view=new)
    except SlackApiError as exc:
        # hash_conflict: the user changed the modal meanwhile; their change stands.
        log.info("template fill not applied: %s", exc.response.get("error"))


async def _template_choices(services: Services, user: SlackUser) -> list[tuple[int, str]]:
    return [(tpl.id, tpl.name) for tpl in await services.writing.templates(user)]


def _done_modal(t: Texts, title_key: str, text: str) -> dict[str, Any]:
    return modal(
        callback_id=ids.TEMPLATE_VIEW if title_key.startswith("templates") else ids.SIGNATURE_VIEW,
        title=t(title_key),
        close=t("compose.close"),
        blocks=[section(text)],
    )


def _tell(
    services: Services,
    respond: AsyncRespond,
    text: str,
    name: str,
    *,
    blocks: list[dict[str, Any]] | None = None,
) -> None:
    services.background.spawn(
        respond(text=text, blocks=blocks, response_type="ephemeral", replace_original=False),
        name=name,
    )


def register(app: AsyncApp) -> None:
    app.view_closed(ids.COMPOSE_VIEW)(on_closed)
    app.view_closed(ids.REPLY_VIEW)(on_closed)
    app.view_closed(ids.FORWARD_VIEW)(on_closed)
    app.action(ids.DRAFT_OPEN_ACTION)(on_draft_open)
    app.action(ids.DRAFT_FRESH_ACTION)(on_draft_fresh)
    app.action(ids.DRAFT_DISCARD_ACTION)(on_draft_discard)
    app.action(ids.SIGNATURE_OPEN_ACTION)(on_signature_open)
    app.view_submission(ids.SIGNATURE_VIEW)(on_signature_submit)
    app.action(ids.TEMPLATE_ADD_ACTION)(on_template_add)
    app.view_submission(ids.TEMPLATE_VIEW)(on_template_submit)
    app.action(ids.TEMPLATE_DELETE_ACTION)(on_template_delete)
    app.action(ids.TEMPLATE_ACTION)(on_template_chosen)
