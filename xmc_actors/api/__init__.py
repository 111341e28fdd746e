"""The operator API and live console on Ray Serve with a FastAPI ingress (docs/operations.md,
"The operator API and console"). A shell: its rules are in ``core/operator_api.py``."""
