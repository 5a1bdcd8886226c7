"""Playwright's persistent context on Edge (Chromium when Edge is not installed)."""

from playwright.sync_api import sync_playwright


def test_clone_starts_logged_in(edge_playwright_kwargs, site):
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(**edge_playwright_kwargs)
        page = context.new_page()
        page.goto(site)
        assert page.text_content("#greeting") == "Welcome alice"
        context.close()
