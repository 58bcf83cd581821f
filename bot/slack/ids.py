"""Callback, block and action ids: the contract between our views and our listeners.

The manifest test checks that every callback id here has a listener and vice versa.
"""

from __future__ import annotations

COMMAND = "/b24mail"

# views (callback_id)
CONNECT_VIEW = "b24mail_connect"
COMPOSE_VIEW = "b24mail_compose"
REPLY_VIEW = "b24mail_reply"
SIGNATURE_VIEW = "b24mail_signature"
TEMPLATE_VIEW = "b24mail_template"

# message shortcut (callback_id, also in manifest.yml)
REPLY_SHORTCUT = "b24mail_reply_by_email"

# connect modal
CONNECT_URL_BLOCK = "webhook"
CONNECT_URL_ACTION = "webhook_url"

# compose / reply modal blocks and actions
FROM_BLOCK = "from"
FROM_ACTION = "from_select"
TO_BLOCK = "to"
CC_BLOCK = "cc"
BCC_BLOCK = "bcc"
ADDRESSES_ACTION = "addresses"
SUBJECT_BLOCK = "subject"
SUBJECT_ACTION = "subject_input"
BODY_BLOCK = "body"
BODY_ACTION = "body_input"
POST_TO_BLOCK = "post_to"
POST_TO_ACTION = "post_to_select"
REPLY_TARGET_BLOCK = "reply_target"
REPLY_TARGET_ACTION = "reply_target_select"
REPLY_ALL_BLOCK = "reply_all"
REPLY_ALL_ACTION = "reply_all_toggle"
SEND_AT_BLOCK = "send_at"
SEND_AT_ACTION = "send_at_picker"
TEMPLATE_BLOCK = "template"
TEMPLATE_ACTION = "template_select"
SIGNATURE_SENDER_BLOCK = "signature_sender"
SIGNATURE_BODY_BLOCK = "signature_body"
TEMPLATE_NAME_BLOCK = "template_name"
TEMPLATE_NAME_ACTION = "template_name_input"

# buttons
OPEN_CONNECT_ACTION = "b24mail_open_connect"
RETRY_ACTION = "b24mail_retry"
EDIT_RESEND_ACTION = "b24mail_edit_resend"
UNDO_ACTION = "b24mail_undo"
SEND_NOW_ACTION = "b24mail_send_now"
EDIT_SCHEDULED_ACTION = "b24mail_edit_scheduled"
CANCEL_SCHEDULED_ACTION = "b24mail_cancel_scheduled"
DRAFT_OPEN_ACTION = "b24mail_draft_open"
DRAFT_DISCARD_ACTION = "b24mail_draft_discard"
DRAFT_FRESH_ACTION = "b24mail_draft_fresh"
TEMPLATE_ADD_ACTION = "b24mail_template_add"
TEMPLATE_DELETE_ACTION = "b24mail_template_delete"
INBOX_MORE_ACTION = "b24mail_inbox_more"
INBOX_REPLY_ACTION = "b24mail_inbox_reply"
INBOX_SHARE_ACTION = "b24mail_inbox_share"
OPEN_IN_BITRIX_ACTION = "b24mail_open_in_bitrix24"

# e-mail cards shared into conversations (Slack message metadata and the card's actions block)
EMAIL_CARD_EVENT = "b24mail_email"
CARD_BLOCK = "b24mail_email_card"
CARD_REPLY_ACTION = "b24mail_card_reply"
# a new-mail card in a DM: pick a conversation to share the card into
CARD_SHARE_ACTION = "b24mail_card_share"

# new-mail notifications (message metadata of the "and N more" line and the pause notice)
NEW_MAIL_MORE_EVENT = "b24mail_new_mail_more"
NEW_MAIL_PAUSED_EVENT = "b24mail_new_mail_paused"

# App Home (the Home tab) and the workspace policy
HOME_WRITE_ACTION = "b24mail_home_write"
HOME_DISCONNECT_ACTION = "b24mail_home_disconnect"
HOME_LANGUAGE_ACTION = "b24mail_home_language"
HOME_POLICY_ACTION = "b24mail_home_policy"
HOME_NOTIFY_ON_ACTION = "b24mail_home_notify_on"
HOME_NOTIFY_OFF_ACTION = "b24mail_home_notify_off"
SIGNATURE_OPEN_ACTION = "b24mail_signature_open"
POLICY_VIEW = "b24mail_policy"
POLICY_ALLOWED_BLOCK = "policy_allowed"
POLICY_BLOCKED_BLOCK = "policy_blocked"
POLICY_MAX_RECIPIENTS_BLOCK = "policy_max_recipients"
POLICY_HOURLY_CAP_BLOCK = "policy_hourly_cap"
POLICY_CONFIRM_BLOCK = "policy_confirm"
POLICY_AUDIT_CHANNEL_BLOCK = "policy_audit_channel"
POLICY_INPUT_ACTION = "policy_input"
POLICY_CONFIRM_VALUE = "confirm_outside"
CONFIRM_OUTSIDE_VIEW = "b24mail_confirm_outside"

# acting on an e-mail (cards, notifications, inbox entries): Forward, More (overflow), Delete
FORWARD_VIEW = "b24mail_forward"
EVENT_VIEW = "b24mail_calendar_event"
CARD_FORWARD_ACTION = "b24mail_card_forward"
CARD_MORE_ACTION = "b24mail_card_more"
CARD_DELETE_ACTION = "b24mail_card_delete"
EVENT_START_BLOCK = "event_start"
EVENT_START_ACTION = "event_start_input"
EVENT_END_BLOCK = "event_end"
EVENT_END_ACTION = "event_end_input"
# To/Cc/Bcc suggestions: a select beside each address field
SUGGEST_ACTION = "recipient_suggest"
SUGGEST_HINT_VALUE = "-"  # a hint option ("type an address"), never a recipient
PEOPLE_BLOCKS = {"to": "to_people", "cc": "cc_people", "bcc": "bcc_people"}
