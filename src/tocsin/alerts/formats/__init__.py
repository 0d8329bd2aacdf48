"""Parsers from each protocol's wire format to Signals; each raises FormatError with its own messages."""
