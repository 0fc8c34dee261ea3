"""The API's services: what a request does, as functions on a database session.

The JSON API (``api/v1``) and the pages (``delivery_ui`` templates through ``api.pages``) both
call these, so the two cannot drift apart. Services never commit: the caller commits once per
request, which makes each request one transaction.
"""
