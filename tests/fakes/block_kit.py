"""Slack's checks of Block Kit payloads, as the fake Slack Web API applies them.

Each rule and its error text follow what Slack answers with ``invalid_blocks`` /
``invalid_arguments`` (``response_metadata.messages``), so a payload the real Slack would refuse
is refused in tests too.
"""

from __future__ import annotations

from typing import Any

__all__ = ["block_errors", "view_errors"]

MESSAGE_TEXT_LIMIT = 40_000
MESSAGE_BLOCKS_LIMIT = 50
VIEW_BLOCKS_LIMIT = 100
PRIVATE_METADATA_LIMIT = 3000
VIEW_TEXT_LIMIT = 24


def _text_of(obj: Any) -> str:
    if isinstance(obj, dict):
        text = obj.get("text")
        return text if isinstance(text, str) else ""
    return obj if isinstance(obj, str) else ""


def _too_long(limit: int, pointer: str) -> str:
    return f"[ERROR] must be less than {limit + 1} characters [json-pointer:{pointer}]"


def _too_many(limit: int, pointer: str) -> str:
    return f"[ERROR] no more than {limit} items allowed [json-pointer:{pointer}]"


def _element_errors(element: Any, pointer: str) -> list[str]:
    if not isinstance(element, dict):
        return [f"[ERROR] must be an object [json-pointer:{pointer}]"]
    errors: list[str] = []
    etype = element.get("type")
    action_id = element.get("action_id")
    if isinstance(action_id, str) and len(action_id) > 255:
        errors.append(_too_long(255, f"{pointer}/action_id"))
    if etype == "button":
        if len(_text_of(element.get("text"))) > 75:
            errors.append(_too_long(75, f"{pointer}/text/text"))
        value = element.get("value")
        if isinstance(value, str) and len(value) > 2000:
            errors.append(_too_long(2000, f"{pointer}/value"))
    if etype in {"plain_text_input", "email_text_input", "url_text_input"}:
        for key in ("max_length", "min_length"):
            value = element.get(key)
            if isinstance(value, int) and value > 3000:
                errors.append(
                    f"[ERROR] must be less than or equal to 3000 [json-pointer:{pointer}/{key}]"
                )
        initial = element.get("initial_value")
        if isinstance(initial, str) and len(initial) > 3000:
            errors.append(_too_long(3000, f"{pointer}/initial_value"))
    options = element.get("options")
    if isinstance(options, list):
        if len(options) > 100:
            errors.append(_too_many(100, f"{pointer}/options"))
        errors.extend(_options_errors(options, f"{pointer}/options"))
    groups = element.get("option_groups")
    if isinstance(groups, list):
        for gi, group in enumerate(groups):
            if isinstance(group, dict) and isinstance(group.get("options"), list):
                gp = f"{pointer}/option_groups/{gi}/options"
                errors.extend(_options_errors(group["options"], gp))
    return errors


def _options_errors(options: list[Any], pointer: str) -> list[str]:
    errors: list[str] = []
    for oi, option in enumerate(options):
        if not isinstance(option, dict):
            errors.append(f"[ERROR] must be an object [json-pointer:{pointer}/{oi}]")
            continue
        if len(_text_of(option.get("text"))) > 75:
            errors.append(_too_long(75, f"{pointer}/{oi}/text/text"))
        value = option.get("value")
        if isinstance(value, str) and len(value) > 150:
            errors.append(_too_long(150, f"{pointer}/{oi}/value"))
        if len(_text_of(option.get("description"))) > 75:
            errors.append(_too_long(75, f"{pointer}/{oi}/description/text"))
    return errors


