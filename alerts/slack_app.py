"""Answering clicks in Slack: redraw the alert, refuse a user, read a user group.

    SlackResponder
        update(channel, ts, message)       chat.update (bot token): the posted alert, redrawn
        ephemeral(channel, user, text)     chat.postEphemeral (bot token): seen by one user only
        respond(url, message, ephemeral)   the click's response_url: needs no token at all
        group_members(group_id)            usergroups.users.list (bot token, usergroups:read)

Failures come out as alerts.slack.SlackError, as for posting.
"""

from __future__ import annotations

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.webhook import WebhookClient

from alerts.message import SlackMessage
from alerts.slack import TRANSPORT_ERRORS, SlackError, api_error, failure, transport_error


class SlackResponder:
    """The Slack calls made after a click; `token` is the bot token, None in webhook mode."""

    def __init__(self, token: str | None, api_url: str = "https://slack.com/api/",
                 timeout: float = 10.0) -> None:
        self.has_token = bool(token)
        self._timeout = timeout
        self._client = WebClient(token=token, base_url=api_url, retry_handlers=[],
                                 timeout=timeout)  # type: ignore[arg-type]  # int in the stubs; float works

    def update(self, channel: str, ts: str, message: SlackMessage) -> None:
        """Replace the message `ts` in `channel` by `message`."""
        try:
            self._client.chat_update(channel=channel, ts=ts, text=message.text, blocks=list(message.blocks))
        except SlackApiError as exc:
            raise api_error(channel, exc) from exc
        except TRANSPORT_ERRORS as exc:
            raise transport_error(channel, exc) from exc

    def ephemeral(self, channel: str, user: str, text: str) -> None:
        """Show `text` to `user` alone, in `channel`."""
        try:
            self._client.chat_postEphemeral(channel=channel, user=user, text=text)
        except SlackApiError as exc:
            raise api_error(channel, exc) from exc
        except TRANSPORT_ERRORS as exc:
            raise transport_error(channel, exc) from exc

    def respond(self, url: str, message: SlackMessage, *, ephemeral: bool = False) -> None:
        """Answer through a click's response_url: replace the message, or tell the user alone."""
        client = WebhookClient(url, timeout=self._timeout, retry_handlers=[])  # type: ignore[arg-type]
        try:
            if ephemeral:
                response = client.send(text=message.text, response_type="ephemeral", replace_original=False)
            else:
                response = client.send(text=message.text, blocks=list(message.blocks), replace_original=True)
        except TRANSPORT_ERRORS as exc:
            raise transport_error("response_url", exc) from exc
        if response.status_code != 200:
            raise failure("response_url", response.status_code, response.body.strip(), response.headers)

    def group_members(self, group_id: str) -> frozenset[str]:
        """The user ids in a user group."""
        try:
            response = self._client.usergroups_users_list(usergroup=group_id)
        except SlackApiError as exc:
            raise api_error(group_id, exc) from exc
        except TRANSPORT_ERRORS as exc:
            raise transport_error(group_id, exc) from exc
        users = response.get("users")
        if not isinstance(users, list):
            raise SlackError(group_id, "usergroups.users.list answered without users", retryable=True)
        return frozenset(str(user) for user in users)
