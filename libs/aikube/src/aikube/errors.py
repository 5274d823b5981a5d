"""Errors every part of AIkube shares."""


class Rejected(Exception):
    """Input that can never succeed however often it is retried (an unknown dataset, an unreadable file).

    The service runtime dead-letters the event at once with this message, instead of retrying it.
    """
