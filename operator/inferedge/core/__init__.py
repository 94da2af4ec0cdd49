"""Pure decisions: profiles, cut-point math, planning, cost models.

Nothing in this package imports a DNN framework, a Kubernetes or messaging client, or does I/O;
everything is a plain typed function of its inputs, so it is exhaustively testable and fast.
"""
