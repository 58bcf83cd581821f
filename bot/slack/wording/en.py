"""English wording. Keys are stable; `{name}` placeholders are filled by Texts.

Modal titles, submit and close labels stay within Slack's 24 characters.
"""

from __future__ import annotations

MESSAGES: dict[str, str | tuple[str, ...]] = {
    # --- help and command parsing -------------------------------------------------------
    "help.title": "b24mail: e-mail from Slack through your Bitrix24 mailbox",
    "help.body": (
        "`/b24mail` or `/b24mail send [addresses]`: write an e-mail\n"
        "`/b24mail inbox [search words]`: your recent e-mails, to reply or share\n"
        "`/b24mail history`: your last 10 e-mails sent from Slack\n"
        "`/b24mail connect`: link your Bitrix24 inbound webhook\n"
        "`/b24mail status`: the portal and addresses you are linked to\n"
        "`/b24mail disconnect`: forget your webhook\n"
        "`/b24mail help`: this help\n"
        "Message menu (⋮) → *Reply by e-mail*: answer an e-mail from any message"
    ),
    "help.unknown_subcommand": "I don't know `{subcommand}`. Here is what I can do:",
    "help.not_linked_hint": "Start with `/b24mail connect` to link your Bitrix24 mailbox.",
    # --- connect ---------------------------------------------------------------------------
    "connect.title": "Connect Bitrix24",
    "connect.submit": "Connect",
    "connect.close": "Cancel",
    "connect.intro": (
        "Link *your own* Bitrix24 mailbox. b24mail sends e-mail only for you, with your "
        "Bitrix24 user's rights."
    ),
    "connect.steps": (
        "1. In Bitrix24 open *Developer resources → Other → Inbound webhook*.\n"
        "2. Tick the *Mail (mail)* permission and save.\n"
        "3. Copy the webhook address and paste it below. It looks like "
        "`https://yourcompany.bitrix24.com/rest/1/a1b2c3d4e5f6g7h8/`."
    ),
    "connect.label": "Inbound webhook address",
    "connect.placeholder": "https://yourcompany.bitrix24.com/rest/1/…/",
    "connect.hint": (
        "Stored encrypted and never shown again. Anyone with this address can act as you in "
        "Bitrix24, so don't paste it anywhere else."
    ),
    "connect.done_title": "Connected",
    "connect.done_close": "Done",
    "connect.done": "Linked to *{host}* (Bitrix24 user {b24_user_id}). You can send from:",
    "connect.done_next": "Type `/b24mail` to write an e-mail.",
    "connect.prompt": "Link your Bitrix24 mailbox first: it takes a minute.",
    "connect.button": "Connect Bitrix24",
    # --- disconnect and status -------------------------------------------------------------
    "disconnect.done": (
        "Your Bitrix24 webhook is forgotten: b24mail can no longer send for you. "
        "You may also delete the webhook in Bitrix24 (Developer resources → Inbound webhook)."
    ),
    "disconnect.none": "You had no Bitrix24 webhook linked, so there was nothing to forget.",
    "status.title": "Your b24mail link",
    "status.portal": "*Portal:* {host}",
    "status.user": "*Bitrix24 user:* {b24_user_id}",
    "status.senders": "*Can send from:*",
    "status.no_senders": "*Can send from:* no addresses (check your mailbox in Bitrix24)",
    "status.checked": "*Last checked:* {when}",
    "status.never_checked": "*Last checked:* never",
    "status.linked_at": "*Linked:* {when}",
    "status.not_linked": "You are not linked to Bitrix24 yet.",
    # --- compose ----------------------------------------------------------------------------
    "compose.title": "New e-mail",
    "compose.submit": "Send",
    "compose.close": "Cancel",
    "compose.from": "From",
    "compose.to": "To",
    "compose.cc": "Cc",
    "compose.bcc": "Bcc",
    "compose.addresses_placeholder": "anna@example.com, Bob <bob@example.com>",
    "compose.addresses_hint": "Separate addresses with commas, semicolons, spaces or new lines.",
    "compose.subject": "Subject",
    "compose.body": "Message",
    "compose.post_to": "Post the result to",
    "compose.no_senders": (
        "Your Bitrix24 user has no mailbox to send from. Set one up in Bitrix24 (Mail), then "
        "run `/b24mail connect` again."
    ),
    "compose.senders_stale": "Sender list from {when}; it is being refreshed.",
    "validation.required": "Please fill this in.",
    "validation.invalid_addresses": "Not a valid e-mail address: {values}",
    "validation.too_many_recipients": (
        "Too many recipients: {count} (at most {cap} per e-mail). Split the e-mail."
    ),
    "validation.no_recipients": "Add at least one recipient in To.",
    "validation.unknown_sender": "Choose one of your Bitrix24 sender addresses.",
    "validation.subject_too_long": "The subject is too long ({length} characters, at most {cap}).",
    "validation.body_empty": "Write a message.",
    "validation.body_too_long": (
        "The message is too long ({length} characters, at most {cap}). Shorten it or send "
        "the rest in a second e-mail."
    ),
    "validation.subject_newline": "The subject must be a single line.",
    # --- status messages ----------------------------------------------------------------------
    "status_msg.queued": ":outbox_tray: Sending *{subject}* from {sender} to {recipients}…",
    "status_msg.retrying": (
        ":hourglass_flowing_sand: Retrying (attempt {attempt}) *{subject}* to {recipients}: "
        "{reason} Next try {when}."
    ),
    "status_msg.sent": ":white_check_mark: Sent *{subject}* from {sender} at {when}",
    "status_msg.failed": ":x: Not sent: *{subject}* to {recipients}",
    "status_msg.failed_reason": "*Why:* {reason}",
    "status_msg.portal_said": "Bitrix24 said: {detail}",
    "status_msg.counts": "{to}, {cc}, {bcc}",
    "status_msg.dm_note": (
        "I could not post in <#{channel}> ({reason}), so the result is here. "
        "Invite me with `/invite @b24mail` to post there next time."
    ),
    "status_msg.retry": "Retry",
    "status_msg.edit": "Edit and resend",
    "status_msg.retry_queued": "Queued again: same e-mail, it will not be sent twice.",
    "count.to": ("{n} recipient in To", "{n} recipients in To"),
    "count.cc": ("{n} in Cc", "{n} in Cc"),
    "count.bcc": ("{n} in Bcc", "{n} in Bcc"),
    "count.recipients": ("{n} recipient", "{n} recipients"),
    "recipients.more": ("{first} and {n} more", "{first} and {n} more"),
    "post_reason.not_in_channel": "I am not a member of that channel",
    "post_reason.channel_not_found": "that conversation is private or no longer exists",
    "post_reason.is_archived": "that channel is archived",
    "post_reason.other": "Slack refused the message",
    # --- history ----------------------------------------------------------------------------
    "history.title": "Your last e-mails",
    "history.empty": "You have not sent any e-mail from Slack yet. Type `/b24mail` to write one.",
    "history.line": "{icon} *{subject}* to {recipients}, {when}: {status}",
    "history.status.queued": "sending",
    "history.status.sending": "sending",
    "history.status.sent": "sent",
    "history.status.failed": "failed",
    # --- errors: what happened and what to do (keys are stable error codes) ------------------
    "error.webhook_malformed": (
        "That is not a Bitrix24 inbound webhook address. It looks like "
        "`https://yourcompany.bitrix24.com/rest/1/a1b2c3d4e5f6g7h8/`: copy it from Developer "
        "resources → Other → Inbound webhook."
    ),
    "error.webhook_not_https": (
        "The address must start with https://. Copy the webhook address exactly as Bitrix24 "
        "shows it."
    ),
    "error.webhook_forbidden_host": (
        "That address points to a local or private network, which b24mail never calls. Use "
        "your portal's public address."
    ),
    "error.webhook_has_userinfo": (
        "Remove the user name and password (the part ending in @) from the address."
    ),
    "error.bad_credentials": (
        "Bitrix24 did not accept the webhook: the address is wrong, or the webhook was "
        "deleted, blocked or regenerated. Copy the current address from Developer resources → "
        "Inbound webhook (or create a new one) and run `/b24mail connect` again."
    ),
    "error.token_expired": (
        "The Bitrix24 access has expired. Run `/b24mail connect` again with a current webhook."
    ),
    "error.missing_scope": (
        "The webhook has no *Mail* permission. In Bitrix24 open it under Developer resources → "
        "Other → Inbound webhook, tick *Mail (mail)*, save, then run `/b24mail connect` again."
    ),
    "error.access_denied": (
        "Bitrix24 denied access: your Bitrix24 user cannot use that mailbox or e-mail. Ask "
        "your Bitrix24 administrator to give you access to the mailbox."
    ),
    "error.plan_restricted": (
        "Your Bitrix24 plan does not allow REST access (it needs a commercial plan). Ask your "
        "Bitrix24 administrator."
    ),
    "error.validation_failed": "Bitrix24 refused the e-mail as invalid. Check the fields and send it again.",
    "error.send_failed": (
        "Bitrix24 could not send the e-mail: the sender mailbox may be unavailable, or a daily "
        "or monthly sending limit (on demo plans: one recipient per field) was reached. Check "
        "the mailbox in Bitrix24, then retry."
    ),
    "error.reply_failed": (
        "Bitrix24 could not send the reply: you may have no access to the mailbox that "
        "received the e-mail, or a sending limit was reached. Check the mailbox in Bitrix24."
    ),
    "error.forward_failed": (
        "Bitrix24 could not forward the e-mail: the mailbox may be unavailable or a sending "
        "limit was reached."
    ),
    "error.no_recipients": "Bitrix24 found no recipients. Add at least one address in To.",
    "error.resolve_recipients_error": (
        "Bitrix24 could not read one of the addresses. Check To, Cc and Bcc, then use "
        "*Edit and resend*."
    ),
    "error.not_found": (
        "That e-mail no longer exists in Bitrix24 (it may have been deleted or moved)."
    ),
    "error.method_not_found": (
        "This Bitrix24 portal does not offer the REST 3.0 mail methods (an on-premise portal "
        "may need an update). Ask your Bitrix24 administrator."
    ),
    "error.portal_moved": (
        "Your Bitrix24 portal has moved to *{new_host}*. Copy the webhook address from the new "
        "address and run `/b24mail connect` again."
    ),
    "error.https_required": (
        "The portal accepts only https:// addresses. Use the address that starts with https://."
    ),
    "error.portal_unavailable": (
        "Bitrix24 had a server error. This is usually temporary: try again in a few minutes."
    ),
    "error.portal_overloaded": (
        "Bitrix24 has temporarily blocked requests to your portal because of load. Try again "
        "later; if it lasts, your Bitrix24 administrator can ask Bitrix24 support."
    ),
    "error.portal_deleted": "That Bitrix24 portal has been deleted. Link another one with `/b24mail connect`.",
    "error.idempotency_conflict": (
        "Bitrix24 already saw this e-mail with different content. Use *Edit and resend* to "
        "send it as a new e-mail."
    ),
    "error.invalid_idempotency_key": "Bitrix24 refused the e-mail's id. Use *Edit and resend*.",
    "error.rate_limited": "Bitrix24 is limiting how fast requests may be made. Try again in a minute.",
    "error.operation_time_limit": (
        "Bitrix24's time budget for sending is used up until {reset}. Try again after that."
    ),
    "error.timeout": "Bitrix24 did not answer in time. Try again in a few minutes.",
    "error.portal_unreachable": (
        "Could not reach {host}. Check the address, and whether the portal is up."
    ),
    "error.connection_dropped": "The connection to Bitrix24 broke off. Try again in a few minutes.",
    "error.unexpected_response": (
        "The address answered, but not like Bitrix24's REST API. Check that it is your "
        "portal's inbound webhook address."
    ),
    "error.not_linked": "You have not linked your Bitrix24 mailbox yet. Run `/b24mail connect`.",
    "error.no_senders": (
        "The webhook works, but your Bitrix24 user has no mailbox to send from. Connect a "
        "mailbox in Bitrix24 (Mail), then run `/b24mail connect` again."
    ),
    "error.link_unreadable": (
        "Your stored webhook cannot be read any more (the app's encryption keys changed). Run "
        "`/b24mail connect` again."
    ),
    "error.connect_timeout": (
        "Bitrix24 did not answer within a few seconds. Check that the portal is up, then try again."
    ),
    "error.sending_cap": (
        "You have reached the limit of {cap} e-mails per hour from Slack. Try again later."
    ),
    "error.email_not_found": "I cannot find that e-mail in your outbox.",
    "error.gave_up": (
        "Bitrix24 kept failing for {minutes} minutes, so I stopped trying. The e-mail was not "
        "sent. Use *Retry* when the portal is back."
    ),
    "error.unknown": (
        "Something went wrong on our side (error id `{error_id}`). Try again; if it keeps "
        "happening, give this id to whoever runs b24mail."
    ),
    "retry_reason.rate_limited": "Bitrix24 asked to slow down.",
    "retry_reason.operation_time_limit": "Bitrix24's time budget is used up until {reset}.",
    "retry_reason.portal_unavailable": "Bitrix24 had a server error.",
    "retry_reason.portal_overloaded": "Bitrix24 is overloaded.",
    "retry_reason.timeout": "Bitrix24 did not answer in time.",
    "retry_reason.portal_unreachable": "Bitrix24 could not be reached.",
    "retry_reason.connection_dropped": "The connection to Bitrix24 broke off.",
    "retry_reason.unknown": "Something went wrong on the way.",
    # --- inbox ------------------------------------------------------------------------------
    "inbox.title": "Your recent e-mails",
    "inbox.title_search": "Your e-mails matching “{search}”",
    "inbox.page": "Page {page}, newest first",
    "inbox.empty": "There are no e-mails in your Bitrix24 mailboxes yet.",
    "inbox.empty_search": "No e-mail matches “{search}”. Try other words.",
    "inbox.no_more": "No more e-mails.",
    "inbox.line": "*{subject}*\n{sender} · {when}{attachments}",
    "inbox.attachments": " · :paperclip: attachments",
    "inbox.no_subject": "(no subject)",
    "inbox.unknown_date": "date unknown",
    "inbox.more": "More",
    "inbox.reply": "Reply",
    "inbox.share": "Share to channel",
    "inbox.open": "Open in Bitrix24",
    # --- e-mail cards (Share to channel) ------------------------------------------------------
    "card.text": "E-mail: {subject} from {sender}",
    "card.heading": ":envelope: *{subject}*",
    "card.from": "*From:* {sender}",
    "card.date": "*Date:* {when}",
    "card.attachments": ":paperclip: Has attachments: open it in Bitrix24 to see them.",
    "card.no_text": "(no text)",
    "card.shared_by": (
        "Shared by <@{user}>. Discuss it in the thread; anyone linked to Bitrix24 can answer "
        "with *Reply by e-mail*."
    ),
    "card.reply": "Reply by e-mail",
    "share.done": "Shared *{subject}* in <#{channel}>.",
    "share.failed": (
        "I could not share the e-mail in <#{channel}>: {reason}. Invite me with "
        "`/invite @b24mail`, or share it in another conversation."
    ),
    # --- reply by e-mail ------------------------------------------------------------------------
    "reply.title": "Reply by e-mail",
    "reply.close": "Close",
    "reply.loading": ":hourglass_flowing_sand: Loading the e-mail from Bitrix24…",
    "reply.replying_to": "Replying to *{subject}* from {sender}, {when}",
    "reply.choose": (
        "Which e-mail does this answer? Search your Bitrix24 mailboxes by subject or sender."
    ),
    "reply.target": "E-mail to reply to",
    "reply.target_placeholder": "Type words from the subject or sender",
    "reply.reply_all": "Reply all",
    "reply.reply_all_hint": "Also copy {recipients}",
    "reply.search_more": "No results yet: type more",
    "reply.search_none": "No e-mail matches: try other words",
    "reply.search_failed": "Search failed: try again in a moment",
    "reply.search_not_linked": "Link Bitrix24 first: /b24mail connect",
    "reply.target_not_number": "That is not an e-mail from the list. Search and pick one.",
    "reply.target_required": "Choose the e-mail to reply to.",
    "reply.not_found": (
        "That e-mail no longer exists in Bitrix24 (it may have been deleted or moved), so "
        "there is nothing to reply to."
    ),
    "reply.no_access": (
        "Your Bitrix24 user cannot see that e-mail: it is in a mailbox you have no access to. "
        "Ask the person who shared it to reply, or ask your Bitrix24 administrator for access "
        "to the mailbox."
    ),
    "reply.other_portal": (
        "That e-mail is in the Bitrix24 portal *{portal}*, but you are linked to *{host}*. "
        "Only people linked to {portal} can reply to it."
    ),
}
