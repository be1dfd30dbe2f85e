"""Parsing and rendering JSON for the API.

Kept apart from ``config.api`` because DRF imports these classes (``DEFAULT_PARSER_CLASSES``,
``DEFAULT_RENDERER_CLASSES``) while it is itself being imported.
"""

from rest_framework import exceptions, parsers, renderers

MAX_JSON_DEPTH = 32


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, refusing with a 400 what would otherwise end in a 500.

    DRF catches only ``ValueError``: a document nested thousands of levels deep makes the decoder raise
    ``RecursionError``, and a lone surrogate escape (``"\\ud800"``) decodes into a string that cannot be encoded as
    UTF-8 again, so echoing it in an error message fails. No request of this API nests deeper than a few levels.
    """

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError(f"JSON parse error - nested deeper than {MAX_JSON_DEPTH} levels.") from None
        _check_decoded(data)
        return data


def _check_decoded(data) -> None:
    """Refuse nesting deeper than ``MAX_JSON_DEPTH`` and strings (values or keys) that are not valid Unicode."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            _check_text(value)
        elif isinstance(value, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise exceptions.ParseError(f"JSON parse error - nested deeper than {MAX_JSON_DEPTH} levels.")
            if isinstance(value, dict):
                for key in value:
                    _check_text(key)
                stack.extend((child, depth + 1) for child in value.values())
            else:
                stack.extend((child, depth + 1) for child in value)


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        code = ord(text[error.start])
        raise exceptions.ParseError(
            f"JSON parse error - \\u{code:04x} is half of a surrogate pair (a lone surrogate), not a character."
        ) from None


class JSONRenderer(renderers.JSONRenderer):
    """DRF's JSON renderer; should text that is not valid Unicode still reach it, it is written as ``\\u`` escapes
    (valid JSON) instead of failing to encode as UTF-8."""

    def render(self, data, accepted_media_type=None, renderer_context=None):
        try:
            return super().render(data, accepted_media_type, renderer_context)
        except UnicodeEncodeError:
            return _AsciiJSONRenderer().render(data, accepted_media_type, renderer_context)


class _AsciiJSONRenderer(renderers.JSONRenderer):
    """DRF's JSON renderer writing every non-ASCII character as a ``\\u`` escape."""

    ensure_ascii = True
