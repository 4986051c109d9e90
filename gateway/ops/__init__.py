"""What operators use and watch: the operator API under /ops (keys with roles, the audit log,
views and actions, webhooks), health, readiness and Prometheus metrics."""
