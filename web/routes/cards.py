"""A resident's points card, printed by their organiser: the QR code that opens their wallet.

Staff with the organiser or admin role over the member's unit (as for
issuing a voucher for them through the API) make a new card here: a new
code is made (web/residents.py), the member's old card stops working at
once, and the page shows the card to print, with the QR code of the wallet's
address and the code in letters. The code is shown this once: only its hash
is kept, so a lost card is replaced, never looked up.
"""

from __future__ import annotations

from flask import Blueprint, g, render_template, url_for

from api.auth import require_member_access
from ledger.organisation import get_unit, member_record
from ledger.programmes import get_programme
from web import residents
from web.accounts import STAFF
from web.formats import local_time
from web.qrcodes import qr_svg
from web.sessions import engine, signed_in

blueprint = Blueprint("cards", __name__, url_prefix="/residents")

CARD_ROLES = ("organiser", "admin")


@blueprint.get("/<member>/card")
@signed_in(STAFF)
def card_form(member: str):
    programme, record = _member(member)
    live = residents.live_code(engine(), programme.code, member)
    return render_template("cards/card.html", programme=programme, record=record,
                           unit=get_unit(engine(), programme.code, record.unit).name,
                           live=live, issued_at=local_time(live.issued_at, programme.zone)
                           if live else None, card=None)


@blueprint.post("/<member>/card")
@signed_in(STAFF)
def new_card(member: str):
    """A new card for the member; their old one stops working."""
    programme, record = _member(member)
    new_code = residents.issue_code(engine(), programme.code, member, issued_by=g.caller.actor)
    address = url_for("pages.wallet.open_form", _external=True) + "#" + new_code.code
    return render_template("cards/card.html", programme=programme, record=record,
                           unit=get_unit(engine(), programme.code, record.unit).name,
                           live=None, issued_at=None, card=new_code,
                           qr=qr_svg(address, new_code.display_code, css_class="qr card-qr"))


def _member(member: str):
    """The member, if the signed-in staff may make their card; a refusal page otherwise."""
    programme_code = g.signed_in.account.programme
    require_member_access(programme_code, member, CARD_ROLES)
    return get_programme(engine(), programme_code), member_record(engine(), programme_code,
                                                                  member)
