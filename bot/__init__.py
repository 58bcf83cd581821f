"""b24mail: send and reply to e-mail from Slack through a Bitrix24 mailbox."""

__version__ = "0.1.0"
