"""Wording for the simulator's support tickets (see :mod:`opsloop.packs.checkout.simulator`).

Templates are ``str.format`` strings. Every template may use any of these placeholders (unused ones
are ignored): ``{store}`` (shop display name), ``{merchant}`` (``m_007``), ``{order}`` (an order id),
``{amount}`` (``72.10``), ``{when}`` (``14:20 UTC``, the time the customer noticed), ``{n}`` (a small count), ``{plugin}``,
``{invoice}``, ``{date}`` (``Nov 3``), ``{name}`` (the writer's first name), ``{colleague}``, ``{country}``.

Incident tickets are written the way a merchant would: they describe the symptom and never use the
simulator's internal category names (``webhook_auth``, ``api_auth``, ``event_loss``, ``cart_state``,
``latency``, ``conversion``).
"""

from __future__ import annotations

GREETINGS = ("", "", "Hi,\n\n", "Hello team,\n\n", "Hi support,\n\n", "Good morning,\n\n", "Hey,\n\n")
SIGNOFFS = (
    "",
    "",
    "\n\nThanks,\n{name}",
    "\n\nBest regards,\n{name} ({store})",
    "\n\nCheers, {name}",
    "\n\n-- {name}, ops lead at {store}",
)
URGENCY = (
    "",
    "",
    " This is costing us sales right now.",
    " Please escalate, this is urgent.",
    " We're in the middle of a promotion, so every minute counts.",
    " Can someone look at this ASAP?",
    " Our merchant ID is {merchant}.",
)

STORE_PREFIXES = (
    "Northwind", "Bluebird", "Copper", "Maple", "Harbor", "Alpine", "Juniper", "Saffron", "Evergreen",
    "Lumen", "Cobalt", "Fable", "Willow", "Granite", "Meadow", "Orbit", "Pebble", "Tidal",
)
STORE_SUFFIXES = (
    "Outfitters", "Goods", "Supply Co.", "Home", "Apparel", "Coffee", "Books", "Cycles", "Kitchen",
    "Beauty", "Pets", "Studio", "Garden", "Toys", "Audio", "Market",
)
FIRST_NAMES = (
    "Alex", "Sam", "Priya", "Jonas", "Maria", "Chen", "Fatima", "Lukas", "Emma", "Diego", "Aisha",
    "Tom", "Yuki", "Olga", "Noah", "Lea", "Ravi", "Sofia",
)
PLUGINS = ("WooCommerce", "Magento 2", "Shopware", "PrestaShop", "BigCommerce", "Salesforce Commerce")
COUNTRIES = ("Germany", "Canada", "the UK", "France", "Australia", "the Netherlands", "Spain")

