"""Playwright on Edge (Chromium when Edge is not installed): one line to a logged-in page, on
the test's own profile (its persistent context, not a throwaway one)."""


def test_clone_starts_logged_in(edge_page, site):
    edge_page.goto(site)
    assert edge_page.text_content("#greeting") == "Welcome alice"


def test_each_test_has_its_own_profile(edge_page, edge_profile):
    edge_page.goto("chrome://version")
    assert str(edge_profile) in edge_page.text_content("#profile_path")


def test_more_pages_in_the_same_profile(edge_context, site):
    page = edge_context.new_page()
    page.goto(site)
    assert page.text_content("#greeting") == "Welcome alice"
