"""bitrix24."""