# topic -> [(subject, body), ...]: ordinary support chatter, unrelated to the injected incidents.
BACKGROUND: dict[str, list[tuple[str, str]]] = {
    "password_reset": [
        ("Password reset link not arriving", "I requested a password reset for the dashboard twice but the email never arrived. Can you resend it?"),
        ("Locked out of the merchant dashboard", "One of our staff ({colleague}) is locked out after too many login attempts. How do we unlock the account?"),
        ("Reset 2FA for a team member", "A colleague lost her phone and can't get the two-factor code. Could you reset 2FA for her login?"),
    ],
    "invoice_copy": [
        ("Copy of invoice {invoice}", "Our accountant needs a PDF copy of invoice {invoice}. Could you send it again?"),
        ("Need last month's invoices", "Where can I download all invoices for last month? I can only find the latest one in the billing page."),
        ("VAT number missing on invoice", "Invoice {invoice} doesn't show our VAT number. Could you reissue it with the VAT ID included?"),
    ],
    "refund_request": [
        ("How to refund order {order}", "A customer returned the items from order {order}. How do I issue a partial refund of {amount} USD?"),
        ("Refund not showing for customer", "We refunded order {order} on {date} but the customer says it hasn't shown up on their card. How long does it take?"),
        ("Refund stuck in pending", "The refund for {order} has been pending since {date}. Is there anything we need to do?"),
    ],
    "shipping_address": [
        ("Change shipping address on order {order}", "The customer made a typo in the shipping address for order {order}. Can the address be changed after payment?"),
        ("Customer wants to ship to another address", "Is it possible to edit the delivery address of an order that has already been paid ({order})?"),
    ],
    "api_docs": [
        ("Question about the API docs", "In the API reference, is the `expand` parameter supported on the list orders endpoint? The docs are a bit unclear."),
        ("Pagination in orders API", "What's the maximum page size for GET /v1/orders? We want to sync our ERP nightly."),
        ("Sandbox vs live keys", "Can we use the sandbox keys to test refunds end-to-end, or only payments?"),
        ("Idempotency keys", "How long are idempotency keys remembered for POST /v1/payments? The docs say 24h in one place and 7 days in another."),
    ],
    "plugin_installation": [
        ("Installing the {plugin} plugin", "We're setting up the {plugin} plugin on a staging shop. Which version of the plugin should we use?"),
        ("{plugin} plugin update failed", "Updating the {plugin} plugin gave a permissions error halfway through. Is it safe to retry?"),
        ("Plugin settings page blank", "After installing the {plugin} extension the settings page is blank. Any known issues?"),
    ],
    "payout_schedule": [
        ("When is the next payout?", "Our payout schedule says weekly, but we haven't received anything since {date}. When is the next payout due?"),
        ("Switch payouts to daily", "Can we move from weekly to daily payouts? We're growing quickly and need the cash flow."),
        ("Payout amount doesn't match", "The payout on {date} is lower than the sum of our orders. Where can I see the fee breakdown?"),
    ],
    "webhook_setup": [
        ("Adding a second webhook endpoint", "We want to send order events to a second URL for our analytics. Can we register two endpoints?"),
        ("Which events can webhooks send?", "Is there a list of all webhook event types? We'd like refund events too."),
    ],
    "checkout_customisation": [
        ("Change the colour of the pay button", "Can we change the colour and label of the pay button on the hosted checkout page?"),
        ("Add a gift message field", "Is it possible to add an optional gift message field to checkout?"),
    ],
    "tax_settings": [
        ("Tax rates for {country}", "We started selling to {country}. How do we configure tax rates there?"),
        ("Prices shown without tax", "Our prices are entered tax-inclusive. Where is the setting to show them that way to customers?"),
    ],
    "user_permissions": [
        ("Add a new user with read-only access", "How can I add our bookkeeper with read-only access to orders and payouts?"),
        ("Remove a former employee", "Please remove {colleague}'s access to our account, they left the company last week."),
    ],
    "export_orders": [
        ("Export orders to CSV", "Is there a way to export all orders from {date} onwards as CSV, including line items?"),
        ("Report of refunds", "Where can I get a report of all refunds for the last quarter?"),
    ],
}

