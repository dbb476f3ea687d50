"""The page an approval link opens: what is being approved, and a form to decide.

Everything shown is escaped; the page loads nothing from elsewhere and runs no script, and
its answers tell browsers not to cache it, frame it or send its address on.
"""

from __future__ import annotations

import html
import json
from typing import Any

from starlette.responses import HTMLResponse

__all__ = ["HEADERS", "closed_page", "decided_page", "review_page"]

#: Headers of every page: no caching of a capability URL, no framing, no referrer.
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
}

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;"
    "color:#1d232a}h1{font-size:1.4rem}dt{font-weight:600;margin-top:.6rem}pre{background:"
    "#f4f5f7;padding:.6rem;overflow:auto;white-space:pre-wrap}textarea{width:100%;min-height:"
    "6rem}button{font-size:1rem;padding:.4rem 1.2rem;margin:.6rem .6rem 0 0}"
    ".approve{background:#1f7a3a;color:#fff}.reject{background:#a4262c;color:#fff}"
)


def _page(title: str, body: str, status: int) -> HTMLResponse:
    document = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body>{body}</body></html>"
    )
    return HTMLResponse(document, status_code=status, headers=HEADERS)


def _e(value: Any) -> str:
    return html.escape(str(value))


def review_page(link: dict[str, Any]) -> HTMLResponse:
    """The open link: the task, its criteria, the phases' outputs, the reviews, the form."""
    task, reviews = link["task"], link["reviews"] or {}
    criteria = "".join(f"<li>{_e(c)}</li>" for c in json.loads(task["acceptance_criteria"]))
    outputs = ""
    for phase in json.loads(task["phases"]):
        if phase["review"] or phase["status"] != "Completed":
            continue
        output = (phase.get("result") or {}).get("output")
        shown = json.dumps(output, indent=2, ensure_ascii=False)[:20_000]
        outputs += f"<dt>{_e(phase['name'])}</dt><dd><pre>{_e(shown)}</pre></dd>"
    given = "".join(
        f"<li>{_e(r['reviewer'])}: {_e(r['verdict'])}"
        + (f": {_e(r['comment'])}" if r["comment"] else "")
        + "</li>"
        for r in reviews.get("reviews", [])
        if r["round"] == link["round"]
    )
    pending = reviews.get("pending") or {}
    body = (
        f"<h1>Review: {_e(task['name'])}</h1>"
        f"<p>{_e(link['reviewer'])}, you are asked to review the phase "
        f"<b>{_e(link['phase'])}</b> (round {_e(link['round'])}) of this task. "
        f"Approvals so far: {_e(pending.get('approvals', 0))} of "
        f"{_e(pending.get('reviews_required', '?'))}.</p>"
        f"<dl><dt>Task</dt><dd>{_e(task['id'])}</dd>"
        + (f"<dt>Description</dt><dd>{_e(task['description'])}</dd>" if task["description"] else "")
        + (f"<dt>Acceptance criteria</dt><dd><ul>{criteria}</ul></dd>" if criteria else "")
        + (f"<dt>Reviews this round</dt><dd><ul>{given}</ul></dd>" if given else "")
        + "</dl>"
        + (f"<h2>Outputs of the phases so far</h2><dl>{outputs}</dl>" if outputs else "")
        + '<form method="post"><label for="comment">Comment</label>'
        '<textarea id="comment" name="comment" maxlength="10000"></textarea>'
        '<button class="approve" name="verdict" value="approve">Approve</button>'
        '<button class="reject" name="verdict" value="reject">Reject</button></form>'
        f"<p><small>This link works once, until {_e(link['expires_at'])}.</small></p>"
    )
    return _page(f"Review {task['name']}", body, 200)


def decided_page(review: dict[str, Any]) -> HTMLResponse:
    """The verdict was recorded."""
    verdict = "approved" if review["verdict"] == "approve" else "rejected"
    body = (
        f"<h1>Thank you</h1><p>{_e(review['reviewer'])} {verdict} the phase "
        f"<b>{_e(review['phase'])}</b> (round {_e(review['round'])}). This link is now used.</p>"
    )
    return _page("Review recorded", body, 200)


def closed_page(status: int, message: str) -> HTMLResponse:
    """The link is unknown (404), used, expired or over (410), or refused (409)."""
    titles = {404: "No such review link", 410: "This review link is closed"}
    title = titles.get(status, "The review was not recorded")
    return _page(title, f"<h1>{_e(title)}</h1><p>{_e(message)}</p>", status)
