"""Template markup or a handful of words is not a narrative (seen from SmolLM2 in the demo)."""

from opsloop.llm.validate import is_prose


def test_template_markup_and_fragments_are_not_prose():
    assert not is_prose("{{.merch-cart-empty-after-frontend-release}}")
    assert not is_prose("Impact: cart state")
    assert is_prose("Checkout sessions on dual_run were created with empty carts after the frontend release.")
