"""API tokens and roles.

Invariants: a token's secret is shown once and only its SHA-256 is stored; a revoked token never
authenticates again; every route under /api/v1 declares the roles it admits with :class:`Require`
(the auth-matrix test walks the route table to prove it).
"""
