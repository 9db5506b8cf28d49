from tests.dashboard.pages import browser, signed_in

__all__ = ["browser", "signed_in"]
