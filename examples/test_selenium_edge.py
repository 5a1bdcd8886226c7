"""Selenium on Edge (Chromium when Edge is not installed): one line to a logged-in browser."""


def test_clone_starts_logged_in(edge_driver, site):
    edge_driver.get(site)
    assert edge_driver.find_element("id", "greeting").text == "Welcome alice"


def test_each_test_has_its_own_profile(edge_driver, edge_profile):
    edge_driver.get("chrome://version")
    assert str(edge_profile) in edge_driver.page_source
