"""Channels: one small interface (`Channel`) with Slack, email, webhook and console behind it."""

from tocsin.notify.channels.base import Channel, DeliveryError, Unconfigured

__all__ = ["Channel", "DeliveryError", "Unconfigured"]
