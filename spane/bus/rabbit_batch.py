"""A batch of publications written to the broker at once: one lock, one frame batch,
one socket write, each message's confirm awaited together.

aiormq publishes one message per call: a task, a lock, a timeout, a drain future and a
socket write each. On W3 that was most of the publishing CPU (3.6 socket writes per
node in the orchestrator); writing a batch as one frame batch cut the CPU per node of
the whole deployment by about a quarter (measured: README, *Performance*). This module
does what ``aiormq.Channel.basic_publish`` does for one message (delivery tag, confirm
future, message id for returns, rollback if nothing was sent) for many, on the same
channel state. That state is aiormq's own (its 7.x ``Channel``): :func:`supports` checks
it is there, and the caller falls back to one ``basic_publish`` per message if not.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Any, Protocol

from aiormq import spec
from aiormq.abc import ChannelFrame
from pamqp.header import ContentHeader


class Publication(Protocol):
    """One message to publish (``rabbit_publish.Outgoing``)."""

    @property
    def exchange(self) -> str: ...
    @property
    def routing_key(self) -> str: ...
    @property
    def body(self) -> bytes: ...
    @property
    def properties(self) -> spec.Basic.Properties: ...
    @property
    def mandatory(self) -> bool: ...


_STATE = (
    "lock",
    "delivery_tag",
    "confirmations",
    "message_id_delivery_tag",
    "write_queue",
    "publisher_confirms",
    "number",
    "create_future",
    "_split_body",
)
"""The aiormq channel state a batch publication uses."""

MAX_ROUTING_KEY = 255


def supports(channel: Any) -> bool:
    """Whether ``channel`` (aiormq's) has the state a batch publication uses, with
    publisher confirms on (without them there is nothing to await)."""
    return all(hasattr(channel, name) for name in _STATE) and bool(channel.publisher_confirms)


async def publish_batch(channel: Any, outgoing: Sequence[Publication]) -> list[object]:
    """Publish ``outgoing`` on ``channel`` as one write and await every confirm; each
    message's outcome in its place (a confirm frame, or the exception: ``PublishError``
    when returned unroutable, ``DeliveryError`` when nacked, the closing error when the
    channel closes). Raises only if nothing could be written (nothing was sent then)."""
    for item in outgoing:
        if len(item.routing_key) > MAX_ROUTING_KEY:
            raise ValueError(f"routing key {item.routing_key[:40]!r}... longer than 255 bytes")
    confirms: list[asyncio.Future[Any]] = []
    async with channel.lock:
        first_tag = channel.delivery_tag
        registered: list[tuple[int, str]] = []
        frames: list[Any] = []
        try:
            for item in outgoing:
                channel.delivery_tag += 1
                tag: int = channel.delivery_tag
                properties = item.properties
                if not properties.message_id:  # returns are matched by message id
                    properties.message_id = uuid.uuid4().hex
                confirm = channel.create_future()
                channel.confirmations[tag] = confirm
                channel.message_id_delivery_tag[properties.message_id] = tag
                registered.append((tag, properties.message_id))
                confirms.append(confirm)
                frames.append(_publish_frame(item.exchange, item.routing_key, item.mandatory))
                frames.append(ContentHeader(properties=properties, body_size=len(item.body)))
                frames += channel._split_body(item.body)
            frame = ChannelFrame.marshall(frames=frames, channel_number=channel.number)
            await channel.write_queue.put(frame)
        except BaseException:  # nothing reached the broker: give the tags back
            channel.delivery_tag = first_tag
            for (tag, message_id), confirm in zip(registered, confirms, strict=False):
                channel.confirmations.pop(tag, None)
                if channel.message_id_delivery_tag.get(message_id) == tag:
                    channel.message_id_delivery_tag.pop(message_id)
                confirm.cancel()
            raise
    for (tag, message_id), confirm in zip(registered, confirms, strict=True):
        confirm.add_done_callback(_forgetting(channel, message_id, tag))
    return list(await asyncio.gather(*confirms, return_exceptions=True))


def _forgetting(channel: Any, message_id: str, tag: int) -> Any:
    def forget(_: asyncio.Future[Any]) -> None:
        if channel.message_id_delivery_tag.get(message_id) == tag:
            channel.message_id_delivery_tag.pop(message_id)

    return forget


_PUBLISH_FRAMES: dict[tuple[str, str, bool], spec.Basic.Publish] = {}


def _publish_frame(exchange: str, routing_key: str, mandatory: bool) -> spec.Basic.Publish:
    """The Basic.Publish frame of an exchange and routing key (immutable once built:
    kept, as the same few are sent again and again)."""
    key = (exchange, routing_key, mandatory)
    frame = _PUBLISH_FRAMES.get(key)
    if frame is None:
        if len(_PUBLISH_FRAMES) >= 4096:
            _PUBLISH_FRAMES.clear()
        frame = _PUBLISH_FRAMES[key] = spec.Basic.Publish(
            exchange=exchange, routing_key=routing_key, mandatory=mandatory
        )
    return frame
