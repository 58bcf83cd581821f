"""Reading values out of a submitted view's state, tolerant of missing blocks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.slack import ids


def _element(view: Mapping[str, Any], block_id: str, action_id: str) -> Mapping[str, Any]:
    values = view.get("state", {}).get("values", {})
    block = values.get(block_id) if isinstance(values, Mapping) else None
    element = block.get(action_id) if isinstance(block, Mapping) else None
    return element if isinstance(element, Mapping) else {}


def text_value(view: Mapping[str, Any], block_id: str, action_id: str) -> str:
    value = _element(view, block_id, action_id).get("value")
    return value.strip() if isinstance(value, str) else ""


def selected_value(view: Mapping[str, Any], block_id: str, action_id: str) -> str | None:
    element = _element(view, block_id, action_id)
    selected = element.get("selected_option")
    if isinstance(selected, Mapping) and isinstance(selected.get("value"), str):
        return str(selected["value"])
    return None


def selected_conversation(view: Mapping[str, Any], block_id: str, action_id: str) -> str | None:
    value = _element(view, block_id, action_id).get("selected_conversation")
    return value if isinstance(value, str) and value else None


def rich_text_value(
    view: Mapping[str, Any], block_id: str, action_id: str
) -> dict[str, Any] | None:
    value = _element(view, block_id, action_id).get("rich_text_value")
    return dict(value) if isinstance(value, Mapping) else None


def checked(view: Mapping[str, Any], block_id: str, action_id: str, value: str) -> bool:
    options = _element(view, block_id, action_id).get("selected_options")
    if not isinstance(options, list):
        return False
    return any(isinstance(o, Mapping) and o.get("value") == value for o in options)


def selected_values(view: Mapping[str, Any], block_id: str, action_id: str) -> list[str]:
    """The values of a multi-select's chosen options, in the order chosen."""
    options = _element(view, block_id, action_id).get("selected_options")
    if not isinstance(options, list):
        return []
    return [
        str(o["value"])
        for o in options
        if isinstance(o, Mapping) and isinstance(o.get("value"), str)
    ]


def with_people(view: Mapping[str, Any], field_block: str, people_block: str) -> str:
    """A field's typed addresses plus the people picked for it in its suggestions select."""
    typed = text_value(view, field_block, ids.ADDRESSES_ACTION)
    picked = [
        value
        for value in selected_values(view, people_block, ids.SUGGEST_ACTION)
        if value != ids.SUGGEST_HINT_VALUE
    ]
    return ", ".join([typed, *picked]) if typed else ", ".join(picked)
