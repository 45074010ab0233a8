"""Names of the checkout scenario's KPI metrics, log events and stages (the simulator writes them;
``pack.yaml`` declares what they mean)."""

STAGES = ("legacy", "dual_run", "headless")
METRIC_SESSIONS = "sessions"
METRIC_ATTEMPTS = "checkout_attempts"
METRIC_SUCCESS_RATE = "checkout_success_rate"
METRIC_ORDERS = "orders"
METRIC_CONVERSION = "conversion_rate"
METRIC_AOV = "avg_order_value"
METRIC_P95_LATENCY = "p95_latency_ms"
EVENT_SESSION_CREATED = "checkout.session_created"
EVENT_PAYMENT_SUCCEEDED = "payment.succeeded"
EVENT_PAYMENT_FAILED = "payment.failed"
EVENT_ORDER_CREATED = "order.created"
EVENT_WEBHOOK_DELIVERED = "webhook.delivered"