# incident name -> subjects / bodies / follow-ups (customer wording, symptom only).
INCIDENTS: dict[str, dict[str, tuple[str, ...]]] = {
    "webhook_403": {
        "subjects": (
            "Not receiving order webhooks",
            "Order notifications stopped",
            "No new orders in our fulfilment system",
            "Webhooks not arriving since {when}",
            "Our warehouse isn't getting orders",
            "Order events missing",
        ),
        "bodies": (
            "We stopped receiving order webhooks since {when}. Customers are paying, but nothing reaches our endpoint.",
            "Our fulfilment system shows no new orders since {when}, yet the dashboard lists new paid orders (e.g. {order}).",
            "Order notifications to our backend stopped completely. Our endpoint logs show nothing from you since {when}.",
            "Since {when} none of our orders are being pushed to the warehouse integration. Order {order} for example never arrived.",
            "We haven't had a single order notification for the last hour although sales continue. Did something change on your side?",
            "Our ERP integration is empty today since {when}. Is there a problem sending order events to us?",
        ),
    },
    "api_auth_failure": {
        "subjects": (
            "Customers can't check out - error 401",
            "Checkout says unauthorized",
            "Checkout broken: 401 errors",
            "Unauthorized error when customers click Buy",
            "Checkout failing for all customers",
            "Our API key suddenly rejected?",
        ),
        "bodies": (
            "Since {when} customers can't check out at all. The checkout request comes back with error 401.",
            "Our shop shows 'unauthorized' as soon as a customer tries to start checkout. Nothing changed on our side.",
            "Every attempt to create a checkout session fails with 401 Unauthorized since {when}. Our API key worked fine this morning.",
            "Customers get an error page saying unauthorized when they go to pay. We're losing every sale.",
            "Our integration logs show 'invalid API key' responses from your checkout endpoint since {when}. Did our key expire?",
            "Checkout is completely broken for us, the storefront shows an authorization error. {n} customers have emailed us already.",
        ),
    },
    "missing_order_created": {
        "subjects": (
            "Customer charged but no order",
            "Payment taken, no order confirmation",
            "Orders missing after successful payment",
            "Paid orders not showing up",
            "Customers charged twice because order didn't appear",
            "Missing orders since {when}",
        ),
        "bodies": (
            "A customer was charged {amount} USD but there is no order in our dashboard. The payment shows as successful.",
            "Several customers say the payment went through but they never got an order confirmation email.",
            "We see captured payments with no matching order since {when}. Payment reference for one of them: {order}.",
            "Customers are paying but the orders don't appear in our system, so nothing gets shipped. {n} cases so far.",
            "A shopper paid {amount} USD at around {when}, card was charged, but no order was created and no confirmation was sent.",
            "Some payments today have no order attached. Customers are asking where their confirmation is and one re-ordered and got charged twice.",
        ),
    },
    "cart_empty": {
        "subjects": (
            "Cart is empty at checkout",
            "Items disappear from basket when clicking pay",
            "Basket empties itself",
            "Customers see an empty cart on the payment page",
            "Checkout shows no items",
            "Cart cleared at checkout step",
        ),
        "bodies": (
            "Customers add items, click checkout and the cart is empty on the checkout page.",
            "Items disappear from the basket when I click pay. Tried on two browsers, same result.",
            "Since {when} our customers report that their basket is emptied as soon as they go to checkout.",
            "The checkout page says 'your cart is empty' even though the mini-cart showed {n} items a second before.",
            "We tested ourselves: add a product, press checkout, the order summary shows nothing and there is no way to pay.",
            "Lots of complaints today that the cart resets at checkout. Did you change something on the checkout page?",
        ),
    },
    "slow_checkout": {
        "subjects": (
            "Checkout is extremely slow",
            "Payment page keeps spinning",
            "Checkout takes forever",
            "Timeouts at checkout",
            "Customers stuck on payment step",
            "Very slow payments since {when}",
        ),
        "bodies": (
            "Checkout has been extremely slow since {when}. Customers wait 10+ seconds after clicking pay.",
            "The payment page just keeps spinning. Some customers eventually get a timeout error.",
            "Our customers complain that checkout takes forever to load and some give up.",
            "Clicking 'Pay now' hangs for a long time and sometimes shows a gateway timeout.",
            "Since {when} the checkout is painfully slow for us. {n} customers contacted us in the last half hour.",
            "Is there an outage? The checkout page loads very slowly and payments take ages to confirm.",
        ),
    },
    "conversion_drop": {
        "subjects": (
            "Shipping cost looks wrong at checkout",
            "Customers complaining about prices",
            "Sales dropped sharply today",
            "Shipping shown as much higher than configured",
            "Wrong totals at checkout",
            "Fewer customers completing purchases",
        ),
        "bodies": (
            "Shipping cost looks wrong at checkout - customers see a much higher shipping fee than we configured.",
            "Several customers complain about prices at checkout. The totals don't match what's on the product page.",
            "Our sales dropped sharply since {when} even though traffic looks normal. Customers mention strange shipping prices.",
            "A customer sent a screenshot where shipping to {country} costs 49.00 USD. We charge 4.90.",
            "People reach the cart but then leave. A couple told us the delivery costs shown are wrong.",
            "Since {when} far fewer visitors go ahead with checkout. No errors anywhere, but customers say the prices look off.",
        ),
    },
}
