"""The pages, one blueprint per area, all under `web.app.pages`."""
