"""Pages for people: phone-first HTML served by the API's own app, Chinese first.

`web.app.install` adds them to the app `api.app.create_app` builds. Staff
and shop devices sign in with a username and password (`web.accounts`);
each account acts as an API principal, with exactly the API's roles. The
shop scanner (`web.routes.shop`) checks and redeems vouchers through the
same `redemption` functions as the API.
"""
