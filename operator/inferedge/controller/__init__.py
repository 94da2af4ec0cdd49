"""The Kubernetes operator: kopf handlers (thin) over pure object builders and decisions.

`handlers` registers the kopf handlers; `builders` turns specs into child objects (dicts);
`inferedge.core.lifecycle` decides what a pipeline needs next. This package never imports a DNN
framework or the runtime, so the operator image stays small.
"""