def block_errors(
    blocks: Any, pointer: str = "/blocks", *, limit: int = VIEW_BLOCKS_LIMIT
) -> list[str]:
    """Check Block Kit limits that Slack enforces; returns Slack-style error messages."""
    if not isinstance(blocks, list):
        return [f"[ERROR] must be an array [json-pointer:{pointer}]"]
    errors: list[str] = []
    if len(blocks) > limit:
        errors.append(_too_many(limit, pointer))
    seen: set[str] = set()
    for index, block in enumerate(blocks):
        bp = f"{pointer}/{index}"
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            errors.append(f"[ERROR] missing required field: type [json-pointer:{bp}]")
            continue
        block_id = block.get("block_id")
        if isinstance(block_id, str):
            if len(block_id) > 255:
                errors.append(_too_long(255, f"{bp}/block_id"))
            if block_id in seen:
                errors.append(
                    f"[ERROR] duplicate block_id: {block_id} [json-pointer:{bp}/block_id]"
                )
            seen.add(block_id)
        btype = block["type"]
        if btype == "section":
            fields = block.get("fields")
            if "text" not in block and not fields:
                errors.append(f"[ERROR] must provide either text or fields [json-pointer:{bp}]")
            if len(_text_of(block.get("text"))) > 3000:
                errors.append(_too_long(3000, f"{bp}/text/text"))
            if isinstance(fields, list):
                if len(fields) > 10:
                    errors.append(_too_many(10, f"{bp}/fields"))
                for fi, item in enumerate(fields):
                    if len(_text_of(item)) > 2000:
                        errors.append(_too_long(2000, f"{bp}/fields/{fi}/text"))
            if "accessory" in block:
                errors.extend(_element_errors(block["accessory"], f"{bp}/accessory"))
        elif btype == "header":
            text = _text_of(block.get("text"))
            if not text:
                errors.append(f"[ERROR] missing required field: text [json-pointer:{bp}/text]")
            elif len(text) > 150:
                errors.append(_too_long(150, f"{bp}/text/text"))
        elif btype in {"context", "actions"}:
            elements = block.get("elements")
            cap = 10 if btype == "context" else 25
            if not isinstance(elements, list) or not elements:
                errors.append(f"[ERROR] missing required field: elements [json-pointer:{bp}]")
            else:
                if len(elements) > cap:
                    errors.append(_too_many(cap, f"{bp}/elements"))
                if btype == "actions":
                    for ei, element in enumerate(elements):
                        errors.extend(_element_errors(element, f"{bp}/elements/{ei}"))
        elif btype == "input":
            label = _text_of(block.get("label"))
            if not label:
                errors.append(f"[ERROR] missing required field: label [json-pointer:{bp}]")
            elif len(label) > 2000:
                errors.append(_too_long(2000, f"{bp}/label/text"))
            if len(_text_of(block.get("hint"))) > 2000:
                errors.append(_too_long(2000, f"{bp}/hint/text"))
            if "element" not in block:
                errors.append(f"[ERROR] missing required field: element [json-pointer:{bp}]")
            else:
                errors.extend(_element_errors(block["element"], f"{bp}/element"))
    return errors


def view_errors(view: dict[str, Any], *, expected_type: str | None) -> list[str]:
    errors: list[str] = []
    vtype = view.get("type")
    if vtype not in {"modal", "home"}:
        errors.append("[ERROR] must be one of modal, home [json-pointer:/view/type]")
    elif expected_type is not None and vtype != expected_type:
        errors.append(f"[ERROR] must be {expected_type} [json-pointer:/view/type]")
    if vtype == "modal":
        title = view.get("title")
        if not _text_of(title):
            errors.append("[ERROR] missing required field: title [json-pointer:/view]")
        for key in ("title", "submit", "close"):
            if len(_text_of(view.get(key))) > VIEW_TEXT_LIMIT:
                errors.append(_too_long(VIEW_TEXT_LIMIT, f"/view/{key}/text"))
        blocks = view.get("blocks") or []
        has_input = any(isinstance(b, dict) and b.get("type") == "input" for b in blocks)
        if has_input and not view.get("submit"):
            errors.append(
                "[ERROR] must provide a submit property when using input blocks [json-pointer:/view]"
            )
    if "blocks" not in view:
        errors.append("[ERROR] missing required field: blocks [json-pointer:/view]")
    else:
        errors.extend(block_errors(view["blocks"], "/view/blocks", limit=VIEW_BLOCKS_LIMIT))
    pm = view.get("private_metadata")
    if isinstance(pm, str) and len(pm) > PRIVATE_METADATA_LIMIT:
        errors.append(_too_long(PRIVATE_METADATA_LIMIT, "/view/private_metadata"))
    for key in ("callback_id", "external_id"):
        value = view.get(key)
        if isinstance(value, str) and len(value) > 255:
            errors.append(_too_long(255, f"/view/{key}"))
    return errors
