"""The GUI's icon, as SVG text: three sites joined to a centre.

Kept in Python rather than as a static file so that it needs no packaging rule of its
own; served as ``/favicon.svg`` (linked from every page) and ``/favicon.ico`` (which
browsers and tools ask for by themselves: a 404 there is a console error on first load).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

FAVICON_SVG = """<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">
<rect width="32" height="32" rx="6" fill="#13304f"/>
<g stroke="#dbe8f7" stroke-width="2"><line x1="16" y1="16" x2="8" y2="10"/>
<line x1="16" y1="16" x2="24" y2="10"/><line x1="16" y1="16" x2="16" y2="26"/></g>
<g fill="#fff"><circle cx="16" cy="16" r="3"/><circle cx="8" cy="10" r="3"/>
<circle cx="24" cy="10" r="3"/><circle cx="16" cy="26" r="3"/></g>
</svg>
"""


async def favicon(request: Request) -> Response:
    return Response(FAVICON_SVG, media_type="image/svg+xml")
