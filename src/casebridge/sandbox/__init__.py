"""Local emulators of the systems Casebridge integrates with (``casebridge sandbox ...``)."""
