"""The API's blueprints, one per area; `api.app` registers them in this order.

Every blueprint's routes authenticate first, except those in
`PUBLIC_BLUEPRINTS`: the voucher verification keys, which shop apps
download without a key, the signed checkpoints, their vkeys and
consistency proofs, which anyone may check, and the boards, which a
village posts in its hall (names masked).
"""

from api.routes.awards import blueprint as awards
from api.routes.boards import blueprint as boards
from api.routes.checkpoints import blueprint as checkpoints
from api.routes.checkpoints import public_blueprint as checkpoints_public
from api.routes.claims import blueprint as claims
from api.routes.entries import blueprint as entries
from api.routes.items import blueprint as items
from api.routes.keys import blueprint as keys
from api.routes.organisation import blueprint as organisation
from api.routes.programmes import blueprint as programmes
from api.routes.redemptions import blueprint as redemptions
from api.routes.rules import blueprint as rules
from api.routes.settlement import blueprint as settlement
from api.routes.shops import blueprint as shops
from api.routes.statements import blueprint as statements
from api.routes.vouchers import blueprint as vouchers
from api.routes.vouchers import public_blueprint as voucher_keys

BLUEPRINTS = [awards, claims, entries, statements, programmes, organisation, rules, keys,
              shops, items, vouchers, voucher_keys, redemptions, settlement, checkpoints,
              checkpoints_public, boards]
PUBLIC_BLUEPRINTS = [voucher_keys, checkpoints_public, boards]
