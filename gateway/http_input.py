"""Reading request bodies the SEPs allow (JSON, urlencoded and multipart forms) into one dict."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import ClientDisconnect, Request

from gateway.errors import BadRequest, GatewayError, PayloadTooLarge, UnsupportedContentType

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
MAX_JSON_BYTES = 262_144  # no request of any SEP needs more; files come as multipart
# No field of any SEP holds a NUL; PostgreSQL cannot store one in text.
NUL_IN_BODY = "Request body must not contain NUL characters"


def any_text(value: object, bad: Callable[[str], bool]) -> bool:
    """Whether any string in a parsed JSON value (keys included, at any depth) is ``bad``."""
    if isinstance(value, str):
        return bad(value)
    if isinstance(value, dict):
        return any(bad(k) or any_text(v, bad) for k, v in value.items())
    if isinstance(value, list):
        return any(any_text(v, bad) for v in value)
    return False


def has_nul(text: str) -> bool:
    return "\x00" in text


def unstorable(text: str) -> bool:
    """A NUL (PostgreSQL text cannot hold one) or a lone surrogate (not UTF-8)."""
    return "\x00" in text or any("\ud800" <= ch <= "\udfff" for ch in text)


@dataclass(frozen=True, slots=True)
class Upload:
    """A file part, read whole (its size is bounded by the body limit) and closed."""

    filename: str | None
    content_type: str | None
    content: bytes


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def read_fields(request: Request, *, allow_files: bool = False) -> dict[str, Any]:
    """The body's fields. JSON must be an object; forms give strings (and Uploads when
    ``allow_files``). Anything else is a 400 naming what is accepted."""
    kind = media_type(request)
    if kind == JSON or kind.endswith("+json"):
        raw = await request.body()
        if len(raw) > MAX_JSON_BYTES:
            raise PayloadTooLarge(f"JSON bodies are at most {MAX_JSON_BYTES} bytes")
        try:
            # Amounts arrive as JSON numbers: read them as Decimal, never as float.
            data = json.loads(raw, parse_float=Decimal) if raw else {}
            # A lone surrogate (\ud800) is valid JSON but not text: refuse it here.
            json.dumps(data, ensure_ascii=False, default=str).encode("utf-8")
        except (ValueError, UnicodeError, RecursionError):
            raise BadRequest("Request body is not valid JSON") from None
        if not isinstance(data, dict):
            raise BadRequest("Request body must be a JSON object")
        if any_text(data, has_nul):
            raise BadRequest(NUL_IN_BODY)
        return data
    if kind in (FORM, MULTIPART):
        try:
            form = await request.form()
        except (GatewayError, ClientDisconnect):
            raise  # too large, or the client went away: not a malformed form
        except Exception:
            # python-multipart reports malformed bodies with assorted exception types.
            raise BadRequest("Request body is not a valid form") from None
        try:
            fields: dict[str, Any] = {}
            for key, value in form.multi_items():
                if isinstance(value, UploadFile) and not allow_files:
                    raise BadRequest(f"{key}: file uploads are not accepted here")
                if key in fields:
                    raise BadRequest(f"{key}: sent more than once")
                if isinstance(value, UploadFile):
                    fields[key] = Upload(value.filename, value.content_type, await value.read())
                elif "\x00" in key or "\x00" in value:
                    raise BadRequest(NUL_IN_BODY)
                else:
                    fields[key] = value
            return fields
        finally:
            await form.close()
    if kind == "" and not await request.body():
        return {}
    raise UnsupportedContentType(
        "Content-Type must be application/json, application/x-www-form-urlencoded"
        + (" or multipart/form-data" if allow_files else "")
    )
