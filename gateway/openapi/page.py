"""The OpenAPI document as one self-contained HTML page (GET /docs): no script, no font, nothing
fetched from elsewhere; every text from the document is escaped."""

from __future__ import annotations

from html import escape
from typing import Any

STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 64rem;
       padding: 0 1rem; color: #1b1f24; }
h2 { border-bottom: 1px solid #d0d7de; padding-bottom: .3rem; margin-top: 2.5rem; }
section.op { border: 1px solid #d0d7de; border-radius: 6px; margin: 1rem 0; padding: .6rem 1rem; }
h3 { font-size: 1rem; margin: 0 0 .3rem; }
code, .path { font-family: ui-monospace, monospace; }
.method { display: inline-block; min-width: 4.2rem; font-weight: 700; text-transform: uppercase; }
.get { color: #0969da; } .post { color: #1a7f37; } .put { color: #9a6700; }
.patch { color: #8250df; } .delete { color: #cf222e; }
table { border-collapse: collapse; margin: .3rem 0 .6rem; }
td, th { border: 1px solid #d0d7de; padding: .15rem .5rem; text-align: left;
         vertical-align: top; }
.muted { color: #57606a; }
"""
CONTENT_SECURITY_POLICY = "default-src 'none'; style-src 'unsafe-inline'"


def render(doc: dict[str, Any]) -> str:
    info = doc.get("info", {})
    groups: dict[str, list[str]] = {}
    for path, methods in doc.get("paths", {}).items():
        for method, op in methods.items():
            tag = (op.get("tags") or ["other"])[0]
            groups.setdefault(tag, []).append(_operation(path, method, op))
    schemes = doc.get("components", {}).get("securitySchemes", {})
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(str(info.get('title', 'API')))}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>{escape(str(info.get('title', 'API')))} "
        f"<span class=muted>{escape(str(info.get('version', '')))}</span></h1>",
        f"<p>{escape(str(info.get('description', '')))}</p>",
        '<p>The same as an OpenAPI document: <a href="/openapi.json">/openapi.json</a>.</p>',
        "<h2>Authentication</h2><ul>",
        *(
            f"<li><code>{escape(name)}</code>: {escape(str(s.get('description', '')))}</li>"
            for name, s in schemes.items()
        ),
        "</ul>",
    ]
    for tag, ops in groups.items():
        parts.append(f"<h2>{escape(tag.capitalize())}</h2>")
        parts.extend(ops)
    parts.append("</body></html>")
    return "\n".join(parts)


def _operation(path: str, method: str, op: dict[str, Any]) -> str:
    security = op.get("security") or []
    who = ", ".join(escape(name) for s in security for name in s) or "none"
    out = [
        f'<section class=op id="{escape(op.get("operationId", ""))}">',
        f'<h3><span class="method {escape(method)}">{escape(method)}</span> '
        f"<span class=path>{escape(path)}</span></h3>",
        f"<p>{escape(str(op.get('summary', '')))}</p>",
    ]
    if op.get("description"):
        out.append(f"<p class=muted>{escape(str(op['description']))}</p>")
    out.append(f"<p>Authentication: {who}</p>")
    parameters = op.get("parameters") or []
    if parameters:
        out.append("<table><tr><th>Parameter</th><th>In</th><th>Schema</th><th></th></tr>")
        for p in parameters:
            out.append(
                f"<tr><td><code>{escape(p['name'])}</code>"
                f"{' (required)' if p.get('required') else ''}</td>"
                f"<td>{escape(p['in'])}</td><td>{escape(_schema(p.get('schema', {})))}</td>"
                f"<td>{escape(str(p.get('description', '')))}</td></tr>"
            )
        out.append("</table>")
    body = op.get("requestBody")
    if body:
        out.append("<p>Body" + (" (required)" if body.get("required") else " (optional)") + ":</p>")
        out.append("<ul>")
        for media, content in body.get("content", {}).items():
            out.append(
                f"<li><code>{escape(media)}</code>: "
                f"{escape(_schema(content.get('schema', {})))}</li>"
            )
        out.append("</ul>")
    out.append("<p>Responses:</p><ul>")
    for status, reply in op.get("responses", {}).items():
        media = ", ".join(reply.get("content", {})) or "no body"
        out.append(
            f"<li><code>{escape(status)}</code> {escape(str(reply.get('description', '')))} "
            f"<span class=muted>({escape(media)})</span></li>"
        )
    out.append("</ul></section>")
    return "\n".join(out)


def _schema(schema: dict[str, Any]) -> str:
    """A line about a schema: its type, choices, bounds, or an object's fields (* required)."""
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    if "anyOf" in schema:
        return " or ".join(_schema(s) for s in schema["anyOf"])
    if "enum" in schema:
        return "one of " + ", ".join(str(v) for v in schema["enum"])
    kind = schema.get("type", "any")
    text = " or ".join(kind) if isinstance(kind, list) else str(kind)
    if schema.get("format") == "binary":
        return "file"
    if "minimum" in schema or "maximum" in schema:
        text += f" {schema.get('minimum', '')}..{schema.get('maximum', '')}"
    properties = schema.get("properties")
    if properties:
        required = set(schema.get("required", ()))
        names = [f"{name}{'*' if name in required else ''}" for name in properties]
        shown = ", ".join(names[:12]) + (f", ... ({len(names)} fields)" if len(names) > 12 else "")
        text += f" {{{shown}}}"
    return text
