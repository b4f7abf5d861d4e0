"""Shared code of the 3D Ultra upload functions (packaged into the Lambda by Chalice)."""
