"""Our own stores, run through the shipped conformance suite exactly as a third party would.

A package (this file) so that its test modules do not clash by basename with
``tests/`` modules under pytest's default import mode.
"""
